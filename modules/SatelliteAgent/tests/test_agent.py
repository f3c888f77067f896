"""SatelliteAgent on a real satellite bus (simulated board + EvseManager), driven by hand-made main-board
connections: the allow-list, snapshot + pushes, replacement of an old main-board connection, dropping a
silent one, and refusing clients without the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from everpy.rpc import ConnectionLost, HandshakeFailed, MethodRegistry, RpcError, RpcPeer, connect, load_key
from everpy.testing import RunningSystem, run_system

KEY = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"


def satellite_config(**agent: Any) -> dict[str, Any]:
    return {"active_modules": {
        "evse": {"module": "EvseManager", "config_module": {"energy_management": False},
                 "connections": {"bsp": [{"module_id": "board", "implementation_id": "board_support"}]}},
        "board": {"module": "BoardSupportSimulator"},
        "agent": {"module": "SatelliteAgent",
                  "config_module": {"serial": "SAT-A1", "psk": KEY, "port": 0, "bind_host": "127.0.0.1",
                                    "mdns": False, **agent},
                  "connections": {"evse_manager": [{"module_id": "evse", "implementation_id": "evse"}]}}}}


class MainBoard:
    """A hand-made controller connection that records what the agent pushes."""

    def __init__(self) -> None:
        self.pushed: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self.registry = MethodRegistry()
        for name in ("var", "error", "bye"):
            self.registry.register(name, lambda *params, name=name: self.pushed.put_nowait((name, params)))
        self.peer: RpcPeer | None = None

    async def connect(self, port: int) -> RpcPeer:
        self.peer = await connect("127.0.0.1", port, self.registry, psk=load_key(KEY))
        return self.peer

    async def next_push(self, kind: str, timeout: float = 10) -> tuple[Any, ...]:
        async with asyncio.timeout(timeout):
            while True:
                name, params = await self.pushed.get()
                if name == kind:
                    return params


@pytest.fixture
async def satellite() -> AsyncIterator[RunningSystem]:
    async with run_system(satellite_config()) as system:
        yield system


async def test_hello_and_the_allow_list(satellite: RunningSystem) -> None:
    main = MainBoard()
    peer = await main.connect(satellite.instances["agent"].port)
    try:
        info = await peer.call("hello", 1, {"serial": "main", "boot_id": "x"})
        assert info["serial"] == "SAT-A1" and info["tunnels"] == {"evse_manager": "evse_manager"}
        with pytest.raises(RpcError) as caught:
            await peer.call("hello", 99, {})
        assert caught.value.kind == "ProtocolMismatch"
        assert await peer.call("call", "evse_manager", "get_evse", {}) == {
            "id": 1, "connectors": [{"id": 1, "type": "cType2"}]}
        for params, kind in ((("system", "get_boot_reason", {}), "UnknownTunnel"),
                             (("evse_manager", "shutdown", {}), "UnknownCommand"),
                             (("evse_manager", "get_evse", [1]), "InvalidParams"),
                             (("evse_manager", "reserve", {"reservation_id": "not a number"}),
                              "SchemaValidationError")):
            with pytest.raises(RpcError) as caught:
                await peer.call("call", *params)
            assert caught.value.kind == kind, params
        with pytest.raises(RpcError) as caught:  # nothing but the protocol's methods is reachable
            await peer.call("init")
        assert caught.value.kind == "NoSuchMethod"
    finally:
        await peer.aclose()


async def test_snapshot_then_pushes_in_order(satellite: RunningSystem) -> None:
    await satellite.publish_var("evse", "evse", "evse_id", "DE*S*1")
    await satellite.flush()
    main = MainBoard()
    peer = await main.connect(satellite.instances["agent"].port)
    link = satellite.watch("agent", "link", "connection_state")
    await satellite.flush()
    try:
        await peer.call("hello", 1, {})
        snapshot = await peer.call("subscribe")
        assert snapshot["vars"]["evse_manager"]["evse_id"] == "DE*S*1"
        assert (await link.next())["state"] == "Connected"
        assert await satellite.call("agent", "link", "is_connected") is True
        for n in range(5):
            await satellite.publish_var("evse", "evse", "evse_id", f"DE*S*{n + 2}")
        assert [(await main.next_push("var"))[2] for _ in range(5)] == [f"DE*S*{n + 2}" for n in range(5)]
        evse = satellite.instances["evse"]
        evse.raise_error("evse", "evse_manager/PowermeterLost", "gone")
        tunnel, error = await main.next_push("error")
        assert (tunnel, error["type"], error["state"]) == ("evse_manager", "evse_manager/PowermeterLost", "Active")
        again = await peer.call("subscribe")  # the snapshot includes active errors
        assert [e["type"] for e in again["errors"]["evse_manager"]] == ["evse_manager/PowermeterLost"]
        evse.clear_error("evse", "evse_manager/PowermeterLost")
        assert (await main.next_push("error"))[1]["state"] == "ClearedByModule"
        assert (await peer.call("subscribe"))["errors"]["evse_manager"] == []
    finally:
        await peer.aclose()


async def test_a_new_main_board_connection_replaces_the_old_one(satellite: RunningSystem) -> None:
    port = satellite.instances["agent"].port
    old, new = MainBoard(), MainBoard()
    old_peer = await old.connect(port)
    new_peer = await new.connect(port)
    try:
        await old_peer.call("subscribe")
        await new_peer.call("subscribe")  # e.g. the main board restarted while the old TCP half-open
        await asyncio.wait_for(old_peer.wait_closed(), 10)
        await satellite.publish_var("evse", "evse", "evse_id", "DE*NEW")
        assert (await new.next_push("var"))[2] == "DE*NEW"
    finally:
        await old_peer.aclose()
        await new_peer.aclose()


async def test_silent_main_board_is_dropped_and_the_link_faulted() -> None:
    async with run_system(satellite_config(controller_timeout_s=0.5)) as satellite:
        errors = satellite.watch_errors("agent", "link")
        await satellite.flush()
        main = MainBoard()
        peer = await main.connect(satellite.instances["agent"].port)
        await peer.call("subscribe")
        await asyncio.wait_for(peer.wait_closed(), 10)  # no pings: the agent hangs up
        fault = await errors.wait_for(lambda e: e["type"] == "generic/CommunicationFault")
        assert fault["state"] == "Active" and "nothing heard" in fault["message"]
        with pytest.raises(ConnectionLost):
            await peer.call("ping", 1)


async def test_clients_without_the_key_are_refused(satellite: RunningSystem) -> None:
    port = satellite.instances["agent"].port
    with pytest.raises(HandshakeFailed):
        await connect("127.0.0.1", port, psk=b"\x00" * 32)
    peer = await connect("127.0.0.1", port)  # no key at all
    try:
        with pytest.raises(RpcError) as caught:
            await peer.call("call", "evse_manager", "get_evse", {})
        assert caught.value.kind == "AuthRequired"
    finally:
        await peer.aclose()
