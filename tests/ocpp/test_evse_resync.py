"""A returning EVSE is resynchronised: the CSMS set the connector Inoperative, the EvseManager process is
killed and restarted by the runtime, or the satellite it runs on reboots (a fresh instance is enabled and
knows nothing), and OCPP disables it again and reports the right status (real processes, mosquitto,
websocket, development CSMS)."""

from __future__ import annotations

import os
import signal
import sys

from everpy.csms import Csms
from everpy.testing import run_system

from .sil import REPO, SilDriver, sil_ocpp_config
from .station import WAIT_S

# the multi-board plumbing (boards as processes on loopback), as tests/multiboard imports it
sys.path.insert(0, str(REPO / "tests" / "multiboard"))
from boards import Board, new_serial
from test_multiboard_ocpp import main_board, satellite, status


def statuses(csms: Csms, after: int = 0) -> list[str]:
    return [r.payload["status"] for r in csms.received[after:]
            if r.action == "StatusNotification" and r.payload["connectorId"] == 1]


async def test_a_restarted_evse_manager_is_disabled_again_after_change_availability(tmp_path, csms: Csms):
    config = sil_ocpp_config(tmp_path, csms.url, car_script=None, swipe=False)
    config["active_modules"]["evse"]["process"] = "own"
    config.setdefault("settings", {})["restart_backoff_s"] = 0.2
    async with run_system(config) as system:
        driver = SilDriver(system)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
        await csms.call_action("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert csms.last_answer("CP1", "ChangeAvailability") == {"status": "Accepted"}
        await driver.evse_events.wait_for(lambda e: e["event"] == "Disabled", WAIT_S)
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Unavailable", WAIT_S)
        states = system.watch_topic(system.topics.module_state("evse"))
        child = system.runtime.children["evse"].process
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)  # the EvseManager crashes; the runtime starts a fresh one
        await states.wait_for(lambda p: b'"down"' in p, timeout=WAIT_S)
        await states.wait_for(lambda p: b'"ready"' in p, timeout=WAIT_S)
        mark = len(csms.received)
        # the fresh instance starts enabled; OCPP tells it the CSMS's Inoperative again
        await driver.evse_events.wait_for(lambda e: e["event"] == "Disabled", WAIT_S)
        assert await system.call("evse", "evse", "get_session") == {"session_id": ""}
        await csms.wait_until(lambda: (statuses(csms) or [""])[-1] == "Unavailable"
                              and system.instances["ocpp"].cp.status.pacer.held(1) is None, WAIT_S)
        assert "Available" not in statuses(csms, mark)  # never shown as available to the CSMS meanwhile
        # the EVSE is disabled (an Unassigned request of another source changes nothing and says so)
        assert await system.call("evse", "evse", "enable_disable", connector_id=0, cmd_source={
            "enable_source": "Unspecified", "enable_state": "Unassigned", "enable_priority": 9000}) is False


async def test_a_rebooted_satellite_evse_is_disabled_again(tmp_path):
    """The satellite's EVSE comes back through the SatelliteController (generic/CommunicationFault cleared
    after its resync): OCPP tells the fresh EVSE the CSMS's Inoperative again."""
    serial = new_serial()
    async with Csms() as csms:
        sat = Board("sat1", satellite(1, tmp_path, serial), tmp_path)
        main = Board("main", main_board(tmp_path, csms.url, [serial]), tmp_path)
        try:
            await sat.start()
            await main.start()
            await csms.wait_for("StatusNotification", status(2, "Available"), timeout=30)
            await csms.call_action("CP1", "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
            assert csms.last_answer("CP1", "ChangeAvailability") == {"status": "Accepted"}
            await csms.wait_for("StatusNotification", status(2, "Unavailable"), timeout=30)
            await sat.kill()  # the satellite loses power and boots again: its EvseManager starts enabled
            await csms.wait_for("StatusNotification", status(2, "Faulted"), timeout=30)
            mark = len(csms.received)
            assert sat.probe is not None  # the satellite's broker and probe outlive its stack
            satellite_events = sat.probe.watch("evse2", "evse", "session_event")
            await sat.start()
            await satellite_events.wait_for(lambda e: e["event"] == "Disabled", 30)  # OCPP said so again
            await csms.wait_for("StatusNotification", status(2, "Unavailable"), timeout=30, after=mark)
            assert await sat.probe.call("evse2", "evse", "enable_disable", connector_id=0, cmd_source={
                "enable_source": "Unspecified", "enable_state": "Unassigned", "enable_priority": 9000}) is False
            assert "Available" not in [r.payload["status"] for r in csms.received[mark:]
                                       if r.action == "StatusNotification" and r.payload["connectorId"] == 2]
        finally:
            await main.close()
            await sat.close()
