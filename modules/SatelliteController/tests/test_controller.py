"""SatelliteController on the real bus against a scripted satellite (an everpy.rpc server speaking the
satellite protocol), to drive what a real agent would rarely do: malformed pushes, unknown tunnels,
interface mismatches, silent heartbeats, a changed boot id, resync of errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from everpy_modules.SatelliteController.controller import SatelliteController

from everpy import PeerUnavailable, SchemaValidationError
from everpy.rpc import MethodRegistry, RpcError, RpcPeer, RpcServer, load_key
from everpy.rpc.mdns import SatelliteAdvertiser
from everpy.testing import run_system

KEY = "0123456789abcdef0123456789abcdef"
SERIAL = "SAT-TEST-1"
FAULT = "generic/CommunicationFault"


class ScriptedSatellite:
    """Answers hello/subscribe/ping/call like an agent; the test changes what it says."""

    def __init__(self) -> None:
        self.boot_id = "a" * 32
        self.tunnels = {"evse_manager": "evse_manager", "powermeter": "powermeter"}
        self.snapshot: dict[str, Any] = {"seq": 0, "vars": {"evse_manager": {"evse_id": "DE*X*1"}}, "errors": {}}
        self.answer_pings = True
        self.hello_answer: Any = None  # None: a proper answer
        self.hello_serial = SERIAL
        self.pushes_before_answer: list[tuple[Any, ...]] = []
        self.peers: list[RpcPeer] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        registry = MethodRegistry()
        registry.register("hello", self.hello)
        registry.register("subscribe", self.subscribe)
        registry.register("ping", self.ping)
        registry.register("call", self.call)
        self.server = RpcServer(registry, psk=load_key(KEY), on_connect=self.peers.append)

    def hello(self, protocol: int, controller: dict[str, Any]) -> Any:
        if self.hello_answer is not None:
            return self.hello_answer
        return {"protocol": 1, "serial": self.hello_serial, "boot_id": self.boot_id, "version": "test",
                "tunnels": self.tunnels}

    def subscribe(self, resume: Any = None) -> dict[str, Any]:
        for push in self.pushes_before_answer:  # a real agent's pushes may overtake its answer too
            self.current.notify(*push)
        return self.snapshot

    async def ping(self, seq: int) -> int:
        if not self.answer_pings:
            await asyncio.Event().wait()  # a hung board: never answers
        return seq

    def call(self, tunnel: str, cmd: str, args: dict[str, Any]) -> Any:
        self.calls.append((tunnel, cmd, args))
        if cmd == "get_evse":
            return {"id": 2, "connectors": [{"id": 1}]}
        raise RpcError("SchemaValidationError", "arguments: bad")

    @property
    def current(self) -> RpcPeer:
        return [p for p in self.peers if not p.is_closed][-1]


@pytest.fixture
async def satellite() -> AsyncIterator[ScriptedSatellite]:
    sat = ScriptedSatellite()
    await sat.server.start("127.0.0.1", 0)
    yield sat
    await sat.server.close()


def controller_config(port: int, **extra: Any) -> dict[str, Any]:
    return {"active_modules": {"sat": {"module": "SatelliteController", "config_module": {
        "serial": SERIAL, "psk": KEY, "host": "127.0.0.1", "port": port, "heartbeat_interval_s": 0.1,
        "heartbeat_timeout_s": 0.3, "reconnect_max_s": 0.2, "startup_wait_s": 10, **extra}}}}


async def test_tunnels_vars_commands_and_typed_errors(satellite: ScriptedSatellite) -> None:
    async with run_system(controller_config(satellite.server.port)) as system:
        assert await system.call("sat", "satellite", "is_connected") is True
        assert await system.call("sat", "evse_manager", "get_evse") == {"id": 2, "connectors": [{"id": 1}]}
        assert satellite.calls[-1] == ("evse_manager", "get_evse", {})
        with pytest.raises(SchemaValidationError):  # the satellite's error type survives the link
            await system.call("sat", "evse_manager", "pause_charging")
        with pytest.raises(PeerUnavailable, match="does not tunnel system"):
            await system.call("sat", "system", "get_boot_reason")
        evse_ids = system.watch("sat", "evse_manager", "evse_id")
        await system.flush()
        satellite.current.notify("var", 1, "evse_manager", "evse_id", "DE*X*2")
        assert await evse_ids.next() == "DE*X*2"


async def test_malformed_pushes_are_dropped_and_the_link_survives(satellite: ScriptedSatellite,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    async with run_system(controller_config(satellite.server.port)) as system:
        evse_ids = system.watch("sat", "evse_manager", "evse_id")
        errors = system.watch_errors("sat", "evse_manager")
        await system.flush()
        peer = satellite.current
        peer.notify("var", 1, "evse_manager", "evse_id", 42)  # violates the var schema
        peer.notify("var", 1, "evse_manager", "no_such_var", 1)
        peer.notify("var", 1, "not_a_tunnel", "evse_id", "x")
        peer.notify("error", 1, "evse_manager", "not an error object")
        peer.notify("error", 1, "evse_manager", {"type": "nonsense/Unknown", "state": "Active"})
        peer.notify("var", 1, "evse_manager", "evse_id", "DE*X*3")  # order kept: this comes last
        assert await evse_ids.next() == "DE*X*3"
        assert errors.drain() == []
        assert await system.call("sat", "satellite", "is_connected") is True
        assert "dropped" in caplog.text


async def test_silent_satellite_is_detected_by_heartbeat_and_resynced(satellite: ScriptedSatellite) -> None:
    async with run_system(controller_config(satellite.server.port)) as system:
        errors = system.watch_errors("sat", "evse_manager")
        states = system.watch("sat", "satellite", "connection_state")
        await system.flush()
        # while connected, the satellite raises an error; the main board mirrors it
        satellite.current.notify("error", 1, "evse_manager", {
            "type": "evse_manager/PowermeterLost", "sub_type": "", "message": "meter gone", "state": "Active"})
        assert (await errors.next())["type"] == "evse_manager/PowermeterLost"
        satellite.answer_pings = False
        silenced = time.monotonic()
        fault = await errors.wait_for(lambda e: e["type"] == FAULT and e["state"] == "Active")
        assert time.monotonic() - silenced < 0.1 + 0.3 + 1.0
        assert "heartbeat" in fault["message"]
        with pytest.raises(PeerUnavailable):
            await system.call("sat", "evse_manager", "get_evse", timeout=2)
        # it comes back rebooted: new boot id, the meter error is gone, a new var value
        satellite.answer_pings = True
        satellite.boot_id = "b" * 32
        satellite.snapshot = {"seq": 0, "vars": {"evse_manager": {"evse_id": "DE*X*9"}}, "errors": {}}
        connected = await states.wait_for(lambda s: s["state"] == "Connected")
        assert connected["rebooted"] is True and connected["boot_id"] == "b" * 32
        cleared = await errors.wait_for(lambda e: e["type"] == "evse_manager/PowermeterLost")
        assert cleared["state"] == "ClearedByModule"
        await errors.wait_for(lambda e: e["type"] == FAULT and e["state"] == "ClearedByModule")


async def test_tunnel_with_another_interface_is_not_proxied(satellite: ScriptedSatellite,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    satellite.tunnels = {"evse_manager": "evse_manager", "powermeter": "system"}
    async with run_system(controller_config(satellite.server.port)) as system:
        info = await system.call("sat", "satellite", "get_satellite_info")
        assert info["interfaces"] == {"evse_manager": "evse_manager", "powermeter": "system"}
        with pytest.raises(PeerUnavailable, match="does not tunnel powermeter"):
            await system.call("sat", "powermeter", "stop_transaction", transaction_id="")
        assert "does not provide as such" in caplog.text


async def test_satellite_with_another_serial_is_refused(satellite: ScriptedSatellite) -> None:
    async with run_system(controller_config(satellite.server.port, serial="SAT-OTHER", startup_wait_s=1)) as system:
        assert await system.call("sat", "satellite", "is_connected") is False
        with pytest.raises(PeerUnavailable, match="SAT-OTHER"):
            await system.call("sat", "evse_manager", "get_evse")
        assert await system.call("sat", "satellite", "get_satellite_info") == {}
        controller = system.instance("sat", SatelliteController)
        for impl in ("satellite", "evse_manager", "powermeter", "system"):
            faults = [e for e in controller.active_errors(impl) if e["type"] == FAULT]
            assert faults and "SAT-OTHER" in faults[0]["message"]


@pytest.mark.parametrize("answer", [
    "not a map", {"protocol": 1}, {"protocol": 2, "serial": SERIAL, "boot_id": "b", "version": "v", "tunnels": {}},
    {"protocol": 1, "serial": SERIAL, "boot_id": "b", "version": "v", "tunnels": {"evse_manager": 5}},
])
async def test_malformed_hello_keeps_the_link_down_until_the_satellite_behaves(
        satellite: ScriptedSatellite, answer: Any, caplog: pytest.LogCaptureFixture) -> None:
    satellite.hello_answer = answer
    async with run_system(controller_config(satellite.server.port, startup_wait_s=0.5)) as system:
        assert await system.call("sat", "satellite", "is_connected") is False
        states = system.watch("sat", "satellite", "connection_state")
        await system.flush()
        satellite.hello_answer = None
        assert (await states.wait_for(lambda s: s["state"] == "Connected"))["serial"] == SERIAL
        assert await system.call("sat", "evse_manager", "get_evse")


async def test_pushes_that_overtake_the_subscribe_answer_are_applied_after_it(satellite: ScriptedSatellite) -> None:
    satellite.snapshot = {"seq": 5, "vars": {"evse_manager": {"evse_id": "SNAPSHOT"}}, "errors": {}}
    satellite.pushes_before_answer = [("var", 5, "evse_manager", "evse_id", "ALREADY-IN-SNAPSHOT"),
                                      ("var", 6, "evse_manager", "evse_id", "NEWER")]
    async with run_system(controller_config(satellite.server.port)) as system:
        controller = system.instance("sat", SatelliteController)
        assert controller.last_vars[("evse_manager", "evse_id")] == "NEWER"
        assert controller._resume["seq"] == 6


async def test_new_boot_id_in_the_mdns_advertisement_forces_a_reconnect(satellite: ScriptedSatellite) -> None:
    serial = f"SAT-{uuid.uuid4().hex[:8]}"  # unique: other runs may browse the same loopback
    satellite.hello_serial = serial
    advertiser = SatelliteAdvertiser(serial, satellite.server.port, ["127.0.0.1"],
                                     {"boot_id": satellite.boot_id, "proto": "1"})
    await advertiser.start()
    config = controller_config(0, serial=serial, host="", mdns_interfaces="lo", mdns_allow_loopback=True,
                               heartbeat_interval_s=5, heartbeat_timeout_s=5)  # only mDNS can tell quickly
    del config["active_modules"]["sat"]["config_module"]["port"]
    try:
        async with run_system(config) as system:
            states = system.watch("sat", "satellite", "connection_state")
            await system.flush()
            assert await system.call("sat", "satellite", "is_connected") is True
            satellite.boot_id = "c" * 32  # the board restarted behind a link that still looks open
            await advertiser.update(boot_id=satellite.boot_id)
            connected = await states.wait_for(lambda s: s["state"] == "Connected" and s["rebooted"])
            assert connected["boot_id"] == "c" * 32
    finally:
        await advertiser.stop()


async def test_transaction_of_a_rebooted_satellite_is_ended_with_its_last_reading(
        satellite: ScriptedSatellite) -> None:
    async with run_system(controller_config(satellite.server.port)) as system:
        events = system.watch("sat", "evse_manager", "session_event")
        await system.flush()
        reading = {"timestamp": "2026-01-01T00:10:00Z", "energy_Wh_import": {"total": 1234.0}}
        started = {"uuid": "tx-on-satellite", "event": "TransactionStarted", "timestamp": "2026-01-01T00:00:00Z",
                   "connector_id": 1, "transaction_started": {"id_tag": {"id_token": {"value": "T", "type": "ISO14443"},
                                                                         "authorization_type": "RFID"}}}
        satellite.current.notify("var", 1, "evse_manager", "session_event", started)
        satellite.current.notify("var", 2, "evse_manager", "powermeter", reading)
        assert (await events.next())["event"] == "TransactionStarted"
        satellite.boot_id = "b" * 32  # the board restarted: the link drops, it comes back with a new boot id
        satellite.snapshot = {"seq": 0, "vars": {}, "errors": {}}
        satellite.current.close()
        finished = await events.wait_for(lambda e: e["event"] == "TransactionFinished", 10)
        assert finished["uuid"] == "tx-on-satellite"
        assert finished["transaction_finished"]["reason"] == "PowerLoss"
        assert finished["transaction_finished"]["meter_value"] == reading
        assert (await events.next())["event"] == "SessionFinished"
