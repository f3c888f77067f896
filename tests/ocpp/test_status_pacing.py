"""A flapping connector through the real parts (SIL board, EvseManager, OCPP module, mosquitto, websocket,
development CSMS): its StatusNotifications are paced per connector and the last status reaches the CSMS.

The flapping is a board error raised and cleared as fast as the bus carries it (the simulator's
``inject_error``), so the connector alternates Faulted/Available hundreds of times. And the issue's own
board (tests/boards/FlakyBoard, every command failing once per call) gives the CSMS a normal session."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from everpy.csms import Csms
from everpy.testing import run_system

from ..charging.sil_system import until
from .sil import sil_ocpp_config
from .station import WAIT_S, sil_station

BOARDS = Path(__file__).resolve().parents[1] / "boards"  # FlakyBoard, the board that fails on purpose

FAULT = "evse_board_support/MREC3HighTemperature"
BURST = 3
INTERVAL_S = 2.0
FLAP_S = 8.0
FLIP_EVERY_S = 0.01  # 100 flips a second for FLAP_S: paced over several intervals, no backlog to work off


async def test_a_flapping_connector_is_paced_and_its_last_status_reaches_the_csms(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, ocpp={"status_burst": BURST, "status_interval_s": INTERVAL_S}) as station:
        system = station.system
        evse_errors = system.watch_errors("evse", "evse")
        await station.status("Available")
        mark = len(csms.received)
        began = time.monotonic()
        flips = 0
        while time.monotonic() - began < FLAP_S:
            flips += 1
            await system.call("board", "ev_board_support", "inject_error", error_type=FAULT, active=flips % 2 == 1,
                              sub_type="")
            await asyncio.sleep(FLIP_EVERY_S)  # the stimulus' rate, not a synchronisation
        if flips % 2 == 0:  # end on a raise: the connector stays Faulted
            flips += 1
            await system.call("board", "ev_board_support", "inject_error", error_type=FAULT, active=True, sub_type="")
        elapsed = time.monotonic() - began
        pacer = station.ocpp.cp.status.pacer
        # the last status the CSMS has is the connector's present one, once the pacer holds nothing back
        await csms.wait_until(lambda: pacer.held(1) is None and _last_status(csms) == "Faulted"
                              and station.ocpp.cp.connectors.status_of(1)[0] == "Faulted", 2 * WAIT_S)
        sent = [r for r in csms.received[mark:] if r.action == "StatusNotification" and r.payload["connectorId"] == 1]
        changes = len(evse_errors.drain())
        assert changes >= 100, f"the error flapped only {changes} times through the EVSE"
        assert pacer.coalesced(1) > 0
        # a burst at once, then one per interval: per minute at most 60 / INTERVAL_S beyond the burst
        per_minute = (len(sent) - BURST) * 60 / elapsed
        print(f"{flips} flips in {elapsed:.1f} s: {changes} error changes on the EVSE, {len(sent)} "
              f"StatusNotifications to the CSMS ({per_minute:.1f} per minute beyond the burst of {BURST})")
        assert per_minute <= 60 / INTERVAL_S + 60 / elapsed, [r.payload["status"] for r in sent]
        assert sent[-1].payload["errorCode"] == "HighTemperature"
        mark = len(csms.received)
        await system.call("board", "ev_board_support", "inject_error", error_type=FAULT, active=False, sub_type="")
        await station.status("Available", after=mark)  # at most one interval later, never lost


def _last_status(csms: Csms) -> str:
    return [r.payload["status"] for r in csms.messages("StatusNotification") if r.payload["connectorId"] == 1][-1]


async def test_a_board_failing_once_per_call_keeps_the_csms_traffic_small(tmp_path, csms: Csms):
    """The issue's board: every command's first attempt raises (an I2C timeout). With OCPP connected the
    CSMS sees a normal session, not thousands of Faulted/SuspendedEVSE StatusNotifications."""
    config = sil_ocpp_config(tmp_path, csms.url, car_script=None, swipe=True)
    modules = config["active_modules"]
    del modules["car"]  # the test is the car: it sets the pilot at the FlakyBoard
    modules["board"] = {"module": "FlakyBoard",
                        "config_module": {"failing_commands": "*", "failure_mode": "raise_once_per_call"}}
    modules["evse"]["connections"].pop("powermeter")
    async with run_system(config, extra_module_dirs=[BOARDS]) as system:
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
        mark = len(csms.received)
        await system.call("board", "car", "set_cp_state", cp_state="B")
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", WAIT_S, after=mark)
        await system.call("board", "car", "set_cp_state", cp_state="C")
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", WAIT_S, after=mark)
        hardware = system.instances["board"].hardware
        await until(lambda: hardware.relays_closed, WAIT_S, "relays closed")
        assert hardware.failed["allow_power_on"] >= 1  # the fault really was there
        charging, renewals = len(csms.received), hardware.lease_renewals
        # charging goes on for some seconds of real time: the EVSE renews its power lease every second
        await until(lambda: hardware.lease_renewals >= renewals + 6, WAIT_S * 2, "six more lease renewals")
        assert hardware.relays_closed
        sent = [r.payload["status"] for r in csms.received[mark:]
                if r.action == "StatusNotification" and r.payload["connectorId"] == 1]
        assert sent == ["Preparing", "Charging"], sent
        # meanwhile only what a normal session sends (a heartbeat, meter values), not a status storm
        later = [r.action for r in csms.received[charging:]]
        assert later.count("StatusNotification") == 0 and len(later) <= 10, later
