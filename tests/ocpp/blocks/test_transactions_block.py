"""Transactions, RemoteControl and Authorization, each against a fake Station and a fake sender."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.v16.authorization import Authorization
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.local_auth import LocalAuth
from everpy.ocpp.v16.remote_control import RemoteControl
from everpy.ocpp.v16.reservation import Reservations
from everpy.ocpp.v16.smart_charging import SmartCharging
from everpy.ocpp.v16.status import StatusNotifications
from everpy.ocpp.v16.transactions import StartAnswered, Transactions
from everpy.ocpp.values import ResetKind

from .fakes import block_context


def started_event(uuid: str = "tx-1", wh: float = 1000.0) -> dict[str, Any]:
    return {"uuid": uuid, "event": "TransactionStarted", "timestamp": "2026-01-01T00:00:00Z", "connector_id": 1,
            "transaction_started": {"id_tag": {"id_token": {"value": "TAG1", "type": "ISO14443"}},
                                    "meter_value": {"energy_Wh_import": {"total": wh}}}}


def finished_event(uuid: str = "tx-1", wh: float | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"reason": "EVDisconnected"}
    if wh is not None:
        details["meter_value"] = {"energy_Wh_import": {"total": wh}, "timestamp": "2026-01-01T01:00:00Z"}
    return {"uuid": uuid, "event": "TransactionFinished", "timestamp": "2026-01-01T01:00:00Z", "connector_id": 1,
            "transaction_finished": details}


async def test_restart_continues_a_transaction_the_evse_still_runs(tmp_path):
    ctx, station, sender, _, repository = block_context(tmp_path)
    connectors = Connectors([1])
    transactions = Transactions(ctx, repository, connectors)
    transactions.transaction_started(connectors[1], started_event(), None)
    repository.set_transaction_id("tx-1", 42)
    # a new instance of the OCPP service: the EVSE still runs tx-1
    connectors = Connectors([1])
    transactions = Transactions(ctx, repository, connectors)
    station.sessions[1] = {"session_id": "tx-1", "transaction": {"uuid": "tx-1"}}
    sender.sent.clear()
    await transactions.recover()
    assert connectors[1].transaction is not None and transactions.transaction_id(connectors[1]) == 42
    assert not sender.of("StopTransaction")
    transactions.cancel_timers()


async def test_restart_after_power_loss_stops_with_the_last_reading(tmp_path):
    ctx, station, sender, _, repository = block_context(tmp_path)
    connectors = Connectors([1])
    transactions = Transactions(ctx, repository, connectors)
    transactions.transaction_started(connectors[1], started_event(wh=1000), None)
    transactions.on_powermeter(1, {"energy_Wh_import": {"total": 1750.0}, "timestamp": "2026-01-01T00:30:00Z"})
    transactions.cancel_timers()
    station.sessions[1] = {"session_id": ""}  # the EVSE started anew: it knows no transaction
    connectors = Connectors([1])
    await Transactions(ctx, repository, connectors).recover()
    stop = sender.of("StopTransaction")[-1]
    assert stop["reason"] == "PowerLoss" and stop["meterStop"] == 1750
    assert stop["timestamp"] == "2026-01-01T00:30:00Z"  # the reading's own time, not now


async def test_meter_stop_is_the_reading_after_the_stop_and_never_below_a_sent_value(tmp_path):
    ctx, station, sender, _, repository = block_context(tmp_path)
    connectors = Connectors([1])
    transactions = Transactions(ctx, repository, connectors)
    transactions.transaction_started(connectors[1], started_event(wh=1000), None)
    station.meter[1] = {"energy_Wh_import": {"total": 1234.0}, "timestamp": "2026-01-01T01:00:01Z"}
    await transactions.transaction_finished(connectors[1], finished_event(wh=1200))  # event: a cached value
    assert sender.of("StopTransaction")[-1]["meterStop"] == 1234
    # a value already sent is a floor: a stale stop reading never goes below it
    transactions.transaction_started(connectors[1], started_event("tx-2", wh=2000), None)
    connectors[1].reading = {"energy_Wh_import": {"total": 2500.0}}
    transactions._queue_transaction_values(connectors[1], connectors[1].transaction, [{"timestamp": "t",
                                                                                       "sampledValue": []}])
    station.meter[1] = {"energy_Wh_import": {"total": 2100.0}}
    await transactions.transaction_finished(connectors[1], finished_event("tx-2"))
    assert sender.of("StopTransaction")[-1]["meterStop"] == 2500


def control(tmp_path: Any) -> tuple[RemoteControl, Any, Any, Connectors, Transactions]:
    ctx, station, sender, _, repository = block_context(tmp_path)
    connectors = Connectors([1])
    transactions = Transactions(ctx, repository, connectors)
    events: list[tuple[str, str]] = []
    remote = RemoteControl(ctx, connectors, transactions, SmartCharging(ctx, connectors, transactions), 1.0,
                           lambda kind, info: events.append((kind, info)))
    remote.events = events  # type: ignore[attr-defined]
    return remote, station, sender, connectors, transactions


async def test_remote_stop_is_accepted_only_when_the_charger_took_it(tmp_path):
    remote, station, _, connectors, transactions = control(tmp_path)
    transactions.transaction_started(connectors[1], started_event(), None)
    transactions.repository.set_transaction_id("tx-1", 7)
    station.answers["stop_transaction"] = False  # the EVSE did not answer (bus down after retries)
    assert (await remote.on_remote_stop({"transactionId": 7})).payload == {"status": "Rejected"}
    assert remote.events[-1][0] == "RemoteStopFailed"  # type: ignore[attr-defined]
    station.answers["stop_transaction"] = True
    assert (await remote.on_remote_stop({"transactionId": 7})).payload == {"status": "Accepted"}
    assert station.called("stop_transaction")[-1] == (1, "Remote")
    transactions.cancel_timers()


async def test_unlock_without_a_lock_is_not_supported_and_stops_nothing(tmp_path):
    remote, station, _, connectors, transactions = control(tmp_path)
    transactions.transaction_started(connectors[1], started_event(), None)
    station.locks = False
    assert (await remote.on_unlock({"connectorId": 1})).payload == {"status": "NotSupported"}
    assert not station.called("stop_transaction") and not station.called("unlock")
    transactions.cancel_timers()


async def test_reset_records_reset_or_reboot_before_resetting(tmp_path):
    remote, station, _, _, _ = control(tmp_path)
    reply = await remote.on_reset({"type": "Soft"})
    assert reply.payload == {"status": "Accepted"} and reply.after is not None
    await reply.after()
    assert remote.events[-1][0] == "ResetOrReboot"  # type: ignore[attr-defined]
    assert station.called("reset")[-1][0].kind is ResetKind.SOFT


async def test_refused_start_stops_or_pauses_per_stop_transaction_on_invalid_id(tmp_path):
    for stop_on_invalid, expected in (("true", "stop_transaction"), ("false", "pause_charging")):
        ctx, station, _, _, repository = block_context(tmp_path / stop_on_invalid, keys={
            "StopTransactionOnInvalidId": stop_on_invalid})
        connectors = Connectors([1])
        authorization = Authorization(ctx, repository, LocalAuth(ctx, repository), Reservations(
            ctx, connectors, StatusNotifications(ctx, connectors, 1.0)))
        authorization.start_answered(StartAnswered(1, "TAG1", {"status": "Blocked"}))
        await ctx.jobs.wait_idle()
        assert station.called(expected) and repository.id_tag_info("cache", "TAG1") == {"status": "Blocked"}
