"""EnergyNode: a fuse in the energy tree, with optional external limits (e.g. from OCPP).

Upwards it republishes its children's requests inside its own, whose schedule holds the fuse and the
external limits (the smaller applies). Downwards it hands each enforce_limits call to the child whose
subtree holds the addressed uuid.
"""

from __future__ import annotations

import functools
from typing import Any

from everpy.core.exceptions import CommandError
from everpy.core.module import Module, Remote, command

LIMIT_FIELDS = ("ac_max_current_A", "total_power_W", "ac_max_phase_count")


def rfc3339(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def subtree_uuids(request: dict[str, Any]) -> set[str]:
    found = {str(request.get("uuid"))}
    for child in request.get("children") or []:
        if isinstance(child, dict):
            found |= subtree_uuids(child)
    return found


def tighter(fuse: dict[str, Any], external: dict[str, Any]) -> dict[str, Any]:
    """Per field, the smaller of two LimitsReq objects (a field absent on one side does not limit)."""
    merged = dict(fuse)
    for name in LIMIT_FIELDS:
        if name in external and (name not in merged or external[name]["value"] < merged[name]["value"]):
            merged[name] = external[name]
    return merged


def external_limits_problem(value: Any) -> str | None:
    """Why an ExternalLimits object cannot be used, or None."""
    if not isinstance(value, dict) or not isinstance(value.get("schedule_import"), list):
        return "schedule_import (a list) is missing"
    for index, entry in enumerate(value["schedule_import"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("timestamp"), str):
            return f"schedule_import[{index}] has no timestamp"
        limits = entry.get("limits_to_root")
        if not isinstance(limits, dict):
            return f"schedule_import[{index}] has no limits_to_root"
        for name in LIMIT_FIELDS:
            if name in limits:
                number = limits[name].get("value") if isinstance(limits[name], dict) else None
                if not isinstance(number, int | float) or number < 0:
                    return f"schedule_import[{index}].limits_to_root.{name} needs a non-negative value"
    return None


class EnergyNode(Module):
    async def init(self) -> None:
        self.uuid = self.id
        self.children: list[Remote] = self.connections("energy_consumer")
        self._child_requests: dict[int, tuple[float, dict[str, Any]]] = {}
        self._external_import: list[dict[str, Any]] = []
        for index, child in enumerate(self.children):
            child.subscribe("energy_flow_request", functools.partial(self._on_child, index))

    def _on_child(self, index: int, request: Any) -> None:
        if not isinstance(request, dict) or "uuid" not in request:
            self.log.error("ignoring malformed energy_flow_request from %s: %r", self.children[index], request)
            return
        self._child_requests[index] = (self.clock.monotonic(), request)
        self._publish_request(priority=bool(request.get("priority_request")))

    def fuse_limits(self) -> dict[str, Any]:
        source = f"{self.id} fuse"
        return {
            "ac_max_current_A": {"value": self.config["fuse_limit_A"], "source": source},
            "ac_max_phase_count": {"value": self.config["phase_count"], "source": source},
        }

    def own_schedule(self) -> list[dict[str, Any]]:
        fuse = self.fuse_limits()
        if not self._external_import:
            return [{"timestamp": rfc3339(self.clock.utcnow()), "limits_to_root": fuse, "limits_to_leaves": fuse}]
        return [
            {
                "timestamp": entry["timestamp"],
                "limits_to_root": tighter(fuse, entry["limits_to_root"]),
                "limits_to_leaves": tighter(fuse, entry["limits_to_root"]),
            }
            for entry in self._external_import
        ]

    def live_children(self) -> list[dict[str, Any]]:
        oldest = self.clock.monotonic() - self.config["child_request_timeout_s"]
        return [request for received, request in self._child_requests.values() if received >= oldest]

    def _publish_request(self, priority: bool = False) -> None:
        request = {
            "uuid": self.uuid,
            "node_type": "Generic",
            "children": self.live_children(),
            "schedule_import": self.own_schedule(),
            "schedule_export": [],
            "priority_request": priority,
        }
        self.publish("energy_grid", "energy_flow_request", request)

    @command("energy_grid", "enforce_limits")
    async def enforce_limits(self, value: dict[str, Any]) -> None:
        target = value.get("uuid")
        if target == self.uuid:
            return  # this node's own share; its children get theirs by their own uuid
        for index, (_, request) in self._child_requests.items():
            if target in subtree_uuids(request):
                try:
                    await self.children[index].call("enforce_limits", value=value)
                except CommandError as exc:
                    self.log.warning("passing limits to %s failed: %s", self.children[index], exc)
                return
        self.log.debug("enforce_limits for unknown node %s ignored", target)

    @command("external_limits", "set_external_limits")
    def set_external_limits(self, value: dict[str, Any]) -> None:
        problem = external_limits_problem(value)
        if problem:
            raise ValueError(f"set_external_limits refused: {problem}")
        self._external_import = list(value["schedule_import"])
        self.log.info("external import limits set: %d schedule entries", len(self._external_import))
        self._publish_request(priority=True)
