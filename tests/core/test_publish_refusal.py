"""A value outside its var's schema is the publisher's error, not its crash (issue #10)."""

import asyncio
import logging
from collections.abc import Callable

import pytest

from everpy.testing import RunningSystem, run_system

INVALID = "generic/InvalidVarValue"
CONFIG = {
    "settings": {"ready_timeout_s": 20, "restart_backoff_s": 0.1},
    "active_modules": {"pub": {"module": "Sentinel"}},
}


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def _refused_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "everpy.pub" and "refused to publish" in r.getMessage()]


async def _refuse_many(system: RunningSystem, count: int) -> None:
    """Until the module has had `count` more publishes refused (it publishes every 100 ms)."""
    refusals = system.runtime.host.slots["pub"].refusals  # type: ignore[union-attr]
    start = refusals.held("main/level")
    await _until(lambda: refusals.held("main/level") >= start + count)


async def test_bad_values_are_refused_raised_once_and_cleared_by_a_valid_one(probe_dirs, caplog):
    caplog.set_level(logging.INFO)
    async with run_system(CONFIG, **probe_dirs) as system:
        boot = await system.call("pub", "main", "boot_id")
        errors = system.watch_errors("pub", "main")
        levels = system.watch("pub", "main", "level")
        await system.call("pub", "main", "set_level", kind="text", value=0)
        raised = await errors.wait_for(lambda e: e["type"] == INVALID, timeout=10)
        assert raised["state"] == "Active" and raised["sub_type"] == "level"
        assert "'high' is not of type 'number'" in raised["message"] and len(raised["message"]) <= 200

        await _refuse_many(system, 25)  # 2.5 s of a bad value every 100 ms
        assert await system.call("pub", "main", "boot_id") == boot  # never restarted
        assert system.runtime.host.slots["pub"].crashes == 0  # type: ignore[union-attr]
        assert errors.drain() == []  # raised once, not once per publish
        assert len(_refused_lines(caplog)) == 1
        assert all(isinstance(v, (int, float)) for v in levels.drain())  # nothing refused reached the bus

        await system.call("pub", "main", "set_level", kind="good", value=5)
        cleared = await errors.wait_for(lambda e: e["type"] == INVALID, timeout=10)
        assert cleared["state"] == "ClearedByModule" and cleared["sub_type"] == "level"
        assert await levels.wait_for(lambda v: v == 5, timeout=10) == 5
        assert system.instances["pub"].active_errors("main") == []

        # After the clear a new fault is news: raised and logged at once; NaN is not JSON
        await system.call("pub", "main", "set_level", kind="nan", value=0)
        again = await errors.wait_for(lambda e: e["type"] == INVALID, timeout=10)
        assert again["state"] == "Active" and "JSON" in again["message"]
        await _refuse_many(system, 3)
        await system.call("pub", "main", "set_level", kind="object", value=0)  # a set: not JSON-encodable at all
        await _refuse_many(system, 3)
        assert len(_refused_lines(caplog)) == 2
        assert errors.drain() == []  # the var's error is still the one raised for NaN
        await system.call("pub", "main", "set_level", kind="good", value=1)
        assert (await errors.wait_for(lambda e: e["type"] == INVALID, timeout=10))["state"] == "ClearedByModule"
        assert await system.call("pub", "main", "boot_id") == boot


async def test_an_unknown_var_or_implementation_stays_a_programming_error(probe_dirs):
    async with run_system(CONFIG, **probe_dirs) as system:
        module = system.instances["pub"]
        with pytest.raises(KeyError, match="no var 'no_such_var'"):
            module.publish("main", "no_such_var", 1)
        with pytest.raises(KeyError, match="no provided implementation 'nope'"):
            module.publish("nope", "level", 1)
