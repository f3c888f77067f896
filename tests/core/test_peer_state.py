"""Remote.subscribe_state: a module hears its peer go down and come back (issue #10)."""

import asyncio
import os
import signal
from collections.abc import Callable

from everpy.core import wire
from everpy.testing import RunningSystem, run_system


def watcher_of(target: dict) -> dict:
    return {
        "settings": {"ready_timeout_s": 20, "heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 3,
                     "restart_backoff_s": 1.0},
        "active_modules": {
            "watcher": {"module": "Sentinel",
                        "connections": {"peer": [{"module_id": "target", "implementation_id": "main"}]}},
            "target": {"module": "Probe", **target},
        },
    }


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def _restart_of(system: RunningSystem, module_id: str, crash: Callable[[], object]) -> None:
    """Crash `module_id` by `crash()` and wait until it is back (its state "ready" on the bus)."""
    states = system.watch_topic(system.topics.module_state(module_id))
    await system.flush()
    result = crash()
    if asyncio.iscoroutine(result):
        await result
    await states.wait_for(lambda p: b'"down"' in p, timeout=20)
    await states.wait_for(lambda p: b'"ready"' in p, timeout=30)


async def test_in_process_peer_crash_is_seen_and_a_restarted_subscriber_keeps_listening(probe_dirs):
    async with run_system(watcher_of({}), **probe_dirs) as system:
        first = system.instances["watcher"]
        assert first.states == []  # type: ignore[attr-defined]
        await _restart_of(system, "target", lambda: system.call("target", "main", "crash"))
        await _until(lambda: first.states == ["down", "ready"])  # type: ignore[attr-defined]

        # The subscriber restarts: its old callback goes with its old instance, the new init() subscribes
        await _restart_of(system, "watcher", lambda: system.call("watcher", "main", "crash"))
        second = system.instances["watcher"]
        assert second is not first and second.states == []  # type: ignore[attr-defined]
        await _restart_of(system, "target", lambda: system.call("target", "main", "crash"))
        await _until(lambda: second.states == ["down", "ready"])  # type: ignore[attr-defined]
        assert first.states == ["down", "ready"]  # type: ignore[attr-defined]
        assert await system.call("watcher", "main", "peer_states") == ["down", "ready"]


async def test_killed_own_process_peer_is_seen_down_then_ready(probe_dirs):
    async with run_system(watcher_of({"process": "own"}), **probe_dirs) as system:
        watcher = system.instances["watcher"]
        child = system.runtime.children["target"]
        assert child.process is not None
        await _restart_of(system, "target", lambda: os.kill(child.process.pid, signal.SIGKILL))  # type: ignore[union-attr]
        await _until(lambda: watcher.states == ["down", "ready"])  # type: ignore[attr-defined]


async def test_a_subscriber_starting_while_its_peer_is_down_hears_down_first(probe_dirs):
    async with run_system(watcher_of({"process": "own"}), **probe_dirs) as system:
        child = system.runtime.children["target"]
        assert child.process is not None
        target_states = system.watch_topic(system.topics.module_state("target"))
        watcher_states = system.watch_topic(system.topics.module_state("watcher"))
        await system.flush()
        os.kill(child.process.pid, signal.SIGKILL)
        await target_states.wait_for(lambda p: b'"down"' in p, timeout=20)
        await system.call("watcher", "main", "crash")  # back after 1 s; the child needs that plus a start
        await watcher_states.wait_for(lambda p: b'"ready"' in p, timeout=30)
        restarted = system.instances["watcher"]
        await target_states.wait_for(lambda p: b'"ready"' in p, timeout=30)
        await _until(lambda: restarted.states == ["down", "ready"])  # type: ignore[attr-defined]


async def test_a_made_up_module_state_on_the_bus_is_not_a_peer_coming_back(probe_dirs):
    """Any local process can publish on a ModuleState topic: only "down" and "ready" count."""
    async with run_system(watcher_of({}), **probe_dirs) as system:
        watcher = system.instances["watcher"]
        host = system.runtime.host
        assert host is not None

        def announce(module_id: str, data: object) -> None:
            system.bus.publish(system.topics.module_state(module_id), wire.encode(wire.MODULE_STATE, data))

        announce("target", {"state": "down"})
        await _until(lambda: watcher.states == ["down"])  # type: ignore[attr-defined]
        for bogus in ({"state": "banana"}, {"state": 7}, {}, "ready"):
            announce("target", bogus)
        announce("marker", {"state": "down"})  # after the bogus ones on the same connection: all were read
        await _until(lambda: "marker" in host._down_modules)
        assert "target" in host._down_modules  # none of them read as the peer coming back
        assert watcher.states == ["down"]  # type: ignore[attr-defined]
        announce("target", {"state": "ready"})
        await _until(lambda: watcher.states == ["down", "ready"])  # type: ignore[attr-defined]
