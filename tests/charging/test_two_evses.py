"""Two charging points behind one 32 A grid fuse: the second car takes half of the first one's power."""

from __future__ import annotations

from typing import Any

import pytest

from everpy.core.clock import FakeClock
from everpy.testing import run_system

from .sil_system import WAIT_S, conn, until


def two_evse_config() -> dict[str, Any]:
    modules: dict[str, Any] = {}
    for n in (1, 2):
        modules[f"evse{n}"] = {
            "module": "EvseManager",
            "config_module": {"connector_id": n, "evse_id": f"DE*PNX*E0000{n}*1", "status_interval_s": 0},
            "connections": {"bsp": [conn(f"board{n}", "board_support")],
                            "powermeter": [conn(f"board{n}", "powermeter")]},
        }
        modules[f"board{n}"] = {"module": "BoardSupportSimulator"}
        modules[f"car{n}"] = {"module": "EvSimulator",
                              "connections": {"ev_board_support": [conn(f"board{n}", "ev_board_support")]}}
    modules["rfid"] = {"module": "TokenProviderSimulator"}
    modules["auth"] = {
        "module": "Auth",
        "config_module": {"selection_algorithm": "FindFirst"},
        "connections": {"token_provider": [conn("rfid", "main")], "token_validator": [conn("rfid", "validator")],
                        "evse_manager": [conn("evse1", "evse"), conn("evse2", "evse")]},
    }
    modules["grid"] = {"module": "EnergyNode", "config_module": {"fuse_limit_A": 32, "child_request_timeout_s": 3600},
                       "connections": {"energy_consumer": [conn("evse1", "energy_grid"), conn("evse2", "energy_grid")]}}
    modules["energy_manager"] = {"module": "EnergyManager",
                                 "config_module": {"limits_valid_for_s": 3600, "request_timeout_s": 3600},
                                 "connections": {"energy_trunk": [conn("grid", "energy_grid")]}}
    return {"active_modules": modules}


async def test_second_car_halves_the_first_cars_current_within_the_fuse() -> None:
    clock = FakeClock()
    async with run_system(two_evse_config(), clock=clock) as system:
        evse1, evse2 = system.instances["evse1"], system.instances["evse2"]
        await until(lambda: evse1.charger.started and evse2.charger.started, what="EVSEs started")
        car1_sees = system.watch("board1", "ev_board_support", "bsp_measurement")

        async def plug_and_swipe(n: int) -> None:
            await system.call(f"car{n}", "main", "execute_charging_session",
                              value="iec_wait_pwr_ready;draw_power_regulated 32,3")
            evse = system.instances[f"evse{n}"]
            await until(lambda: evse.charger.state == "WaitingForAuthentication", what=f"car {n} plugged in")
            await system.call("rfid", "control", "present_token", token=f"CARD{n}", authorization_type="")
            await until(lambda: evse.charger.state == "Charging", what=f"EVSE {n} charging")

        await plug_and_swipe(1)
        await car1_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == pytest.approx(32 / 0.6, abs=0.01), WAIT_S)
        await plug_and_swipe(2)
        await until(lambda: evse1.charger.available_current_a == 16, what="EVSE 1 limited to 16 A")
        await clock.advance(5.1)  # EVSE 1 may change its PWM 5 s after the last change
        await car1_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == pytest.approx(16 / 0.6, abs=0.01), WAIT_S)
        assert evse2.charger.available_current_a == 16
