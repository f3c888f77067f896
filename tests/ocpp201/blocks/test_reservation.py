"""Functional block H (reservation) of OCPP 2.0.1 against a fake context: ReserveNow of an EVSE or of none,
CancelReservation, expiry with ReservationStatusUpdate on the fake clock, persistence across restarts, the
EVSE's own end of a reservation, and which tokens may use reserved EVSEs.

The OCTT 2.0.1 station case list (tests/ocpp201/octt-cases.tsv) has no H cases; the tests name the
use cases H01 (ReserveNow), H02 (CancelReservation), H03 (use) and H04 (expiry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.ocpp.v201.availability import StatusNotifications
from everpy.ocpp.v201.reservation import KIND, Reservations
from everpy.ocpp.v201.variables.evse import CONNECTOR_TYPE
from everpy.ocpp.values import rfc3339

from .fakes import Fixture, block_context, handle
from .test_availability import sent, statuses

TOKEN = {"idToken": "TAG1", "type": "ISO14443"}
OTHER = {"idToken": "TAG2", "type": "ISO14443"}
GROUP = {"idToken": "FLEET", "type": "Central"}


class H:
    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, evse_ids: list[int] | None = None,
                 fixture: Fixture | None = None) -> None:
        self.tmp_path, self.variables = tmp_path, variables
        self.f = block_context(tmp_path, evse_ids or [1, 2], variables, None if fixture is None else fixture.store)
        if fixture is not None:
            self.f.clock = fixture.clock
            self.f.ctx.clock = fixture.clock
        self.status = StatusNotifications(self.f.ctx, self.f.evses)
        self.reservations = Reservations(self.f.ctx, self.f.evses, self.status)

    def restart(self) -> H:
        self.reservations.cancel_timers()
        self.status.cancel_timers()
        return H(self.tmp_path, self.variables, self.f.station.evse_ids(), self.f)

    def expiry(self, seconds: float) -> str:
        return rfc3339(self.f.clock.time() + seconds)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await handle(self.f, action, payload, self.reservations)

    async def reserve(self, reservation_id: int, evse_id: int | None = 1, token: dict[str, Any] = TOKEN,
                      seconds: float = 600, **more: Any) -> str:
        payload: dict[str, Any] = {"id": reservation_id, "expiryDateTime": self.expiry(seconds), "idToken": token,
                                   **more}
        if evse_id is not None:
            payload["evseId"] = evse_id
        return str((await self.call("ReserveNow", payload))["status"])

    async def cancel(self, reservation_id: int) -> str:
        return str((await self.call("CancelReservation", {"reservationId": reservation_id}))["status"])

    def updates(self) -> list[tuple[int, str]]:
        return [(p["reservationId"], p["reservationUpdateStatus"]) for p in sent(self.f, "ReservationStatusUpdate")]


async def test_reserving_an_evse_makes_it_reserved_and_cancelling_frees_it(tmp_path: Path):
    """H01 H02: ReserveNow of an Available EVSE: Accepted, the EVSE holds the reservation,
    StatusNotification Reserved after the answer; CancelReservation: Accepted, Available again."""
    h = H(tmp_path)
    assert await h.reserve(5, 1, groupIdToken=GROUP) == "Accepted"
    assert h.f.station.called("reserve") == [(1, 5)]
    assert statuses(h.f) == [(1, 1, "Reserved")]
    assert h.f.store.records(KIND)[5]["groupIdToken"] == GROUP
    assert await h.cancel(5) == "Accepted"
    assert h.f.station.called("cancel_reservation") == [(1,)]
    assert statuses(h.f) == [(1, 1, "Reserved"), (1, 1, "Available")]
    assert h.f.store.records(KIND) == {} and h.updates() == []


async def test_an_evse_that_cannot_be_reserved_answers_with_its_state(tmp_path: Path):
    """H01: Occupied (a car, a transaction, another reservation), Faulted, Unavailable; an unknown EVSE
    or an expiry in the past is Rejected."""
    h = H(tmp_path, evse_ids=[1, 2, 3, 4])
    h.f.evses[1].plugged = True
    h.f.evses.error(2, {"type": "evse_board_support/MREC1", "state": "Active"})
    h.f.evses[3].operative = False
    assert [await h.reserve(n, n) for n in (1, 2, 3)] == ["Occupied", "Faulted", "Unavailable"]
    assert await h.reserve(4, 4) == "Accepted"
    assert await h.reserve(9, 4) == "Occupied"
    assert await h.reserve(10, 7) == "Rejected"
    assert await h.reserve(11, 4, seconds=-1) == "Rejected"
    assert h.f.station.called("reserve") == [(4, 4)]
    assert list(h.f.store.records(KIND)) == [4]


async def test_the_evse_refusing_the_reservation(tmp_path: Path):
    h = H(tmp_path)
    h.f.station.answers["reserve"] = False
    assert await h.reserve(1, 1) == "Occupied"
    assert h.f.store.records(KIND) == {} and h.f.evses[1].reservation_id is None


async def test_reservations_disabled_or_without_an_evse_when_not_supported_are_rejected(tmp_path: Path):
    off = H(tmp_path / "off", {"ReservationCtrlr.Enabled": "false"})
    assert await off.reserve(1, 1) == "Rejected"
    specific = H(tmp_path / "specific", {"ReservationCtrlr.NonEvseSpecific": "false"})
    assert await specific.reserve(1, None) == "Rejected"
    assert off.f.station.calls == specific.f.station.calls == []


async def test_a_known_id_replaces_its_reservation(tmp_path: Path):
    """H01: ReserveNow with the id of an existing reservation replaces it (here: on another EVSE)."""
    h = H(tmp_path)
    assert await h.reserve(5, 1) == "Accepted"
    assert await h.reserve(5, 2) == "Accepted"
    assert h.f.station.called("cancel_reservation") == [(1,)]
    assert (h.f.evses[1].reservation_id, h.f.evses[2].reservation_id) == (None, 5)
    assert h.f.store.records(KIND)[5]["evseId"] == 2


async def test_a_reservation_without_an_evse_keeps_one_available_evse_for_each(tmp_path: Path):
    """H01: without an EVSE: Accepted while more EVSEs are Available than such reservations, no EVSE
    reserved; then Occupied; an EVSE reservation that would take the last kept EVSE is Occupied too."""
    h = H(tmp_path)
    assert await h.reserve(1, None) == "Accepted"
    assert await h.reserve(2, None, OTHER) == "Accepted"
    assert await h.reserve(3, None) == "Occupied"
    assert await h.reserve(4, 1) == "Occupied"
    assert h.f.station.called("reserve") == [] and statuses(h.f) == []


async def test_a_reservation_without_an_evse_when_every_evse_is_out_of_service(tmp_path: Path):
    h = H(tmp_path)
    for evse in h.f.evses:
        evse.operative = False
    assert await h.reserve(1, None) == "Unavailable"
    for evse in h.f.evses:
        evse.operative = True
        h.f.evses.error(evse.id, {"type": "evse_board_support/MREC1", "state": "Active"})
    assert await h.reserve(1, None) == "Faulted"


async def test_a_connector_type_must_fit(tmp_path: Path):
    h = H(tmp_path)
    h.f.model.set_internal(CONNECTOR_TYPE, "cCCS2", 1, 1)
    assert await h.reserve(1, 1, connectorType="cType2") == "Rejected"
    assert await h.reserve(2, 1, connectorType="cCCS2") == "Accepted"
    assert await h.reserve(3, None, connectorType="cCCS2") == "Occupied"  # its only EVSE is reserved
    assert await h.reserve(4, None, connectorType="sType3") == "Rejected"


async def test_cancelling_an_unknown_reservation_is_rejected(tmp_path: Path):
    """H02: a reservation the station does not have is Rejected."""
    h = H(tmp_path)
    assert await h.cancel(42) == "Rejected"
    assert await h.reserve(1, None) == "Accepted"
    assert await h.cancel(1) == "Accepted"
    assert h.f.station.called("cancel_reservation") == [] and h.f.store.records(KIND) == {}


async def test_a_reservation_expires_with_a_status_update_and_frees_the_evse(tmp_path: Path):
    """H01: at expiryDateTime: ReservationStatusUpdate Expired, the EVSE lets go, Available."""
    h = H(tmp_path)
    await h.reserve(5, 2, seconds=60)
    await h.reserve(6, None, seconds=120)
    await h.f.clock.advance(59)
    assert h.updates() == []
    await h.f.clock.advance(1)
    assert h.updates() == [(5, "Expired")]
    assert h.f.station.called("cancel_reservation") == [(2,)]
    assert statuses(h.f) == [(2, 1, "Reserved"), (2, 1, "Available")]
    await h.f.clock.advance(60)
    assert h.updates() == [(5, "Expired"), (6, "Expired")]
    assert h.f.store.records(KIND) == {}


async def test_reservations_survive_a_restart_and_expire_on_time(tmp_path: Path):
    """A restart keeps the reservations: the EVSE is told its reservation again, the expiry still fires;
    one that expired while the station was down is ended with Expired at start."""
    h = H(tmp_path)
    await h.reserve(5, 1, seconds=60)
    await h.reserve(6, 2, seconds=300)
    again = h.restart()
    await again.f.clock.advance(100)
    await again.reservations.restore()
    assert again.updates() == [(5, "Expired")]
    assert again.f.station.called("reserve") == [(2, 6)]
    assert again.f.evses[2].reservation_id == 6 and again.f.evses[1].reservation_id is None
    await again.f.clock.advance(200)
    assert again.updates() == [(5, "Expired"), (6, "Expired")]
    again.reservations.cancel_timers()


async def test_an_update_that_could_not_be_sent_goes_out_on_connect(tmp_path: Path):
    """A reservation that expires while the station is offline (or down) is reported once it connects."""
    h = H(tmp_path)
    await h.reserve(5, 1, seconds=60)
    h.f.sender.online = False
    await h.f.clock.advance(60)
    await h.reservations.after_connect()
    assert h.updates() == []
    h.f.sender.online = True
    await h.reservations.after_connect()
    await h.reservations.after_connect()
    assert h.updates() == [(5, "Expired")]


async def test_unusable_records_are_quarantined_at_restart(tmp_path: Path):
    h = H(tmp_path)
    store = h.f.store
    expiry = h.expiry(600)
    store.put_record(KIND, 1, {"evseId": 9, "expiryDateTime": expiry, "idToken": TOKEN})
    store.put_record(KIND, 2, {"evseId": True, "expiryDateTime": expiry, "idToken": TOKEN})
    store.put_record(KIND, 3, {"evseId": 1, "expiryDateTime": "soon", "idToken": TOKEN})
    store.put_record(KIND, 4, {"evseId": 1, "expiryDateTime": expiry, "idToken": {"idToken": 1}})
    store.put_record(KIND, 5, {"expiryDateTime": expiry, "idToken": TOKEN})
    again = h.restart()
    await again.reservations.restore()
    assert list(again.f.store.records(KIND)) == [5]
    assert len(again.f.store.new_quarantine_events()) == 4
    again.reservations.cancel_timers()


async def test_the_evse_letting_go_of_its_reservation(tmp_path: Path):
    """H03: a transaction used it (no status update; the TransactionEvent names it); cancelled at the EVSE
    by someone else: ReservationStatusUpdate Removed; ours (CancelReservation) reported nothing twice."""
    h = H(tmp_path)
    await h.reserve(5, 1)
    await h.reserve(6, 2)
    h.reservations.ended(1, 5, "UsedToStartCharging")
    h.reservations.ended(2, 6, "Cancelled")
    await h.f.ctx.jobs.wait_idle()
    assert h.updates() == [(6, "Removed")]
    assert h.f.store.records(KIND) == {}
    assert h.f.evses[1].reservation_id is None and h.f.evses[2].reservation_id is None
    await h.f.clock.advance(3600)
    assert h.updates() == [(6, "Removed")]  # their expiry timers are gone


def accepted(**more: Any) -> dict[str, Any]:
    return {"authorization_status": "Accepted", **more}


async def test_only_the_holder_may_use_a_reserved_evse(tmp_path: Path):
    """H03: the reservation's idToken or groupIdToken is sent to its EVSE (with the reservation id);
    another token may use the EVSEs nobody reserved, none when every EVSE is reserved."""
    h = H(tmp_path)
    await h.reserve(5, 1, groupIdToken=GROUP)
    assert h.reservations.restrict(accepted(), TOKEN) == accepted(evse_ids=[1], reservation_id=5)
    member = accepted(parent_id_token={"value": "fleet", "type": "Central"})
    assert h.reservations.restrict(member, OTHER)["reservation_id"] == 5
    assert h.reservations.restrict(accepted(), OTHER) == accepted(evse_ids=[2])
    await h.reserve(6, 2, OTHER)
    stranger = {"idToken": "TAG3", "type": "ISO14443"}
    assert h.reservations.restrict(accepted(), stranger)["authorization_status"] == "NotAtThisTime"
    refused = {"authorization_status": "Invalid"}
    assert h.reservations.restrict(refused, TOKEN) == refused
    assert h.reservations.used_by(1, TOKEN) == 5 and h.reservations.used_by(2, TOKEN) is None
    provided = {"id_token": {"value": "TAG1", "type": "ISO14443"}, "authorization_type": "RFID"}
    assert h.reservations.restrict_provided(accepted(), provided) == accepted(evse_ids=[1], reservation_id=5)
    assert h.reservations.restrict_provided(refused, "not a token") == refused


async def test_reservations_without_an_evse_keep_evses_for_their_holders(tmp_path: Path):
    """H01/H03: with one reservation without an EVSE and two Available EVSEs, a stranger may use either
    until only one is Available; then only an EVSE where its car already waits. The holder's transaction
    uses the reservation up."""
    h = H(tmp_path)
    await h.reserve(7, None)
    stranger = {"idToken": "TAG3", "type": "ISO14443"}
    assert h.reservations.restrict(accepted(), stranger) == accepted(evse_ids=[1, 2])
    h.f.evses[1].transaction_id = "tx"
    assert h.reservations.restrict(accepted(), stranger)["authorization_status"] == "NotAtThisTime"
    h.f.evses[1].transaction_id = None
    h.f.evses[1].plugged = True
    assert h.reservations.restrict(accepted(), stranger) == accepted(evse_ids=[1])
    assert h.reservations.restrict(accepted(), TOKEN) == accepted(evse_ids=[1, 2], reservation_id=7)
    h.reservations.transaction_started(2, TOKEN)
    assert h.f.store.records(KIND) == {}
    await h.f.clock.advance(3600)
    assert h.updates() == []
