"""Logging: one logger per module instance (``everpy.<module_id>``), levels per module."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

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
