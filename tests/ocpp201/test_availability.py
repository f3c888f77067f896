"""Availability (G) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (real bus,
EvseManager, simulated car) and the `ocpp` package's 2.0.1 CSMS over a real websocket (every frame checked
against the official schemas): StatusNotification of the connector as it changes, ChangeAvailability
applied on the EVSE and kept across a restart (kill -9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ocpp.v201 import call

from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config

from .test_crash import Received, RecordingCsms, ended_of, started

pytestmark = pytest.mark.slow

VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
PLUG_CHARGE_UNPLUG = "sleep 1;iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 2;unplug"


def status_of(connector_status: str, evse_id: int = 1) -> Callable[[Received], bool]:
    return lambda r: (r.action == "StatusNotification" and r.payload["evseId"] == evse_id
                      and r.payload["connectorId"] == 1 and r.payload["connectorStatus"] == connector_status)


def booted(r: Received) -> bool:
    return r.action == "BootNotification"


def statuses(csms: RecordingCsms, after: int = 0) -> list[str]:
    return [r.payload["connectorStatus"] for r in csms.received[after:] if r.action == "StatusNotification"]


async def test_the_connector_status_follows_the_car(tmp_path):
    """TC_G_01_CS TC_G_02_CS: after the boot the connector is Available; the car plugs in (Occupied),
    charges and leaves (Available again), each change reported once."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=PLUG_CHARGE_UNPLUG, base=SIL_OCPP201, keys=VARIABLES,
                             test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        first = await csms.wait_for(status_of("Available"))
        occupied = await csms.wait_for(status_of("Occupied"))
        await csms.wait_for(status_of("Available"), after=csms.received.index(occupied) + 1)
    finally:
        station.stop()
        await csms.stop()
    assert statuses(csms, csms.received.index(first)) == ["Available", "Occupied", "Available"], station.log()


async def test_change_availability_of_the_evse_is_applied_and_survives_a_restart(tmp_path):
    """TC_G_03_CS TC_G_04_CS TC_G_18_CS TC_G_05_CS TC_G_06_CS: the EVSE Inoperative: Accepted, Unavailable;
    after kill -9 and a restart it comes back Unavailable; Operative again: Available; the station
    Inoperative and Operative the same."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        await csms.wait_for(status_of("Available"))
        mark = len(csms.received)
        inoperative = await csms.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
        await csms.wait_for(status_of("Unavailable"), after=mark)
        station.kill()
        mark = len(csms.received)
        station.start()
        await csms.wait_for(booted, after=mark)
        await csms.wait_for(status_of("Unavailable"), after=mark)
        restarted = statuses(csms, mark)
        mark = len(csms.received)
        operative = await csms.call(call.ChangeAvailability(operational_status="Operative", evse={"id": 1}))
        await csms.wait_for(status_of("Available"), after=mark)
        mark = len(csms.received)
        station_off = await csms.call(call.ChangeAvailability(operational_status="Inoperative"))
        await csms.wait_for(status_of("Unavailable"), after=mark)
        mark = len(csms.received)
        station_on = await csms.call(call.ChangeAvailability(operational_status="Operative"))
        await csms.wait_for(status_of("Available"), after=mark)
        unknown = await csms.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 7}))
    finally:
        station.stop()
        await csms.stop()
    assert [a.status for a in (inoperative, operative, station_off, station_on)] == ["Accepted"] * 4, station.log()
    assert restarted == ["Unavailable"]
    assert unknown.status == "Rejected"


async def test_inoperative_during_a_transaction_is_scheduled_until_it_ends(tmp_path):
    """TC_G_11_CS TC_G_14_CS: a card-started transaction charges; the EVSE and then the station Inoperative
    are Scheduled and the connector stays Occupied; once the transaction is stopped the EVSE is
    Unavailable (the car is still plugged in)."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, base=SIL_OCPP201, keys=VARIABLES,
                             test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        tx_id = (await csms.wait_for(started)).payload["transactionInfo"]["transactionId"]
        mark = len(csms.received)
        evse_off = await csms.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
        station_off = await csms.call(call.ChangeAvailability(operational_status="Inoperative"))
        during = statuses(csms, mark)
        await csms.call(call.RequestStopTransaction(transaction_id=tx_id))
        end = await csms.wait_for(ended_of(tx_id))
        unavailable = await csms.wait_for(status_of("Unavailable"), after=mark)
    finally:
        station.stop()
        await csms.stop()
    assert (evse_off.status, station_off.status) == ("Scheduled", "Scheduled"), station.log()
    assert "Unavailable" not in during
    assert csms.received.index(unavailable) > csms.received.index(end)
