"""A returning EVSE (its module restarted, its satellite's link came back) on the fakes: the 1.6 charge point
re-reads its session and tells it again what OCPP wants of it (real store, FakeStation, FakeClock, no CSMS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.chargepoint import ChargePoint16, Settings
from everpy.ocpp.v16.connectors import Transaction
from everpy.ocpp.values import EvseRef

from .fakes import LOG, FakeStation


async def started_station(tmp_path: Path, ids: list[int] | None = None) -> tuple[ChargePoint16, FakeStation]:
    station = FakeStation(ids)
    store = OcppStore(tmp_path / "ocpp.db", log=LOG)
    cp = ChargePoint16(station, store, Settings("CP1", "ws://127.0.0.1:1/ocpp"), FakeClock(), LOG)
    await cp.start()
    station.calls.clear()
    return cp, station


def queued(cp: ChargePoint16, action: str) -> list[dict[str, Any]]:
    messages = []
    while (message := cp.store.queue_head()) is not None:
        cp.store.dequeue(message.seq)
        if message.action == action:
            messages.append(message.payload)
    return messages


async def test_a_returning_evse_is_disabled_again_after_change_availability(tmp_path):
    cp, station = await started_station(tmp_path, [1, 2])
    assert await cp.change_availability(EvseRef(1, 1), False) == {"status": "Accepted"}
    await cp.jobs.wait_idle()
    assert station.called("set_available") == [(1, False)]
    station.calls.clear()
    await cp.on_evse_reappeared(1)
    assert station.called("set_available") == [(1, False)]  # a fresh EVSE is enabled: OCPP says no again
    assert cp.connectors.status_of(1)[0] == "Unavailable"
    await cp.on_evse_reappeared(2)
    assert station.called("set_available") == [(1, False), (2, True)]
    cp.close()


async def test_a_transaction_the_returning_evse_lost_ends_and_one_it_runs_goes_on(tmp_path):
    cp, station = await started_station(tmp_path, [1, 2])
    for evse_id in (1, 2):
        event = {"event": "TransactionStarted", "uuid": f"tx-{evse_id}", "timestamp": "2026-01-01T00:00:00Z",
                 "transaction_started": {"id_tag": {"id_token": {"value": "TAG"}},
                                         "meter_value": {"energy_Wh_import": {"total": 100.0}}}}
        await cp.on_session_event(evse_id, event)
    cp.on_powermeter(1, {"energy_Wh_import": {"total": 250.0}, "timestamp": "2026-01-01T00:10:00Z"})
    station.sessions = {1: {"session_id": ""}, 2: {"session_id": "tx-2", "transaction": {"uuid": "tx-2"}}}
    await cp.on_evse_reappeared(1)
    await cp.on_evse_reappeared(2)
    assert cp.connectors[1].transaction is None and cp.connectors[1].session_status is None
    assert cp.connectors[2].transaction is not None and cp.connectors[2].transaction.tx_key == "tx-2"
    stops = queued(cp, "StopTransaction")
    assert [(s["reason"], s["meterStop"]) for s in stops] == [("PowerLoss", 250)]
    assert [t.tx_key for t in cp.repository.open_transactions()] == ["tx-2"]
    cp.close()


async def test_a_returning_evse_is_told_its_reservation_again(tmp_path):
    cp, station = await started_station(tmp_path)
    reply = await cp.reservations.on_reserve_now({"connectorId": 1, "reservationId": 7,
                                                  "expiryDate": "2099-01-01T00:00:00Z", "idTag": "A"})
    assert reply.payload == {"status": "Accepted"}
    station.calls.clear()
    await cp.on_evse_reappeared(1)
    assert station.called("reserve") == [(1, 7)]
    assert cp.connectors.status_of(1)[0] == "Reserved"
    cp.close()


async def test_an_evse_whose_session_cannot_be_read_keeps_its_transaction(tmp_path):
    cp, station = await started_station(tmp_path)
    cp.connectors[1].transaction = Transaction("tx-1", "TAG", 0.0, 0)
    station.sessions = {1: None}  # the bus call failed
    await cp.on_evse_reappeared(1)
    assert cp.connectors[1].transaction is not None
    cp.close()
