"""init -> ready lifecycle, hold-until-ready, start-up failures, supervision and restarts."""

import asyncio
import sys
from pathlib import Path

import pytest

from everpy import CommandTimeout, HandlerError, NotReadyError, PeerUnavailable
from everpy.core.exceptions import ModuleStartupError
from everpy.core.loading import load_system
from everpy.core.runtime import Runtime
from everpy.testing import run_system

PROBE_MODULES = [Path(__file__).parent / "fixtures" / "modules"]


def probes(**modules: dict) -> dict:
    return {
        "settings": {"ready_timeout_s": 20, "heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 3,
                     "restart_backoff_s": 0.1},
        "active_modules": {mid: {"module": "Probe", **spec} for mid, spec in modules.items()},
    }


async def test_calls_made_in_init_are_held_until_global_ready(probe_dirs):
    config = probes(
        caller={"config_module": {"call_peer_in_init": True},
                "connections": {"peer": [{"module_id": "callee", "implementation_id": "main"}]}},
        callee={},
    )
    async with run_system(config, **probe_dirs) as system:
        caller = system.instances["caller"]
        await asyncio.wait_for(_until(lambda: caller.results), 5)
        assert caller.results == ["from-init"]


async def test_commands_arriving_during_init_are_delivered_after_ready(probe_dirs):
    probe_module = _probe_module()
    probe_module.GATE, probe_module.IN_INIT = asyncio.Event(), asyncio.Event()
    system = load_system(probes(slow={"config_module": {"init": "gate"}}), **probe_dirs)
    runtime = Runtime(system)
    starting = asyncio.ensure_future(runtime.start())
    try:
        await asyncio.wait_for(probe_module.IN_INIT.wait(), 15)
        from everpy.core import wire
        from everpy.core.bus import Bus

        bus = Bus(runtime.broker, "t")
        await bus.connect()
        replies: list = []
        bus.subscribe(runtime.topics.cmd_response("slow", "main", "echo", "t"), lambda t, p: replies.append(p))
        bus.publish(runtime.topics.cmd("slow", "main", "echo"), wire.cmd_request("id-1", {"value": 7}, "t"))
        assert not runtime.global_ready and replies == []
        probe_module.GATE.set()
        await asyncio.wait_for(starting, 15)
        await asyncio.wait_for(_until(lambda: replies), 15)
        assert wire.decode(replies[0])[1]["data"]["retval"] == 7
        await bus.close()
    finally:
        probe_module.GATE.set()
        await runtime.stop()


async def test_failing_init_is_named(probe_dirs):
    system = load_system(probes(good={}, broken={"config_module": {"init": "fail"}}), **probe_dirs)
    runtime = Runtime(system)
    with pytest.raises(ModuleStartupError, match="'broken' failed to initialise: RuntimeError: probe told to fail"):
        await runtime.start()


async def test_module_that_never_gets_ready_is_named_within_the_bound(probe_dirs):
    config = probes(good={}, stuck={"config_module": {"init": "hang"}})
    config["settings"]["ready_timeout_s"] = 1
    runtime = Runtime(load_system(config, **probe_dirs))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ModuleStartupError, match=r"no ModuleReady within 1 s from: stuck"):
        await runtime.start()
    assert loop.time() - started < 4


async def test_crashed_in_process_module_restarts_and_peers_fail_fast_meanwhile(probe_dirs):
    config = probes(a={}, b={"connections": {"peer": [{"module_id": "a", "implementation_id": "main"}]}})
    config["settings"]["restart_backoff_s"] = 1.0
    async with run_system(config, **probe_dirs) as system:
        boot = await system.call("a", "main", "boot_id")
        states = system.watch_topic(system.topics.module_state("a"))
        await system.call("a", "main", "crash")
        await states.wait_for(lambda p: b'"down"' in p, timeout=5)
        with pytest.raises((PeerUnavailable, NotReadyError)):
            await system.instances["b"].require("peer").call("echo", value=1)
        await states.wait_for(lambda p: b'"ready"' in p, timeout=10)
        assert await system.call("a", "main", "boot_id") != boot
        assert await system.instances["b"].require("peer").call("echo", value=2) == 2


async def test_a_handler_still_running_when_its_module_crashes_is_answered(probe_dirs):
    """The caller of an async handler cut short by a restart gets an error at once, not its timeout."""
    config = probes(a={}, b={"connections": {"peer": [{"module_id": "a", "implementation_id": "main"}]}})
    config["settings"]["restart_backoff_s"] = 1.0
    async with run_system(config, **probe_dirs) as system:
        peer = system.instances["b"].require("peer")
        pending = asyncio.ensure_future(peer.call("wait_forever", timeout=30))
        states = system.watch_topic(system.topics.module_state("a"))
        await system.flush()
        await system.call("a", "main", "crash")
        await states.wait_for(lambda p: b'"down"' in p, timeout=5)
        with pytest.raises((PeerUnavailable, NotReadyError)):
            await asyncio.wait_for(pending, 10)


@pytest.mark.parametrize("fault", ["crash", "hang"])
async def test_own_process_module_is_restarted_without_stopping_others(probe_dirs, fault):
    config = probes(
        worker={"process": "own"},
        other={"connections": {"peer": [{"module_id": "worker", "implementation_id": "main"}]}},
    )
    config["settings"]["restart_backoff_s"] = 1.0  # long enough to observe the down state
    async with run_system(config, **probe_dirs) as system:
        assert system.runtime.children["worker"].process is not None
        boot = await system.call("worker", "main", "boot_id")
        other_boot = await system.call("other", "main", "boot_id")
        states = system.watch_topic(system.topics.module_state("worker"))
        if fault == "crash":
            with pytest.raises((CommandTimeout, PeerUnavailable)):  # the process dies before answering
                await system.call("worker", "main", "crash", timeout=1)
        else:
            with pytest.raises((CommandTimeout, PeerUnavailable)):
                await system.call("worker", "main", "block_loop", seconds=60, timeout=1)
        await states.wait_for(lambda p: b'"down"' in p, timeout=10)
        with pytest.raises(PeerUnavailable):
            await system.instances["other"].require("peer").call("echo", value=1)
        await states.wait_for(lambda p: b'"ready"' in p, timeout=20)
        assert await system.call("worker", "main", "boot_id") != boot
        assert await system.instances["other"].require("peer").call("echo", value="back") == "back"
        assert await system.call("other", "main", "boot_id") == other_boot  # never restarted


async def test_handler_error_does_not_kill_own_process_module(probe_dirs):
    config = probes(worker={"process": "own"})
    async with run_system(config, **probe_dirs) as system:
        with pytest.raises(HandlerError):
            await system.call("worker", "main", "block_loop", seconds=-1)  # time.sleep(-1) raises
        assert await system.call("worker", "main", "echo", value=3) == 3


def _probe_module():
    from everpy.core.plugins import discover

    mtype = discover(**{"extra_module_dirs": PROBE_MODULES}).module_types["Probe"]
    return sys.modules[mtype.load_class().__module__]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_private_broker_is_restarted_and_modules_reconnect(probe_dirs):
    async with run_system(probes(a={}), **probe_dirs) as system:
        broker = system.runtime._private_broker
        assert broker is not None and broker._process is not None
        broker._process.kill()  # the broker dies under a running system
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # the runtime restarts it on the same port; modules and probe reconnect by themselves
            try:
                assert await system.call("a", "main", "echo", value="again", timeout=1) == "again"
                break
            except CommandTimeout:
                assert asyncio.get_running_loop().time() < deadline


async def test_missing_mosquitto_gives_an_install_hint(monkeypatch, probe_dirs):
    from everpy.core import broker as broker_module
    from everpy.core.broker import BrokerError

    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)  # as on a machine without it
    runtime = Runtime(load_system(probes(a={}), **probe_dirs))
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        await runtime.start()


async def test_a_module_can_ask_for_a_restart_of_the_whole_system(probe_dirs):
    async with run_system(probes(a={}, b={"process": "own"}), **probe_dirs) as system:
        system.instances["a"].request_system_restart("soft reset requested by the CSMS")
        await asyncio.wait_for(system.runtime.stop_requested.wait(), 5)
        assert system.runtime.restart_requested
