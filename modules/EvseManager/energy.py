"""The EVSE as a leaf of the energy tree: what it asks for, and what an enforced limit means in amps."""

from __future__ import annotations

from typing import Any

from .charger import State

# Coarse EVSE state for energy decisions (energy#/EvseState).
ENERGY_STATE = {
    State.DISABLED: "Disabled",
    State.IDLE: "Unplugged",
    State.WAITING_FOR_AUTHENTICATION: "WaitForAuth",
    State.PREPARE_CHARGING: "PrepareCharging",
    State.CHARGING: "Charging",
    State.CHARGING_PAUSED_EV: "PausedEV",
    State.CHARGING_PAUSED_EVSE: "PausedEVSE",
    State.STOPPING_CHARGING: "Charging",
    State.FINISHED: "Finished",
}


def flow_request(
    uuid: str,
    state: State,
    capabilities: dict[str, Any],
    phases_in_use: int,
    timestamp: str,
    meter: dict[str, Any] | None,
    priority: bool,
) -> dict[str, Any]:
    """This EVSE's energy_flow_request: the board's limits, valid from now on."""
    limits = {
        "ac_max_current_A": {"value": capabilities["max_current_A_import"], "source": f"{uuid} board"},
        "ac_min_current_A": {"value": capabilities["min_current_A_import"], "source": f"{uuid} board"},
        "ac_max_phase_count": {"value": capabilities["max_phase_count_import"], "source": f"{uuid} board"},
        "ac_min_phase_count": {"value": capabilities["min_phase_count_import"], "source": f"{uuid} board"},
        "ac_supports_changing_phases_during_charging": capabilities["supports_changing_phases_during_charging"],
        "ac_number_of_active_phases": phases_in_use,
    }
    request: dict[str, Any] = {
        "uuid": uuid,
        "children": [],
        "node_type": "Evse",
        "evse_state": ENERGY_STATE[state],
        "priority_request": priority,
        "schedule_import": [{"timestamp": timestamp, "limits_to_root": limits, "limits_to_leaves": {}}],
        "schedule_export": [],
    }
    if meter is not None:
        request["energy_usage_root"] = meter
    return request


def current_limit_a(limits_root_side: dict[str, Any], nominal_voltage: float, phases: int) -> float | None:
    """Per-phase current allowed by enforced limits: the smaller of the current and the power limit.

    None when the limits do not restrict anything.
    """
    candidates = []
    current = limits_root_side.get("ac_max_current_A")
    if current is not None:
        candidates.append(float(current["value"]))
    power = limits_root_side.get("total_power_W")
    if power is not None:
        candidates.append(float(power["value"]) / (nominal_voltage * max(1, phases)))
    return min(candidates) if candidates else None
