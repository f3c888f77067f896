"""Records what a `system` implementation publishes, from init() on (so nothing published in ready() is missed)."""

from __future__ import annotations

import asyncio
from typing import Any

from everpy import Module


class SystemStatusRecorder(Module):
    async def init(self) -> None:
        self.firmware: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        system = self.require("system")
        system.subscribe("firmware_update_status", lambda value: self._add(self.firmware, value))
        system.subscribe("log_status", lambda value: self._add(self.logs, value))

    def _add(self, into: list[dict[str, Any]], value: dict[str, Any]) -> None:
        into.append(value)
        self.changed.set()

    async def wait_for(self, into: list[dict[str, Any]], count: int, timeout: float = 15.0) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(into) < count:
                self.changed.clear()
                await self.changed.wait()
        return [_status(v) for v in into]


def _status(value: dict[str, Any]) -> str:
    return value.get("firmware_update_status") or value["log_status"]
