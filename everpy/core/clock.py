"""Time for modules: a real clock and a fake one for tests.

Modules take all time from ``self.clock`` so tests can run hours of charging-protocol timers in
milliseconds by advancing a :class:`FakeClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


class TimerHandle:
    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._cancel()


class Clock:
    """Wall and monotonic time backed by the running event loop."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], Any]) -> TimerHandle:
        handle = asyncio.get_running_loop().call_later(max(0.0, seconds), _run_callback, callback)
        return TimerHandle(handle.cancel)

    async def wait_for(self, awaitable: Any, timeout: float | None) -> Any:
        """Like asyncio.wait_for, but the timeout runs on this clock (so a FakeClock drives it)."""
        if timeout is None:
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        expired = False

        def expire() -> None:
            nonlocal expired
            if not task.done():
                expired = True
                task.cancel()

        timer = self.call_later(timeout, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if expired:
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    async def wait_event(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set, at most ``timeout`` s on this clock; whether it was set."""
        try:
            await self.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _run_callback(callback: Callable[[], Any]) -> None:
    result = callback()
    if asyncio.iscoroutine(result):
        asyncio.ensure_future(result)


class FakeClock(Clock):
    """A clock that only moves when a test calls :meth:`advance`.

    Timers fire in deadline order; after each firing the event loop runs until idle so that work
    triggered by a timer (bus messages, other timers) settles before time moves on.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = 0.0
        self._epoch = start
        self._timers: list[tuple[float, int, Callable[[], Any], TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled = 0

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_later(seconds, wake)
        try:
            await future
        finally:
            handle.cancel()

    def call_later(self, seconds: float, callback: Callable[[], Any]) -> TimerHandle:
        handle = TimerHandle(self._cancelled_one)  # cancelled entries are skipped when they come due
        heapq.heappush(self._timers, (self._now + max(0.0, seconds), next(self._seq), callback, handle))
        return handle

    def _cancelled_one(self) -> None:
        """Like asyncio's loop: once over half the timers are cancelled, drop them (long timers that are
        re-armed, e.g. a 12-hour refresh, must not pile up until they come due)."""
        self._cancelled += 1
        if self._cancelled * 2 > len(self._timers) and len(self._timers) > 64:
            self._timers = [entry for entry in self._timers if not entry[3].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    @property
    def pending_timers(self) -> int:
        return sum(1 for *_, handle in self._timers if not handle.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order and letting the loop settle between them."""
        target = self._now + seconds
        await _settle()
        while self._timers and self._timers[0][0] <= target:
            deadline, _, callback, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
                continue
            self._now = max(self._now, deadline)
            handle.cancelled = True
            _run_callback(callback)
            await _settle()
        self._now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    """Give the event loop a few turns so callbacks scheduled by a timer can run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
