"""Restarts on either side of the link, every board a separate process with its own mosquitto: the
satellite stack killed, only its agent killed, the main board killed, an orderly satellite reboot. Nobody
else restarts; the link comes back and resynchronises."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest
from boards import (
    controller_entry,
    is_fault,
    main_config,
    new_serial,
    satellite_config,
)

from everpy import PeerUnavailable


async def test_killed_satellite_stack_faults_fast_and_resyncs_after_restart(boards) -> None:
    serial = new_serial()
    sat = await boards("sat", satellite_config(serial))
    main = await boards("main", main_config({"sat1": controller_entry(serial)}))
    probe = main.probe
    first_boot = (await probe.call("sat1", "satellite", "get_satellite_info"))["boot_id"]
    errors = probe.watch_errors("sat1", "evse_manager")
    states = probe.watch("sat1", "satellite", "connection_state")
    await probe.flush()
    main_pid = main.pid

    killed_at = time.monotonic()
    await sat.kill()
    fault = await errors.wait_for(is_fault("Active"), timeout=10)
    detected_after = time.monotonic() - killed_at
    assert detected_after < 0.6 + 0.2 + 1.0  # heartbeat timeout + interval, plus scheduling slack
    assert "satellite" in fault["message"]
    await states.wait_for(lambda s: s["state"] == "Lost", timeout=10)
    started = time.monotonic()
    with pytest.raises(PeerUnavailable):
        await probe.call("sat1", "evse_manager", "get_evse")
    assert time.monotonic() - started < 2  # fails fast, no timeout

    await sat.start()  # new stack, new boot id, new port: found again over mDNS
    connected = await states.wait_for(lambda s: s["state"] == "Connected", timeout=30)
    assert connected["rebooted"] is True and connected["boot_id"] != first_boot
    await errors.wait_for(is_fault("ClearedByModule"), timeout=10)
    assert await probe.call("sat1", "evse_manager", "get_evse") == {
        "id": 1, "connectors": [{"id": 1, "type": "cType2"}]}
    assert main.pid == main_pid and main.process.returncode is None  # the main board never restarted


async def test_killed_agent_process_alone_is_restarted_and_followed(boards) -> None:
    """The agent in its own process (process: own): killing just it leaves the satellite's EVSE running;
    the satellite's runtime restarts the agent, the main board follows the new boot id."""
    serial = new_serial()
    config = satellite_config(serial)
    config["active_modules"]["agent"]["process"] = "own"
    sat = await boards("sat", config)
    main = await boards("main", main_config({"sat1": controller_entry(serial)}))
    probe = main.probe
    first = (await probe.call("sat1", "satellite", "get_satellite_info"))["boot_id"]
    states = probe.watch("sat1", "satellite", "connection_state")
    await probe.flush()
    agent_pid = int(re.findall(r"started module agent in its own process \(pid (\d+)\)", sat.log_tail(400))[-1])
    board_pid = sat.pid
    os.kill(agent_pid, signal.SIGKILL)
    await states.wait_for(lambda s: s["state"] == "Lost", timeout=10)
    with pytest.raises(PeerUnavailable):
        await probe.call("sat1", "evse_manager", "get_evse")
    connected = await states.wait_for(lambda s: s["state"] == "Connected", timeout=30)
    assert connected["rebooted"] is True and connected["boot_id"] != first
    assert await probe.call("sat1", "evse_manager", "get_evse")
    assert sat.pid == board_pid and sat.process.returncode is None


async def test_killed_main_board_reconnects_without_restarting_satellites(boards) -> None:
    serials = [new_serial() for _ in range(2)]
    sats = await asyncio.gather(*(boards(f"sat{i}", satellite_config(s)) for i, s in enumerate(serials)))
    config = main_config({f"sat{i}": controller_entry(s) for i, s in enumerate(serials)})
    main = await boards("main", config)
    boots = [(await main.probe.call(f"sat{i}", "satellite", "get_satellite_info"))["boot_id"] for i in range(2)]
    sat_pids = [sat.pid for sat in sats]
    links = [sat.probe.watch("agent", "link", "connection_state") for sat in sats]
    for sat in sats:
        await sat.probe.flush()

    await main.kill()
    for link in links:  # the satellites notice (TCP closed by the kernel) and keep running
        await link.wait_for(lambda s: s["state"] == "Lost", timeout=10)
    await main.start()
    for i in range(2):
        info = await main.probe.call(f"sat{i}", "satellite", "get_satellite_info")
        assert info["boot_id"] == boots[i]  # same satellite stacks as before
        assert await main.probe.call(f"sat{i}", "evse_manager", "get_evse")
    assert [sat.pid for sat in sats] == sat_pids
    assert all(sat.process.returncode is None for sat in sats)


async def test_satellite_reboot_is_followed_without_restarting_the_main_board(boards) -> None:
    serial = new_serial()
    sat = await boards("sat", satellite_config(serial))
    main = await boards("main", main_config({"sat1": controller_entry(serial)}))
    probe = main.probe
    first = (await probe.call("sat1", "satellite", "get_satellite_info"))["boot_id"]
    states = probe.watch("sat1", "satellite", "connection_state")
    await probe.flush()
    main_pid = main.pid
    await sat.stop()  # orderly: bye + mDNS goodbye
    await states.wait_for(lambda s: s["state"] == "Lost", timeout=10)
    await sat.start()
    connected = await states.wait_for(lambda s: s["state"] == "Connected", timeout=30)
    assert connected["rebooted"] is True and connected["boot_id"] != first
    assert main.pid == main_pid
