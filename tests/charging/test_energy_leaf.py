"""The EVSE as a leaf of the energy tree: its request matches the energy interface, limits in W become A."""

from __future__ import annotations

from pathlib import Path

import pytest
from everpy_modules.EvseManager.charger import State
from everpy_modules.EvseManager.energy import ENERGY_STATE, current_limit_a, flow_request

from everpy.core.definitions import load_definitions

DEFINITIONS = Path(__file__).resolve().parents[2] / "everpy" / "definitions"
CAPABILITIES = {
    "max_current_A_import": 32, "min_current_A_import": 6, "max_phase_count_import": 3,
    "min_phase_count_import": 1, "max_current_A_export": 0, "min_current_A_export": 0,
    "max_phase_count_export": 3, "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": False, "connector_type": "IEC62196Type2Cable",
}


@pytest.mark.parametrize("state", list(State))
def test_flow_request_matches_the_energy_interface(state: State) -> None:
    check = load_definitions([DEFINITIONS]).var_validator("energy", "energy_flow_request")
    meter = {"timestamp": "2026-01-01T00:00:00.000Z", "energy_Wh_import": {"total": 12.5}}
    request = flow_request("evse", state, CAPABILITIES, 3, "2026-01-01T00:00:00.000Z", meter, priority=True)
    check(request)
    assert request["evse_state"] == ENERGY_STATE[state]
    assert request["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"] == 32


def test_power_limit_becomes_current_per_phase() -> None:
    assert current_limit_a({"total_power_W": {"value": 6900, "source": "x"}}, 230, 3) == pytest.approx(10)
    assert current_limit_a({"total_power_W": {"value": 6900, "source": "x"}}, 230, 1) == pytest.approx(30)


def test_smaller_of_current_and_power_limit_wins() -> None:
    limits = {"ac_max_current_A": {"value": 16, "source": "x"}, "total_power_W": {"value": 6900, "source": "y"}}
    assert current_limit_a(limits, 230, 3) == pytest.approx(10)
    limits["total_power_W"]["value"] = 22080
    assert current_limit_a(limits, 230, 3) == pytest.approx(16)


def test_no_limits_mean_no_restriction() -> None:
    assert current_limit_a({}, 230, 3) is None
