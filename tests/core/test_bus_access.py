"""The private bus takes logged-in clients only, and a module in its own process may publish only what its
place in the module graph allows: a real mosquitto with the generated password file and ACL, the runtime,
and clients trying the forged messages a local attacker would (a process without a login, and one holding a
module's login, as a compromised module process would)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from everpy.cli import state_file, write_state_record
from everpy.core import wire
from everpy.core.bus import BrokerAddress, Bus, BusError
from everpy.core.bus_access import module_user
from everpy.testing import run_system

WAIT_S = 10.0


def graph() -> dict[str, Any]:
    """A caller in its own process that requires the callee; a bystander it has no business with."""
    return {
        "settings": {"ready_timeout_s": 20},
        "active_modules": {
            "caller": {"module": "Probe", "process": "own",
                       "connections": {"peer": [{"module_id": "callee", "implementation_id": "main"}]}},
            "callee": {"module": "Probe"},
            "bystander": {"module": "Probe"},
        },
    }


async def test_a_client_without_a_login_is_refused(probe_dirs):
    async with run_system(graph(), **probe_dirs) as system:
        broker = system.runtime.broker
        anonymous = Bus(BrokerAddress(broker.host, broker.port), "intruder")
        with pytest.raises(BusError, match="refused the login as anonymous"):
            await anonymous.connect(timeout=WAIT_S)
        wrong = Bus(BrokerAddress(broker.host, broker.port, username=module_user("caller"), password="guess"), "x")
        with pytest.raises(BusError, match="refused the login"):
            await wrong.connect(timeout=WAIT_S)


async def test_a_modules_login_publishes_only_what_its_place_in_the_graph_allows(probe_dirs):
    async with run_system(graph(), **probe_dirs) as system:
        runtime, topics = system.runtime, system.runtime.topics
        login = runtime.child_login("caller")
        assert login is not None
        stolen = Bus(runtime.broker.as_user(*login), "compromised-caller")
        await stolen.connect(timeout=WAIT_S)
        seen: list[str] = []
        marker = asyncio.Event()
        system_bus = Bus(runtime.broker, "witness")  # the runtime's login: it hears everything
        await system_bus.connect()

        def heard(topic: str, payload: bytes) -> None:
            seen.append(topic)
            if topic == topics.heartbeat("caller") and payload == b"marker":
                marker.set()

        system_bus.subscribe(f"{topics.prefix}#", heard)
        await system.flush()  # the witness's subscription is in place
        forged = {
            topics.module_state("callee"): wire.encode(wire.MODULE_STATE, {"state": "down"}),
            topics.global_ready: wire.encode(wire.GLOBAL_READY, True),
            topics.module_ready("bystander"): wire.encode(wire.MODULE_READY, True),
            topics.cmd("bystander", "main", "echo"): wire.cmd_request("f1", {"value": 1}, "caller"),
            topics.var("callee", "main", "value"): wire.encode(wire.VAR, 666),
            topics.system_restart: wire.encode(wire.SYSTEM_RESTART, {"module": "caller", "reason": "forged"}),
        }
        allowed = {topics.cmd("callee", "main", "echo"): wire.cmd_request("ok1", {"value": 2}, "caller")}
        for topic, payload in {**forged, **allowed}.items():
            stolen.publish(topic, payload)
        # the broker keeps one client's messages in order: once the marker is heard, anything forged
        # before it would have been heard already
        stolen.publish(topics.heartbeat("caller"), b"marker")
        await asyncio.wait_for(marker.wait(), WAIT_S)
        await stolen.close()
        await system_bus.close()
        assert not runtime.restart_requested
    assert [topic for topic in forged if topic in seen] == []
    assert list(allowed)[0] in seen


async def test_the_operator_login_is_recorded_for_the_service_user_and_group_only(probe_dirs, tmp_path: Path,
                                                                                  monkeypatch):
    """`everpy call` / `monitor` read the operator's login from the state record: mode 0640 in a 0750
    directory; with it a client logs in and may call any module."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    async with run_system(graph(), **probe_dirs) as system:
        record = state_file("test-operator")
        write_state_record(record, system.runtime, "everest", tmp_path / "config.yaml")
        assert stat.S_IMODE(os.stat(record).st_mode) == 0o640
        assert stat.S_IMODE(os.stat(record.parent).st_mode) == 0o750
        import json

        info = json.loads(record.read_text())
        operator = Bus(BrokerAddress(info["host"], info["port"], username=info["user"], password=info["password"]),
                       "operator")
        await operator.connect(timeout=WAIT_S)
        await operator.close()
