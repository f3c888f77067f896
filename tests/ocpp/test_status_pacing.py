"""A flapping connector through the real parts (SIL board, EvseManager, OCPP module, mosquitto, websocket,
development CSMS): its StatusNotifications are paced per connector and the last status reaches the CSMS.

The flapping is a board error raised and cleared as fast as the bus carries it (the simulator's
``inject_error``), so the connector alternates Faulted/Available hundreds of times."""

from __future__ import annotations

import time

from everpy.csms import Csms

from .station import WAIT_S, sil_station

FAULT = "evse_board_support/MREC3HighTemperature"
BURST = 3
INTERVAL_S = 2.0
FLAP_S = 8.0


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
        if flips % 2 == 0:  # end on a raise: the connector stays Faulted
            flips += 1
            await system.call("board", "ev_board_support", "inject_error", error_type=FAULT, active=True, sub_type="")
        elapsed = time.monotonic() - began
        pacer = station.ocpp.cp.status.pacer
        # the last status the CSMS has is the connector's present one, once the pacer holds nothing back
        await csms.wait_until(lambda: pacer.held(1) is None and _last_status(csms) == "Faulted"
                              and station.ocpp.cp.connectors.status_of(1)[0] == "Faulted", WAIT_S)
        sent = [r for r in csms.received[mark:] if r.action == "StatusNotification" and r.payload["connectorId"] == 1]
        changes = len(evse_errors.drain())
        assert changes >= 100, f"the error flapped only {changes} times through the EVSE"
        assert pacer.coalesced(1) > 0
        # a burst at once, then one per interval: per minute at most 60 / INTERVAL_S beyond the burst
        per_minute = (len(sent) - BURST) * 60 / elapsed
        assert per_minute <= 60 / INTERVAL_S + 60 / elapsed, [r.payload["status"] for r in sent]
        assert sent[-1].payload["errorCode"] == "HighTemperature"
        mark = len(csms.received)
        await system.call("board", "ev_board_support", "inject_error", error_type=FAULT, active=False, sub_type="")
        await station.status("Available", after=mark)  # at most one interval later, never lost


def _last_status(csms: Csms) -> str:
    return [r.payload["status"] for r in csms.messages("StatusNotification") if r.payload["connectorId"] == 1][-1]
