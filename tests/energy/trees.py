"""EnergyFlowRequest builders for energy tests."""

from __future__ import annotations

from typing import Any

START = "2026-01-01T00:00:00Z"  # FakeClock's default start


def limits(
    current_A: float | None = None,
    power_W: float | None = None,
    phases: int | None = None,
    min_current_A: float | None = None,
    source: str = "test",
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (
        ("ac_max_current_A", current_A),
        ("total_power_W", power_W),
        ("ac_max_phase_count", phases),
        ("ac_min_current_A", min_current_A),
    ):
        if value is not None:
            out[name] = {"value": value, "source": source}
    return out


def entry(limits_to_root: dict[str, Any], timestamp: str = START) -> dict[str, Any]:
    return {"timestamp": timestamp, "limits_to_root": limits_to_root, "limits_to_leaves": limits_to_root}


def evse(
    uuid: str,
    max_A: float = 32,
    phases: int = 3,
    min_A: float = 6,
    state: str = "Charging",
    priority: bool = False,
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "node_type": "Evse",
        "evse_state": state,
        "priority_request": priority,
        "children": [],
        "schedule_import": [entry(limits(max_A, phases=phases, min_current_A=min_A, source=f"{uuid} hw"))],
        "schedule_export": [],
    }


def node(uuid: str, children: list[dict[str, Any]], *schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "node_type": "Generic",
        "children": children,
        "schedule_import": list(schedule),
        "schedule_export": [],
    }


def fuse(uuid: str, amps: float, children: list[dict[str, Any]], phases: int = 3) -> dict[str, Any]:
    return node(uuid, children, entry(limits(amps, phases=phases, source=f"{uuid} fuse")))
