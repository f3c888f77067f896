"""EnergyManager: every update interval, share the power of the tree and send each node its limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from everpy.core.exceptions import CommandError
from everpy.core.module import Module

from .distribution import TreeError, distribute, parse_tree


def rfc3339(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def wants_priority(request: dict[str, Any]) -> bool:
    if request.get("priority_request"):
        return True
    return any(wants_priority(child) for child in request.get("children") or [] if isinstance(child, dict))


class EnergyManager(Module):
    async def init(self) -> None:
        self.trunk = self.require("energy_trunk")
        self._request: dict[str, Any] | None = None
        self._received_at = 0.0
        self._wake = asyncio.Event()
        self._stale_reported = False
        self.trunk.subscribe("energy_flow_request", self._on_request)

    async def ready(self) -> None:
        self.spawn(self._loop(), name="distribution")

    def _on_request(self, request: Any) -> None:
        if not isinstance(request, dict):
            self.log.error("ignoring energy_flow_request that is not an object: %r", request)
            return
        self._request = request
        self._received_at = self.clock.monotonic()
        if wants_priority(request):
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            # A priority request sets _wake early; otherwise the interval timer does.
            timer = self.clock.call_later(self.config["update_interval"], self._wake.set)
            await self._wake.wait()
            timer.cancel()
            self._wake.clear()
            await self.distribute_once()

    async def distribute_once(self) -> list[dict[str, Any]]:
        """Compute and send the limits for the current tree; returns what was sent."""
        if self._request is None:
            return []
        age = self.clock.monotonic() - self._received_at
        if age > self.config["request_timeout_s"]:
            if not self._stale_reported:
                self.log.warning("energy tree not refreshed for %.0f s; sending no limits", age)
                self._stale_reported = True
            return []
        self._stale_reported = False
        now = self.clock.utcnow()
        try:
            allocations = distribute(parse_tree(self._request, now), self.config["nominal_ac_voltage"])
        except TreeError as exc:
            self.log.error("cannot distribute power: %s", exc)
            return []
        valid_for = self.config["limits_valid_for_s"]
        sent = [
            {
                "uuid": uuid,
                "valid_for": valid_for,
                "valid_until": rfc3339(now + timedelta(seconds=valid_for)),
                "limits_root_side": allocation.as_limits(),
                "schedule": [{"timestamp": rfc3339(now), "limits_to_root": allocation.as_limits()}],
            }
            for uuid, allocation in allocations.items()
        ]
        results = await asyncio.gather(
            *(self.trunk.call("enforce_limits", timeout=valid_for, value=limits) for limits in sent),
            return_exceptions=True,
        )
        for limits, result in zip(sent, results, strict=True):
            if isinstance(result, CommandError):
                self.log.warning("enforce_limits for %s failed: %s", limits["uuid"], result)
            elif isinstance(result, BaseException):
                raise result
        self.publish("main", "enforced_limits", sent)
        return sent
