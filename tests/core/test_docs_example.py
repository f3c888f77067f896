"""The example in docs/writing-a-module.md runs as written, and the Example module's timer obeys the clock."""

import re
from pathlib import Path

from everpy.core.clock import FakeClock
from everpy.testing import run_system

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-module.md"


async def test_the_documented_test_passes():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    test_source = next(b for b in blocks if "async def test_" in b)
    namespace: dict = {}
    exec(compile(test_source, str(DOC), "exec"), namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    await test()


async def test_ticker_runs_on_the_fake_clock():
    clock = FakeClock()
    config = {"active_modules": {"counter": {"module": "Example", "config_module": {"tick_s": 60, "step": 5}}}}
    async with run_system(config, clock=clock) as system:
        values = system.watch("counter", "main", "value")
        await clock.advance(60 * 10)  # ten minutes of ticks, instantly
        assert await values.wait_for(lambda v: v == 50, timeout=5) == 50
        assert system.instances["counter"].value == 50
