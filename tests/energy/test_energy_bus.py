"""EnergyManager + EnergyNode on the real bus, with stand-in EVSEs as leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from everpy import CommandError
from everpy.core.clock import FakeClock
from everpy.testing import RunningSystem, run_system

from .trees import entry, evse, limits

STANDINS = Path(__file__).resolve().parent.parent / "auth" / "standins"  # EvseStandIn


def conn(module_id: str, impl_id: str) -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": impl_id}


def energy_system(evses: int = 2, fuse_A: float = 32, with_node: bool = True) -> dict:
    modules: dict = {f"evse{i}": {"module": "EvseStandIn"} for i in range(1, evses + 1)}
    if with_node:
        modules["grid"] = {
            "module": "EnergyNode",
            "config_module": {"fuse_limit_A": fuse_A, "phase_count": 3, "child_request_timeout_s": 5},
            "connections": {"energy_consumer": [conn(f"evse{i}", "energy_grid") for i in range(1, evses + 1)]},
        }
    trunk = conn("grid", "energy_grid") if with_node else conn("evse1", "energy_grid")
    modules["em"] = {
        "module": "EnergyManager",
        "config_module": {"limits_valid_for_s": 7, "request_timeout_s": 5},
        "connections": {"energy_trunk": [trunk]},
    }
    return {"active_modules": modules}


def started(config: dict, clock: FakeClock | None = None):
    return run_system(config, clock=clock, extra_module_dirs=[STANDINS])


async def request(system: RunningSystem, evse_id: str, priority: bool = True, **kwargs) -> None:
    await system.publish_var(evse_id, "energy_grid", "energy_flow_request", evse(evse_id, priority=priority, **kwargs))


def amps(value: float):
    return lambda limits: limits["limits_root_side"]["ac_max_current_A"]["value"] == value


async def test_fuse_is_shared_equally_between_two_charging_evses() -> None:
    async with started(energy_system(fuse_A=32)) as system:
        await request(system, "evse1")
        await request(system, "evse2")
        for evse_id in ("evse1", "evse2"):
            got = await system.instances[evse_id].wait_for_limits(amps(16))
            assert got["valid_for"] == 7
            assert got["limits_root_side"]["ac_max_current_A"]["source"] == "grid fuse"
            assert got["limits_root_side"]["total_power_W"]["value"] == 16 * 3 * 230


async def test_external_limit_lowers_the_share_and_can_be_lifted() -> None:
    async with started(energy_system(fuse_A=32)) as system:
        await request(system, "evse1")
        await request(system, "evse2")
        await system.instances["evse2"].wait_for_limits(amps(16))
        ocpp_limit = {"schedule_import": [entry(limits(power_W=11040, source="OCPP"))], "schedule_export": []}
        await system.call("grid", "external_limits", "set_external_limits", value=ocpp_limit)
        for evse_id in ("evse1", "evse2"):
            got = await system.instances[evse_id].wait_for_limits(amps(8))  # 11040 W / 2 / (3 * 230 V)
            assert got["limits_root_side"]["total_power_W"]["source"] == "OCPP"
        await system.call(
            "grid", "external_limits", "set_external_limits", value={"schedule_import": [], "schedule_export": []}
        )
        await request(system, "evse1")
        system.instances["evse1"].enforced.clear()
        await system.instances["evse1"].wait_for_limits(amps(16))


async def test_malformed_external_limit_is_refused_and_changes_nothing() -> None:
    async with started(energy_system(fuse_A=20, evses=1)) as system:
        bad = {"schedule_import": [entry(limits(current_A=-3))], "schedule_export": []}
        with pytest.raises(CommandError, match="non-negative"):
            await system.call("grid", "external_limits", "set_external_limits", value=bad)
        await request(system, "evse1")
        await system.instances["evse1"].wait_for_limits(amps(20))


async def test_silent_evse_loses_its_share_and_a_silent_tree_gets_no_limits() -> None:
    clock = FakeClock()
    async with started(energy_system(fuse_A=32), clock) as system:
        node_requests = system.watch("grid", "energy_grid", "energy_flow_request")
        rounds = system.watch("em", "main", "enforced_limits")
        await request(system, "evse1")
        await request(system, "evse2")
        await system.instances["evse2"].wait_for_limits(amps(16))
        # evse1 falls silent; evse2 keeps publishing every second. The node drops evse1 after 5 s.
        for _ in range(8):
            node_requests.drain()
            await request(system, "evse2", priority=False)
            await node_requests.next()  # the node has taken evse2's request at this fake time
            rounds.drain()
            await clock.advance(1)
            await rounds.next()  # the EnergyManager ran its round for this second
        got = await system.instances["evse2"].wait_for_limits(amps(32))
        assert got["limits_root_side"]["ac_max_current_A"]["source"] == "evse2 hw"

        manager = system.instances["em"]
        assert await manager.distribute_once() != []
        await clock.advance(6)  # nobody publishes any more: the tree is stale
        assert await manager.distribute_once() == []


async def test_evse_as_trunk_without_node_gets_its_own_maximum() -> None:
    async with started(energy_system(evses=1, with_node=False)) as system:
        await request(system, "evse1", max_A=13)
        await system.instances["evse1"].wait_for_limits(amps(13))


async def test_idle_evse_leaves_the_whole_fuse_to_the_charging_one() -> None:
    async with started(energy_system(fuse_A=32)) as system:
        await request(system, "evse1", state="Unplugged")
        await request(system, "evse2")
        await system.instances["evse2"].wait_for_limits(amps(32))
        await system.instances["evse1"].wait_for_limits(amps(0))
