"""Pacing of state changes to the CSMS: per key (a connector, an EVSE) a token bucket, the latest state
always delivered.

A normal session changes a connector's state a few times in a few seconds (Preparing, Charging,
SuspendedEV, ...); a faulty board can flap it hundreds of times a second, and a CSMS throttles or bans a
station that reports each one. Per key, a burst of ``burst`` changes goes out at once; beyond it at most
one change per ``interval_s``. Changes in between are coalesced: only the latest state is kept and sent
when the next slot opens; a state that returns to the one last delivered sends nothing. A forced
delivery (the CSMS asked for it, a new connection) is never held back and takes no slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from everpy.core.clock import Clock, TimerHandle
from everpy.core.logs import LogThrottle

K = TypeVar("K", bound=Hashable)
S = TypeVar("S")

BURST_RANGE = (1, 100)
INTERVAL_RANGE_S = (0.1, 3600.0)
_TOLERANCE = 1e-6  # of a token: float rounding must not leave a slot a hair short of open


@dataclass(frozen=True)
class PacingSettings:
    burst: int = 5  # changes that go out at once
    interval_s: float = 5.0  # beyond the burst, at most one change per this

    def __post_init__(self) -> None:
        if not BURST_RANGE[0] <= self.burst <= BURST_RANGE[1]:
            raise ValueError(f"pacing burst must be {BURST_RANGE[0]}..{BURST_RANGE[1]}, not {self.burst}")
        if not INTERVAL_RANGE_S[0] <= self.interval_s <= INTERVAL_RANGE_S[1]:
            raise ValueError(f"pacing interval must be {INTERVAL_RANGE_S[0]}..{INTERVAL_RANGE_S[1]} s, "
                             f"not {self.interval_s}")


class _Bucket:
    """Tokens refill at one per interval up to the burst."""

    def __init__(self, settings: PacingSettings, now: float) -> None:
        self.settings = settings
        self.tokens = float(settings.burst)
        self.at = now

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.settings.burst), self.tokens + (now - self.at) / self.settings.interval_s)
        self.at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0 - _TOLERANCE:  # a slot timer that fired on time finds a whole token
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is there."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) * self.settings.interval_s)


Deliver = Callable[[K, S], Awaitable[bool]]


class ChangePacer(Generic[K, S]):
    """Delivers each key's state changes through ``deliver(key, state) -> delivered?`` at a bounded rate.

    States are compared with ``==``: a field that must not make two states differ (a timestamp) is left
    out of the comparison (``dataclasses.field(compare=False)``). One delivery per key runs at a time, so
    the "changed?" check and the record of what was delivered never interleave.
    """

    def __init__(self, clock: Clock, settings: PacingSettings, deliver: Deliver[K, S], log: logging.Logger,
                 what: str = "state") -> None:
        self.clock = clock
        self.settings = settings
        self._deliver = deliver
        self._what = what
        self._buckets: dict[K, _Bucket] = {}
        self._delivered: dict[K, S] = {}
        self._held: dict[K, S] = {}
        self._timers: dict[K, TimerHandle] = {}
        self._locks: dict[K, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._coalesced: dict[K, int] = {}
        self._offered: dict[K, int] = {}  # per key, the number of the newest change offered
        self._log = log
        self._throttle = LogThrottle(log, 60.0, clock.monotonic)

    def delivered(self, key: K) -> S | None:
        return self._delivered.get(key)

    def held(self, key: K) -> S | None:
        """The state waiting for the next slot, if any."""
        return self._held.get(key)

    def coalesced(self, key: K) -> int:
        """How many changes of ``key`` were folded into a later one (diagnostics, tests)."""
        return self._coalesced.get(key, 0)

    async def change(self, key: K, state: S) -> None:
        """A new state: delivered now if a slot is free, else held until the next slot opens (a later
        change replaces it). Returns once it was delivered, held or overtaken by a newer change (offered
        while this one waited for a delivery in flight: that one is the present state)."""
        number = self._offered[key] = self._offered.get(key, 0) + 1
        async with self._lock(key):
            if number != self._offered[key]:
                self._coalesced[key] = self._coalesced.get(key, 0) + 1
                return
            if state == self._delivered.get(key):
                self._drop_held(key)  # flapped back: the CSMS already has this state
                return
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.settings, self.clock.monotonic())
            if not bucket.take(self.clock.monotonic()):
                self._hold(key, state, bucket.wait_s(self.clock.monotonic()))
                return
            self._drop_held(key)
            await self._deliver_locked(key, state)

    async def force(self, key: K, state: S) -> None:
        """Deliver now, whatever was delivered before and whatever the rate (a TriggerMessage, a new
        connection); a held older state is obsolete."""
        async with self._lock(key):
            self._drop_held(key)
            await self._deliver_locked(key, state)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._held.clear()
        for task in list(self._tasks):
            task.cancel()

    # -- internals ---------------------------------------------------------------------------------------
    def _lock(self, key: K) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _deliver_locked(self, key: K, state: S) -> None:
        if await self._deliver(key, state):
            self._delivered[key] = state

    def _hold(self, key: K, state: S, wait_s: float) -> None:
        replaced = key in self._held
        self._held[key] = state
        if replaced:
            self._coalesced[key] = self._coalesced.get(key, 0) + 1
        self._throttle(f"coalescing {key}", logging.WARNING,
                       "%s %s changes faster than %d at once and 1 per %.1f s: changes are coalesced, the latest "
                       "goes out when the next slot opens", self._what, key, self.settings.burst,
                       self.settings.interval_s)
        if key not in self._timers:
            self._timers[key] = self.clock.call_later(wait_s, lambda: self._slot_open(key))

    def _drop_held(self, key: K) -> None:
        if self._held.pop(key, None) is not None:
            self._coalesced[key] = self._coalesced.get(key, 0) + 1
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _slot_open(self, key: K) -> None:
        self._timers.pop(key, None)
        state = self._held.pop(key, None)
        if state is None:
            return
        task = asyncio.ensure_future(self.change(key, state))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("delivery of a held %s failed", self._what, exc_info=task.exception())
