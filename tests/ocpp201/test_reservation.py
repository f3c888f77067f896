"""Reservations (H) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (real bus,
EvseManager, Auth) and the `ocpp` package's 2.0.1 CSMS over a real websocket (every frame checked against the
official schemas): ReserveNow makes the EVSE Reserved, CancelReservation and the expiry free it.

The OCTT 2.0.1 station case list has no H cases; the tests name the use cases H01 to H04."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v201 import call

from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config

from .test_availability import VARIABLES, status_of, statuses
from .test_crash import RecordingCsms, started

pytestmark = pytest.mark.slow

TOKEN = {"idToken": "RESERVED-1", "type": "ISO14443"}
CARD = {"idToken": "DEADBEEF", "type": "ISO14443"}  # what the SIL RFID reader presents


def expiry(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_a_reservation_is_reserved_until_cancelled_or_expired(tmp_path):
    """H01 H02 H04: ReserveNow of EVSE 1: Accepted, Reserved; CancelReservation: Accepted, Available; a second
    reservation expires after 2 s: ReservationStatusUpdate Expired, Available again; cancelling it then is
    Rejected."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        await csms.wait_for(status_of("Available"))
        mark = len(csms.received)
        reserve = await csms.call(call.ReserveNow(id=1, expiry_date_time=expiry(600), id_token=TOKEN, evse_id=1))
        await csms.wait_for(status_of("Reserved"), after=mark)
        cancel = await csms.call(call.CancelReservation(reservation_id=1))
        await csms.wait_for(status_of("Available"), after=mark)
        second = len(csms.received)
        again = await csms.call(call.ReserveNow(id=2, expiry_date_time=expiry(2), id_token=TOKEN, evse_id=1))
        reserved = await csms.wait_for(status_of("Reserved"), after=second)
        await csms.wait_for(status_of("Available"), after=csms.received.index(reserved) + 1)
        late = await csms.call(call.CancelReservation(reservation_id=2))
    finally:
        station.stop()
        await csms.stop()
    assert (reserve.status, cancel.status, again.status) == ("Accepted",) * 3, station.log()
    assert statuses(csms, mark) == ["Reserved", "Available", "Reserved", "Available"]
    assert late.status == "Rejected"
    # the CSMS (recording every CALL before it answers) does not handle it, which the station only logs
    assert [r.payload for r in csms.received if r.action == "ReservationStatusUpdate"] == [
        {"reservationId": 2, "reservationUpdateStatus": "Expired"}]


async def test_the_holder_uses_the_reserved_evse(tmp_path):
    """H03: EVSE 1 is reserved for the SIL reader's card; the car comes, the card is presented and the
    transaction starts on the reserved EVSE naming the reservation, which is used up (no status update;
    cancelling it then is Rejected)."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=f"sleep 6;{CHARGE_FOREVER}", base=SIL_OCPP201,
                             keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        await csms.wait_for(status_of("Available"))
        reserve = await csms.call(call.ReserveNow(id=5, expiry_date_time=expiry(600), id_token=CARD, evse_id=1))
        begin = await csms.wait_for(started)
        cancel = await csms.call(call.CancelReservation(reservation_id=5))
    finally:
        station.stop()
        await csms.stop()
    assert reserve.status == "Accepted", station.log()
    assert (begin.payload["reservationId"], begin.payload["idToken"]) == (5, CARD)
    assert cancel.status == "Rejected"
    assert not any(r.action == "ReservationStatusUpdate" for r in csms.received)
