"""Functional block G (availability) of OCPP 2.0.1 against a fake context: StatusNotification on change,
paced per connector, after a connection and on TriggerMessage; ChangeAvailability of the station, an EVSE
and a connector (Accepted, Scheduled, Rejected), persisted across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.ocpp.pacing import PacingSettings
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.availability import KIND, Availability, StatusNotifications
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.variables.comm import QUEUE_ALL_MESSAGES, STATION_AVAILABILITY_STATE
from everpy.ocpp.v201.variables.evse import CONNECTOR_AVAILABILITY_STATE, EVSE_AVAILABILITY_STATE

from .fakes import Fixture, block_context


def sent(f: Fixture, action: str) -> list[dict[str, Any]]:
    """What the block sent as `action`, each payload checked against the 2.0.1 schema."""
    payloads = f.sender.of(action)
    for payload in payloads:
        DIALECT.check(action, payload, response=False)
    return payloads


def statuses(f: Fixture) -> list[tuple[int, int, str]]:
    return [(p["evseId"], p["connectorId"], p["connectorStatus"]) for p in sent(f, "StatusNotification")]


async def answered(reply: Reply, f: Fixture) -> str:
    """The status of a handler's answer, once its follow-up work and the block's jobs are done."""
    DIALECT.check("ChangeAvailability", reply.payload, response=True)
    if reply.after is not None:
        await reply.after()
    await f.ctx.jobs.wait_idle()
    return str(reply.payload["status"])


class G:
    """A fixture with the StatusNotifications and Availability of a station of `evse_ids`."""

    def __init__(self, tmp_path: Path, evse_ids: list[int] | None = None, pacing: PacingSettings | None = None,
                 fixture: Fixture | None = None) -> None:
        self.tmp_path = tmp_path
        self.f = block_context(tmp_path, evse_ids or [1, 2], store=None if fixture is None else fixture.store)
        self.status = StatusNotifications(self.f.ctx, self.f.evses, pacing)
        self.availability = Availability(self.f.ctx, self.f.evses, self.status)

    def restart(self) -> G:
        self.status.cancel_timers()
        return G(self.tmp_path, self.f.station.evse_ids(), fixture=self.f)

    async def change(self, operational: str, evse: dict[str, int] | None = None) -> str:
        payload: dict[str, Any] = {"operationalStatus": operational}
        if evse is not None:
            payload["evse"] = evse
        DIALECT.check("ChangeAvailability", payload, response=False)
        return await answered(await self.availability.on_change_availability(payload), self.f)

    def state(self, evse_id: int) -> tuple[str | None, str | None]:
        model = self.f.model
        return model.value(EVSE_AVAILABILITY_STATE, evse_id), model.value(CONNECTOR_AVAILABILITY_STATE, evse_id, 1)


# -- StatusNotification ----------------------------------------------------------------------------------
async def test_a_plugged_in_car_makes_the_connector_occupied_and_its_leaving_available_again(tmp_path: Path):
    """TC_G_01_CS TC_G_02_CS: Available -> Occupied at the plug-in, back to Available when the car leaves;
    the EVSE and Connector AvailabilityState variables follow."""
    g = G(tmp_path)
    await g.status.after_connect()
    assert statuses(g.f) == [(1, 1, "Available"), (2, 1, "Available")]
    g.f.evses.session_event(1, {"event": "SessionStarted", "uuid": "s-1"})
    await g.status.send(1)
    assert statuses(g.f)[-1] == (1, 1, "Occupied")
    assert g.state(1) == ("Occupied", "Occupied")
    g.f.evses.session_event(1, {"event": "SessionFinished", "uuid": "s-1"})
    await g.status.send(1)
    assert statuses(g.f)[2:] == [(1, 1, "Occupied"), (1, 1, "Available")]
    assert g.state(1) == ("Available", "Available")


async def test_an_authorization_first_leaves_the_connector_available_until_the_car_comes(tmp_path: Path):
    """The session an authorization starts before the plug-in is no car: Available until the car's
    TransactionStarted; Available again when the car never came (PluginTimeout)."""
    g = G(tmp_path)
    await g.status.send(1)
    for kind, details in (("SessionStarted", {"session_started": {"reason": "Authorized"}}),
                          ("TransactionStarted", {"transaction_started": {}}), ("SessionFinished", {}),
                          ("SessionStarted", {"session_started": {"reason": "Authorized"}}), ("PluginTimeout", {})):
        g.f.evses.session_event(1, {"event": kind, "uuid": "s-1", **details})
        await g.status.send(1)
    assert statuses(g.f) == [(1, 1, "Available"), (1, 1, "Occupied"), (1, 1, "Available")]


async def test_a_status_is_sent_only_when_it_changed(tmp_path: Path):
    g = G(tmp_path)
    await g.status.send(1)
    await g.status.send(1)
    await g.status.send(2)
    assert statuses(g.f) == [(1, 1, "Available"), (2, 1, "Available")]


async def test_a_flapping_connector_is_paced_and_its_latest_status_goes_out_when_the_slot_opens(tmp_path: Path):
    g = G(tmp_path, [1], PacingSettings(burst=2, interval_s=10.0))
    evse = g.f.evses[1]
    for plugged in (True, False, True, False):
        evse.plugged = plugged
        await g.status.send(1)
    assert [s for *_, s in statuses(g.f)] == ["Occupied", "Available"]
    evse.plugged = True
    await g.status.send(1)
    assert len(statuses(g.f)) == 2  # held: beyond the burst
    await g.f.clock.advance(10.0)
    assert [s for *_, s in statuses(g.f)] == ["Occupied", "Available", "Occupied"]
    assert g.status.pacer.coalesced((1, 1)) >= 1


async def test_a_new_connection_and_a_resend_send_every_connector_whatever_was_sent(tmp_path: Path):
    """B04 (this block's part of TC_B_51/52, whose OfflineThreshold rule is provisioning's): every
    connector's status again, changed or not (send_all)."""
    g = G(tmp_path)
    await g.status.after_connect()
    await g.status.send_all()
    assert statuses(g.f) == [(1, 1, "Available"), (2, 1, "Available")] * 2


async def test_a_fault_makes_the_connector_faulted_and_the_station_state_follows_availability(tmp_path: Path):
    g = G(tmp_path)
    g.f.evses.error(2, {"type": "evse_board_support/MREC1", "state": "Active"})
    await g.status.send(2)
    assert statuses(g.f) == [(2, 1, "Faulted")]
    assert g.state(2) == ("Faulted", "Faulted")
    assert g.f.model.value(STATION_AVAILABILITY_STATE) == "Available"


async def test_a_status_is_not_recorded_as_sent_while_offline(tmp_path: Path):
    g = G(tmp_path)
    g.f.sender.online = False
    await g.status.send(1)
    g.f.sender.online = True
    await g.status.send(1)
    assert statuses(g.f) == [(1, 1, "Available")]


async def test_with_queue_all_messages_an_offline_status_is_queued(tmp_path: Path):
    """OCPPCommCtrlr.QueueAllMessages: a change while offline goes into the persistent queue (after the
    transaction messages before it) instead of being lost."""
    g = G(tmp_path)
    g.f.model.set_internal(QUEUE_ALL_MESSAGES, "true")
    g.f.sender.online = False
    g.f.evses[1].plugged = True
    await g.status.send(1)
    head = g.f.store.queue_head()
    assert head is not None and (head.action, head.payload["connectorStatus"]) == ("StatusNotification", "Occupied")
    DIALECT.check("StatusNotification", head.payload, response=False)


async def test_trigger_sends_the_named_connector_and_refuses_without_one(tmp_path: Path):
    """TC_F_23_CS TC_F_24_CS (the status part): TriggerMessage StatusNotification for one connector sends
    it even unchanged; without a connector or for an unknown one it is Rejected (F06.FR.12)."""
    g = G(tmp_path)
    await g.status.send(1)
    assert g.status.trigger(1, 1) == "Accepted"
    await g.f.ctx.jobs.wait_idle()
    assert statuses(g.f) == [(1, 1, "Available"), (1, 1, "Available")]
    assert [g.status.trigger(*place) for place in ((None, None), (1, None), (3, 1), (1, 2))] == ["Rejected"] * 4


# -- ChangeAvailability ------------------------------------------------------------------------------------
async def test_an_evse_made_inoperative_is_disabled_and_unavailable_and_back(tmp_path: Path):
    """TC_G_03_CS TC_G_04_CS: an EVSE Operative -> Inoperative -> Operative: Accepted, the charger disables
    and enables it, StatusNotification Unavailable then Available."""
    g = G(tmp_path)
    await g.status.after_connect()
    assert await g.change("Inoperative", {"id": 1}) == "Accepted"
    assert g.f.station.called("set_available") == [(1, False)]
    assert statuses(g.f)[2:] == [(1, 1, "Unavailable")]
    assert g.state(1) == ("Unavailable", "Unavailable")
    assert await g.change("Operative", {"id": 1}) == "Accepted"
    assert g.f.station.called("set_available")[-1] == (1, True)
    assert statuses(g.f)[2:] == [(1, 1, "Unavailable"), (1, 1, "Available")]


async def test_the_station_made_inoperative_disables_every_evse_and_back(tmp_path: Path):
    """TC_G_05_CS TC_G_06_CS: the whole station (no evse) Inoperative, then Operative again."""
    g = G(tmp_path)
    assert await g.change("Inoperative") == "Accepted"
    assert g.f.station.called("set_available") == [(1, False), (2, False)]
    assert statuses(g.f) == [(1, 1, "Unavailable"), (2, 1, "Unavailable")]
    assert g.f.model.value(STATION_AVAILABILITY_STATE) == "Unavailable"
    assert await g.change("Operative") == "Accepted"
    assert g.f.station.called("set_available")[2:] == [(1, True), (2, True)]
    assert statuses(g.f)[2:] == [(1, 1, "Available"), (2, 1, "Available")]
    assert g.f.model.value(STATION_AVAILABILITY_STATE) == "Available"


async def test_a_connector_made_inoperative_makes_its_evse_unavailable_and_back(tmp_path: Path):
    """TC_G_07_CS TC_G_08_CS: a connector Inoperative, then Operative; an EVSE Inoperative keeps its
    connector unavailable whatever the connector's own state."""
    g = G(tmp_path)
    assert await g.change("Inoperative", {"id": 2, "connectorId": 1}) == "Accepted"
    assert statuses(g.f) == [(2, 1, "Unavailable")]
    assert g.f.station.called("set_available") == [(2, False)]
    assert await g.change("Operative", {"id": 2, "connectorId": 1}) == "Accepted"
    assert statuses(g.f)[-1] == (2, 1, "Available")
    await g.change("Inoperative", {"id": 2})
    await g.change("Operative", {"id": 2, "connectorId": 1})
    assert statuses(g.f)[-1] == (2, 1, "Unavailable")


async def test_a_change_to_the_state_in_force_is_accepted_and_reports_nothing_new(tmp_path: Path):
    """TC_G_09_CS TC_G_12_CS TC_G_15_CS TC_G_10_CS TC_G_13_CS TC_G_16_CS: Operative -> Operative and
    Inoperative -> Inoperative for an EVSE, the station and a connector: Accepted, no new status."""
    g = G(tmp_path)
    await g.status.after_connect()
    for evse in ({"id": 1}, None, {"id": 1, "connectorId": 1}):
        assert await g.change("Operative", evse) == "Accepted"
    assert statuses(g.f) == [(1, 1, "Available"), (2, 1, "Available")]
    for evse in ({"id": 1}, None, {"id": 1, "connectorId": 1}):
        assert await g.change("Inoperative", evse) == "Accepted"
    assert statuses(g.f)[2:] == [(1, 1, "Unavailable"), (2, 1, "Unavailable")]


async def test_inoperative_during_a_transaction_is_scheduled_and_applies_when_it_ends(tmp_path: Path):
    """TC_G_11_CS TC_G_14_CS TC_G_17_CS: with a transaction on EVSE 1, an EVSE, station and connector
    Inoperative is Scheduled; the charging EVSE stays enabled and Occupied until the transaction ends, then it
    is disabled and Unavailable; the idle EVSE goes at once."""
    for evse in ({"id": 1}, None, {"id": 1, "connectorId": 1}):
        g = G(tmp_path / str(evse))
        busy = g.f.evses[1]
        busy.plugged, busy.transaction_id = True, "tx-1"
        await g.status.send(1)
        assert await g.change("Inoperative", evse) == "Scheduled"
        assert (1, False) not in g.f.station.called("set_available")
        assert (1, 1, "Unavailable") not in statuses(g.f)
        assert g.state(1) == ("Occupied", "Occupied")
        busy.transaction_id = None
        g.availability.transaction_ended(1)
        await g.f.ctx.jobs.wait_idle()
        assert (1, False) in g.f.station.called("set_available")
        assert statuses(g.f)[-1] == (1, 1, "Unavailable")
        assert ((2, 1, "Unavailable") in statuses(g.f)) == (evse is None)


async def test_operative_again_before_the_transaction_ends_cancels_the_scheduled_change(tmp_path: Path):
    g = G(tmp_path)
    busy = g.f.evses[1]
    busy.transaction_id = "tx-1"
    assert await g.change("Inoperative", {"id": 1}) == "Scheduled"
    assert await g.change("Operative", {"id": 1}) == "Accepted"
    busy.transaction_id = None
    g.availability.transaction_ended(1)
    await g.f.ctx.jobs.wait_idle()
    assert g.f.station.called("set_available") == [(1, True)]
    assert statuses(g.f) == [(1, 1, "Available")]


async def test_unknown_evses_and_connectors_are_rejected(tmp_path: Path):
    g = G(tmp_path)
    for evse in ({"id": 3}, {"id": 1, "connectorId": 2}, {"id": 0, "connectorId": 1}):
        assert await g.change("Inoperative", evse) == "Rejected"
    assert g.f.station.calls == [] and statuses(g.f) == []
    assert g.f.store.records(KIND) == {}


async def test_the_availability_persists_across_a_restart(tmp_path: Path):
    """TC_G_18_CS TC_G_19_CS TC_G_21_CS: an EVSE, a connector and the station Inoperative stay so after a
    reboot: the charger is told again and the statuses say Unavailable."""
    for evse in ({"id": 1}, {"id": 1, "connectorId": 1}, None):
        g = G(tmp_path / str(evse))
        await g.change("Inoperative", evse)
        again = g.restart()
        await again.availability.restore()
        await again.status.after_connect()
        assert again.f.station.called("set_available") == [(1, False), (2, evse is not None)]
        assert statuses(again.f) == [(1, 1, "Unavailable"), (2, 1, "Unavailable" if evse is None else "Available")]


async def test_a_transaction_that_survived_the_restart_is_left_alone_until_it_ends(tmp_path: Path):
    g = G(tmp_path)
    await g.change("Inoperative", {"id": 1})
    again = g.restart()
    again.f.evses[1].transaction_id = "tx-1"
    await again.availability.restore()
    assert again.f.station.called("set_available") == [(2, True)]
    again.f.evses[1].transaction_id = None
    again.availability.transaction_ended(1)
    await again.f.ctx.jobs.wait_idle()
    assert again.f.station.called("set_available")[-1] == (1, False)


async def test_an_evse_that_comes_back_is_told_its_availability_again(tmp_path: Path):
    g = G(tmp_path)
    await g.change("Inoperative", {"id": 2})
    await g.availability.resync(2)
    assert g.f.station.called("set_available") == [(2, False), (2, False)]


async def test_a_refused_command_keeps_the_wish_and_logs(tmp_path: Path, caplog: Any):
    g = G(tmp_path)
    g.f.station.answers["set_available"] = False
    assert await g.change("Inoperative", {"id": 1}) == "Accepted"
    assert "did not take disable" in caplog.text
    assert g.f.store.records(KIND) == {1000: {"operative": False}}


async def test_records_that_name_nothing_are_quarantined(tmp_path: Path):
    g = G(tmp_path)
    g.f.store.put_record(KIND, 3000, {"operative": False})
    g.f.store.put_record(KIND, 1002, {"operative": False})
    g.f.store.put_record(KIND, 1000, {"operative": "no"})
    g.f.store.put_record(KIND, 2000, {"operative": False})
    again = g.restart()
    assert again.f.store.records(KIND) == {2000: {"operative": False}}
    assert not again.f.evses[2].operative and again.f.evses[1].operative
    assert len(again.f.store.new_quarantine_events()) == 3


async def test_the_local_command_is_done_when_it_answers(tmp_path: Path):
    g = G(tmp_path)
    assert await g.availability.change(2, None, False) == "Accepted"
    assert g.f.station.called("set_available") == [(2, False)]
    assert statuses(g.f) == [(2, 1, "Unavailable")]
    assert await g.availability.change(5, None, False) == "Rejected"
