"""BoardLink on its own: a scripted board in the bsp's seat, module time on a FakeClock.

The bus tests (tests/charging/test_board_faults.py) run the same behaviour through a real failing
board module; here the order and timing of the attempts are checked exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from everpy_modules.EvseManager.board_link import BoardLink, LinkSettings

from everpy.core.clock import FakeClock
from everpy.core.exceptions import HandlerError

WAIT_S = 15.0


class ScriptedBoard:
    """Answers board calls: fails the commands in `failing`, holds a command in `held` until released."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, dict[str, Any]]] = []  # (module time, cmd, args) of every attempt
        self.failing: set[str] = set()
        self.held: dict[str, asyncio.Event] = {}
        self._called = asyncio.Event()

    async def call(self, cmd: str, timeout: float | None = None, **args: Any) -> None:
        self.calls.append((self.clock.monotonic(), cmd, args))
        self._called.set()
        if cmd in self.held:
            await self.held[cmd].wait()
        if cmd in self.failing:
            raise HandlerError(f"{cmd}: scripted failure")

    async def until_calls(self, count: int, cmd: str | None = None) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.of(cmd)) < count:
                self._called.clear()
                await self._called.wait()

    def of(self, cmd: str | None) -> list[tuple[float, str, dict[str, Any]]]:
        return [c for c in self.calls if cmd is None or c[1] == cmd]


class Link:
    def __init__(self, settings: LinkSettings) -> None:
        self.clock = FakeClock()
        self.board = ScriptedBoard(self.clock)
        self.latched: list[str] = []
        self.healed = 0
        self.link = BoardLink(self.board, self.clock, logging.getLogger("test.board_link"), settings,
                              on_latched=self.latched.append, on_healed=self._healed, on_enabled=lambda: None)

    def _healed(self) -> None:
        self.healed += 1

    async def advance_to_next_attempt(self, cmd: str) -> float:
        """Move module time until the next attempt of `cmd`; the module time it came at."""
        seen = len(self.board.of(cmd))
        async with asyncio.timeout(WAIT_S):
            while len(self.board.of(cmd)) == seen:
                await self.clock.advance(0.05)
                await asyncio.sleep(0)  # let the worker take its turn between two fake-clock steps
        return self.board.of(cmd)[-1][0]


@asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[Link]:
    link = Link(LinkSettings(**settings))
    task = asyncio.ensure_future(link.link.run())
    try:
        yield link
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_value_replaced_while_the_board_was_busy_is_never_sent() -> None:
    async with running() as t:
        t.board.held["pwm_on"] = asyncio.Event()
        t.link.set_pilot("pwm_on", value=50.0)
        await t.board.until_calls(1, "pwm_on")
        t.link.set_pilot("pwm_on", value=40.0)
        t.link.set_pilot("pwm_on", value=30.0)
        t.board.held.pop("pwm_on").set()
        await t.board.until_calls(2, "pwm_on")
        assert [c[2]["value"] for c in t.board.of("pwm_on")] == [50.0, 30.0]
        assert t.link.idle


async def test_retries_back_off_exponentially_to_the_cap_and_latch_once() -> None:
    async with running(failures_to_latch=6, retry_max_s=0.5, probe_interval_s=5.0) as t:
        t.board.failing.add("pwm_on")
        t.link.set_pilot("pwm_on", value=50.0)
        await t.board.until_calls(1, "pwm_on")
        times = [t.board.of("pwm_on")[0][0]]
        for _ in range(7):
            times.append(await t.advance_to_next_attempt("pwm_on"))
        gaps = [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)]
        # 0.1 doubling, capped at retry_max_s; after the 6th failure (latched) the doubling goes on up
        # to the probe interval
        assert gaps[:5] == [0.1, 0.2, 0.4, 0.5, 0.5]
        assert gaps[5:] == [3.2, 5.0]
        assert len(t.latched) == 1


async def test_opening_the_relays_goes_before_older_pending_commands() -> None:
    async with running() as t:
        t.board.held["enable"] = asyncio.Event()
        t.link.enable()
        await t.board.until_calls(1, "enable")
        t.link.set_pilot("cp_state_X1")
        t.link.set_overcurrent_limit(16.0)
        t.link.allow_power(False)
        t.board.held.pop("enable").set()
        await t.board.until_calls(4)
        assert [c[1] for c in t.board.calls] == ["enable", "allow_power_on", "cp_state_X1",
                                                 "ac_set_overcurrent_limit_A"]


async def test_a_latched_link_probes_the_safe_state_and_heals_after_successes_in_a_row() -> None:
    async with running(failures_to_latch=2, probe_interval_s=10.0, successes_to_heal=3) as t:
        t.board.failing.add("allow_power_on")
        t.link.allow_power(False)
        await t.board.until_calls(1, "allow_power_on")
        await t.advance_to_next_attempt("allow_power_on")
        assert t.latched and t.link.latched
        t.board.failing.clear()  # the board works again
        probes = [await t.advance_to_next_attempt("allow_power_on") for _ in range(3)]
        assert t.healed == 1 and not t.link.latched
        assert round(probes[2] - probes[1], 1) == 10.0  # nothing to send: a probe per probe interval
        assert not [c for c in t.board.calls if c[1] != "allow_power_on"]
