"""Logging: one logger per module instance (``everpy.<module_id>``), levels per module."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)-22s %(message)s"


def setup_logging(level: str | None = None, per_module: Mapping[str, str] | None = None) -> None:
    """Configure the root handler once; ``per_module`` maps module ids (or logger names) to levels."""
    level = (level or os.environ.get("EVERPY_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if not any(getattr(h, "_everpy", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler._everpy = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for name, module_level in (per_module or {}).items():
        logger_name = name if name.startswith("everpy") else f"everpy.{name}"
        logging.getLogger(logger_name).setLevel(module_level.upper())
    for noisy in ("websockets", "pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def parse_level_overrides(items: list[str]) -> dict[str, str]:
    """``["evse=DEBUG", "ocpp=WARNING"]`` -> {"evse": "DEBUG", "ocpp": "WARNING"}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, level = item.partition("=")
        if not sep or level.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"expected MODULE=LEVEL (e.g. evse=DEBUG), got {item!r}")
        out[name] = level.upper()
    return out


class LogThrottle:
    """At most one log line per key and interval; the suppressed count goes out with the next line.

    For faults that repeat at the rate of a loop (a board command failing, a bad value published every
    second): the first occurrence is logged at once, repeats within ``interval_s`` are only counted,
    and the first occurrence after the interval says how many were held back. Flash storage on a
    charger lasts years only if a stuck fault costs a few lines a minute, not a few megabytes.
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str, level: int, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval_s`` ago; True if logged."""
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, held, now - last if last is not None else 0.0)
        self.logger.log(level, msg, *args)
        return True

    def held(self, key: str) -> int:
        """Occurrences of ``key`` not logged yet."""
        return self._held.get(key, 0)

    def forget(self, key: str) -> None:
        """The fault behind ``key`` is over: its next occurrence is logged at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)
