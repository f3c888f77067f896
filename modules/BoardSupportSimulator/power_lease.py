"""The board's watchdog on its manager: a power lease that runs on real time.

The lease watches whether the host and the bus are alive, so it must not run on the module clock: a
test's FakeClock jumps minutes at a time (a lease on it would expire at every jump), and a hung host
stops its fake clock too. It runs on the event loop's clock (time.monotonic), whatever ``self.clock`` is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class PowerLease:
    """Valid from a renewal for ``valid_for_ms``; calls ``on_expiry`` once when a lease runs out unrenewed."""

    def __init__(self, on_expiry: Callable[[], None]) -> None:
        self._on_expiry = on_expiry
        self._timer: asyncio.TimerHandle | None = None
        self._expires_at: float | None = None
        self.last_valid_for_ms: int | None = None

    @property
    def valid(self) -> bool:
        return self._timer is not None

    def remaining_s(self) -> float:
        """Seconds until the lease runs out; 0 without a valid lease."""
        if self._expires_at is None:
            return 0.0
        return max(0.0, self._expires_at - time.monotonic())

    def renew(self, valid_for_ms: int) -> None:
        """A new lease of ``valid_for_ms`` from now; it replaces the running one (shorter or longer)."""
        self.cancel()
        valid_for_s = valid_for_ms / 1000
        # loop.call_later runs on loop.time(), which is time.monotonic(): the same clock as _expires_at.
        self._expires_at = time.monotonic() + valid_for_s
        self._timer = asyncio.get_running_loop().call_later(valid_for_s, self._expire)
        self.last_valid_for_ms = valid_for_ms

    def cancel(self) -> None:
        """End the lease without calling ``on_expiry`` (the module stops)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._expires_at = None

    def _expire(self) -> None:
        self._timer = None
        self._expires_at = None
        self._on_expiry()
