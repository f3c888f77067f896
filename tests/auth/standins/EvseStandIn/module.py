"""Stand-in EVSE for Auth and energy tests: records the commands it gets, answers like an EvseManager."""

from __future__ import annotations

import asyncio
from typing import Any

from everpy import Module, command


class EvseStandIn(Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.enforced: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.set_fallback_handler("evse", self._record)  # handlers are checked before init()

    def _record(self, cmd: str, args: dict[str, Any]) -> Any:
        self.calls.append((cmd, args))
        self._changed.set()
        if cmd == "get_evse":
            return {"id": self.config["evse_id"], "connectors": [{"id": 1}]}
        if cmd in ("stop_transaction", "reserve", "enable_disable", "pause_charging", "resume_charging"):
            return True
        return None

    @command("energy_grid", "enforce_limits")
    def enforce_limits(self, value: dict[str, Any]) -> None:
        if value["uuid"] == self.id:
            self.enforced.append(value)
            self._changed.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls if name != "get_evse"]

    async def wait_for_call(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Arguments of the first not yet consumed call named ``name``."""
        async with asyncio.timeout(timeout):
            while True:
                for index, (cmd, args) in enumerate(self.calls):
                    if cmd == name:
                        del self.calls[index]
                        return args
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_limits(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for limits in self.enforced:
                    if predicate(limits):
                        return limits
                self._changed.clear()
                await self._changed.wait()
