"""SatelliteAgent on a real satellite bus (simulated board + EvseManager), driven by hand-made main-board
connections: the allow-list, snapshot + pushes, replacement of an old main-board connection, dropping a
silent one, and refusing clients without the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from everpy_modules.SatelliteAgent.agent import SatelliteAgent

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

    async def next_var(self, var: str, timeout: float = 10) -> tuple[Any, ...]:
        """The next pushed change of ``var`` (the EVSE publishes other vars on its own meanwhile)."""
        async with asyncio.timeout(timeout):
            while (push := await self.next_push("var"))[2] != var:
                pass
        return push

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
    peer = await main.connect(satellite.instance("agent", SatelliteAgent).port)
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
    peer = await main.connect(satellite.instance("agent", SatelliteAgent).port)
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
        pushes = [await main.next_var("evse_id") for _ in range(5)]
        assert [p[3] for p in pushes] == [f"DE*S*{n + 2}" for n in range(5)]
        assert [p[0] for p in pushes] == sorted(p[0] for p in pushes)  # numbered in order
        evse = satellite.instances["evse"]
        evse.raise_error("evse", "evse_manager/PowermeterLost", "gone")
        _, tunnel, error = await main.next_push("error")
        assert (tunnel, error["type"], error["state"]) == ("evse_manager", "evse_manager/PowermeterLost", "Active")
        again = await peer.call("subscribe")  # the snapshot includes active errors
        assert [e["type"] for e in again["errors"]["evse_manager"]] == ["evse_manager/PowermeterLost"]
        evse.clear_error("evse", "evse_manager/PowermeterLost")
        assert (await main.next_push("error"))[2]["state"] == "ClearedByModule"
        assert (await peer.call("subscribe"))["errors"]["evse_manager"] == []
    finally:
        await peer.aclose()


async def test_a_new_main_board_connection_replaces_the_old_one(satellite: RunningSystem) -> None:
    port = satellite.instance("agent", SatelliteAgent).port
    old, new = MainBoard(), MainBoard()
    old_peer = await old.connect(port)
    new_peer = await new.connect(port)
    try:
        await old_peer.call("subscribe")
        await new_peer.call("subscribe")  # e.g. the main board restarted while the old TCP half-open
        await asyncio.wait_for(old_peer.wait_closed(), 10)
        await satellite.publish_var("evse", "evse", "evse_id", "DE*NEW")
        assert (await new.next_var("evse_id"))[3] == "DE*NEW"
    finally:
        await old_peer.aclose()
        await new_peer.aclose()


async def test_silent_main_board_is_dropped_and_the_link_faulted() -> None:
    async with run_system(satellite_config(controller_timeout_s=0.5)) as satellite:
        errors = satellite.watch_errors("agent", "link")
        await satellite.flush()
        main = MainBoard()
        peer = await main.connect(satellite.instance("agent", SatelliteAgent).port)
        await peer.call("subscribe")
        await asyncio.wait_for(peer.wait_closed(), 10)  # no pings: the agent hangs up
        fault = await errors.wait_for(lambda e: e["type"] == "generic/CommunicationFault")
        assert fault["state"] == "Active" and "nothing heard" in fault["message"]
        with pytest.raises(ConnectionLost):
            await peer.call("ping", 1)


async def test_clients_without_the_key_are_refused(satellite: RunningSystem) -> None:
    port = satellite.instance("agent", SatelliteAgent).port
    with pytest.raises(HandshakeFailed):
        await connect("127.0.0.1", port, psk=b"\x00" * 32)
    peer = await connect("127.0.0.1", port)  # no key at all
    try:
        with pytest.raises(RpcError) as caught:
            await peer.call("call", "evse_manager", "get_evse", {})
        assert caught.value.kind == "AuthRequired"
    finally:
        await peer.aclose()


async def test_a_returning_main_board_gets_exactly_what_it_missed() -> None:
    # room for what else the satellite publishes meanwhile (meter readings), also on a loaded machine
    async with run_system(satellite_config(journal_size=64)) as satellite:
        agent = satellite.instance("agent", SatelliteAgent)
        first = MainBoard()
        peer = await first.connect(agent.port)
        await peer.call("subscribe")
        await satellite.publish_var("evse", "evse", "evse_id", "before")
        seen = (await first.next_var("evse_id"))[0]
        await peer.aclose()  # link down; the satellite goes on
        for n in range(3):
            await satellite.publish_var("evse", "evse", "evse_id", f"missed-{n}")
        await satellite.flush()  # probe and EVSE are different MQTT clients: order them explicitly
        satellite.instances["evse"].raise_error("evse", "evse_manager/PowermeterLost", "meanwhile")
        await satellite.flush()

        again = MainBoard()
        peer = await again.connect(agent.port)
        try:
            answer = await peer.call("subscribe", {"boot_id": agent.boot_id, "seq": seen})
            replay = answer["replay"]
            assert [e[0] for e in replay] == list(range(seen + 1, answer["seq"] + 1))  # all, in order
            ours = [e[4] if e[1] == "var" else e[3]["type"] for e in replay
                    if (e[1] == "var" and e[3] == "evse_id") or e[1] == "error"]
            assert ours == ["missed-0", "missed-1", "missed-2", "evse_manager/PowermeterLost"]
            # another stack's numbers, or a point the journal no longer reaches: a snapshot instead
            assert "vars" in await peer.call("subscribe", {"boot_id": "other", "seq": seen})
            oldest = agent.journal[0][0]
            assert "replay" in await peer.call("subscribe", {"boot_id": agent.boot_id, "seq": oldest - 1})
            assert "vars" in await peer.call("subscribe", {"boot_id": agent.boot_id, "seq": oldest - 2})
        finally:
            await peer.aclose()


async def test_serial_read_from_a_file(tmp_path) -> None:
    serial_file = tmp_path / "serial"
    serial_file.write_text("SAT-FROM-FILE\n")
    async with run_system(satellite_config(serial=f"file:{serial_file}")) as satellite:
        board = MainBoard()
        peer = await board.connect(satellite.instance("agent", SatelliteAgent).port)
        try:
            assert (await peer.call("hello", 1, {"serial": "main", "boot_id": "x"}))["serial"] == "SAT-FROM-FILE"
        finally:
            peer.close()


def test_unreadable_or_malformed_serial_file_is_a_clear_error(tmp_path) -> None:
    from everpy_modules.SatelliteAgent.agent import read_serial

    with pytest.raises(ValueError, match="cannot read"):
        read_serial(f"file:{tmp_path / 'missing'}")
    (tmp_path / "bad").write_text("not a serial!\n")
    with pytest.raises(ValueError, match="expected 1-48 letters"):
        read_serial(f"file:{tmp_path / 'bad'}")
