"""Link faults between a main board and a satellite, each a separate process with its own mosquitto,
through a TCP proxy on loopback: dropped connection (missed pushes replayed in order), a silent link,
delayed replies, a wrong key."""

from __future__ import annotations

import asyncio
import time

import pytest
from boards import (
    FAULT,
    FaultProxy,
    controller_entry,
    is_fault,
    main_config,
    make_pki,
    new_serial,
    satellite_config,
)

from everpy import PeerUnavailable


async def _proxied_pair(boards, port_config: dict | None = None):
    """A satellite at a fixed address reached through a FaultProxy (host:port mode, no mDNS)."""
    import socket

    with socket.socket() as s:  # a free port for the agent, so the proxy knows where to forward
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serial = new_serial()
    sat = await boards("sat", satellite_config(serial, port=port, mdns=False))
    proxy = FaultProxy("127.0.0.1", port)
    proxy_port = await proxy.start()
    main = await boards("main", main_config({"sat1": controller_entry(
        serial, host="127.0.0.1", port=proxy_port, **(port_config or {}))}))
    return sat, main, proxy


async def test_dropped_tcp_connection_replays_what_the_main_board_missed(boards) -> None:
    sat, main, proxy = await _proxied_pair(boards)
    try:
        probe = main.probe
        boot = (await probe.call("sat1", "satellite", "get_satellite_info"))["boot_id"]
        errors = probe.watch_errors("sat1", "evse_manager")
        states = probe.watch("sat1", "satellite", "connection_state")
        evse_ids = probe.watch("sat1", "evse_manager", "evse_id")
        await probe.flush()

        proxy.silent = True  # cut cable: nothing closes, only the heartbeat can tell
        cut_at = time.monotonic()
        await errors.wait_for(is_fault("Active"), timeout=10)
        assert time.monotonic() - cut_at < 0.6 + 0.2 + 1.0
        # meanwhile the satellite's state changes: an error is raised and a var changes
        sat.probe.publish_error("evse", "evse", "evse_manager/MREC4OverCurrentFailure", "Active", message="sag")
        for n in range(3):  # several changes: the main board must get every one, in order
            await sat.probe.publish_var("evse", "evse", "evse_id", f"DE*TST*E4{n}")
        await sat.probe.flush()
        proxy.silent = False
        proxy.drop_all()  # the stale connection goes; the controller reconnects through the proxy

        raised = await errors.wait_for(lambda e: e["type"] == "evse_manager/MREC4OverCurrentFailure", timeout=15)
        assert raised["state"] == "Active" and raised["message"] == "sag"
        assert [await evse_ids.next(timeout=10) for _ in range(3)] == ["DE*TST*E40", "DE*TST*E41", "DE*TST*E42"]
        await errors.wait_for(is_fault("ClearedByModule"), timeout=10)
        connected = await states.wait_for(lambda s: s["state"] == "Connected", timeout=10)
        assert connected["rebooted"] is False and connected["boot_id"] == boot
        # cleared while connected: passes straight through
        sat.probe.publish_error("evse", "evse", "evse_manager/MREC4OverCurrentFailure", "ClearedByModule")
        await errors.wait_for(lambda e: e["type"] == "evse_manager/MREC4OverCurrentFailure"
                              and e["state"] == "ClearedByModule", timeout=10)
    finally:
        await proxy.close()


async def test_delayed_replies_below_the_heartbeat_timeout_keep_the_link(boards) -> None:
    sat, main, proxy = await _proxied_pair(boards)
    try:
        probe = main.probe
        errors = probe.watch_errors("sat1", "evse_manager")
        await probe.flush()
        proxy.delay_s = 0.25  # below the 0.6 s heartbeat timeout
        started = time.monotonic()
        assert await probe.call("sat1", "evse_manager", "get_evse")
        assert time.monotonic() - started >= 0.25
        await asyncio.sleep(1.5)  # several heartbeats at the delayed pace (observation window, not sync)
        assert not [e for e in errors.drain() if e["type"] == FAULT]
        proxy.delay_s = 2.0  # now beyond it: the link counts as lost, then comes back
        await errors.wait_for(is_fault("Active"), timeout=10)
        proxy.delay_s = 0.0
        await errors.wait_for(is_fault("ClearedByModule"), timeout=20)
        assert await probe.call("sat1", "evse_manager", "get_evse")
        assert sat.process.returncode is None
    finally:
        await proxy.close()


async def test_wrong_key_is_refused(boards) -> None:
    serial = new_serial()
    sat = await boards("sat", satellite_config(serial))
    wrong = "ff" * 32
    main = await boards("main", main_config({"sat1": controller_entry(serial, psk=wrong, startup_wait_s=2)}))
    probe = main.probe
    assert await probe.call("sat1", "satellite", "is_connected") is False
    with pytest.raises(PeerUnavailable, match="not connected"):
        await probe.call("sat1", "evse_manager", "get_evse")
    active = await probe.call("sat1", "satellite", "get_satellite_info")
    assert active == {}  # never got past the key handshake
    # the link keeps retrying: under load the first attempt may come after startup_wait_s
    await logged(main, "pre-shared key")
    await logged(sat, "refused connection")


async def logged(board, text: str, timeout: float = 20.0) -> None:
    """Bounded wait for a line in a board's log (another process writes it: there is no event)."""
    async with asyncio.timeout(timeout):
        while text not in board.log_tail(200):
            await asyncio.sleep(0.1)


async def test_tls_link_with_key(boards, tmp_path) -> None:
    pki = make_pki(tmp_path / "pki")
    serial = new_serial()
    await boards("sat", satellite_config(serial, tls_cert=pki["sat"], tls_key=pki["sat_key"]))
    main = await boards("main", main_config({
        "good": controller_entry(serial, tls_ca=pki["ca"]),
        "wrong_ca": controller_entry(serial, tls_ca=pki["other"], startup_wait_s=2),
        "no_tls": controller_entry(serial, startup_wait_s=2)}))
    probe = main.probe
    assert await probe.call("good", "satellite", "is_connected") is True
    assert await probe.call("good", "evse_manager", "get_evse")
    assert await probe.call("wrong_ca", "satellite", "is_connected") is False  # certificate not trusted
    assert await probe.call("no_tls", "satellite", "is_connected") is False  # plain TCP to a TLS server
