"""The car script language and the simulated port's physics, without a bus."""

from __future__ import annotations

import pytest
from everpy_modules.BoardSupportSimulator.port import Port
from everpy_modules.EvSimulator.script import Command, ScriptError, parse_script


def test_script_language_separators_and_case() -> None:
    script = "IEC_Wait_Pwr_Ready;draw_power_regulated 16,3\nsleep 2.5 ; ;unplug"
    assert parse_script(script) == [
        Command("iec_wait_pwr_ready", ()),
        Command("draw_power_regulated", (16.0, 3.0)),
        Command("sleep", (2.5,)),
        Command("unplug", ()),
    ]


def test_every_documented_command_parses() -> None:
    script = (
        "sleep 1;iec_wait_pwr_ready;draw_power_regulated 32,1;draw_power_fixed 6,3;pause;unplug;plugin;"
        "wait_for_real_plugin;error_e;diode_fail;rcd_current 30"
    )
    assert [c.name for c in parse_script(script)][-1] == "rcd_current"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("", "script is empty"),
        (" ; \n", "script is empty"),
        ("plugin;fly 3", "command 2 ('fly 3'): unknown command 'fly'"),
        ("sleep", "sleep takes seconds, got 0"),
        ("unplug 3", "unplug takes no arguments, got 1"),
        ("sleep ten", "arguments must be numbers"),
        ("sleep -1", "sleep needs seconds >= 0"),
        ("sleep nan", "finite"),
        ("draw_power_regulated 16,4", "phases must be 1, 2 or 3"),
        ("draw_power_fixed 100,3", "current must be 0..80 A"),
        ("rcd_current -5", ">= 0 mA"),
    ],
)
def test_bad_scripts_are_clear_errors(script: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_script(script)


def test_relays_need_permission_and_a_car_asking() -> None:
    port = Port()
    port.car_state = "B"
    port.power_allowed = True
    assert not port.snapshot().relays_closed
    port.car_state = "C"
    assert port.snapshot().relays_closed
    port.enabled = False
    assert not port.snapshot().relays_closed


def test_energy_counts_only_what_flows_through_closed_relays() -> None:
    port = Port()
    port.car_current_a, port.car_phases = 16.0, 3
    port.car_state = "C"
    port.integrate(3600)
    assert port.energy_wh == 0  # relays open
    port.power_allowed = True
    port.integrate(3600)
    assert port.energy_wh == pytest.approx(16 * 230 * 3)
    port.car_phases = 1
    port.integrate(1800)
    assert port.energy_wh_per_phase == pytest.approx([16 * 230 * 1.5, 16 * 230, 16 * 230])


def test_diode_fault_shows_during_pwm_and_latches_until_unplug() -> None:
    port = Port()
    port.car_state, port.diode_ok = "B", False
    assert ("evse_board_support/DiodeFault", "") not in port.snapshot().errors  # X1: not visible
    port.pilot_mode, port.duty_percent = "PWM", 26.7
    assert ("evse_board_support/DiodeFault", "") in port.snapshot().errors
    port.pilot_mode = "X1"
    assert ("evse_board_support/DiodeFault", "") in port.snapshot().errors
    port.car_state = "A"
    assert port.snapshot().errors == frozenset()


def test_rcd_trips_while_powered_opens_relays_and_resets_after_unplug() -> None:
    port = Port()
    port.car_state, port.power_allowed, port.residual_ma = "C", True, 5.9
    assert port.snapshot().relays_closed
    port.residual_ma = 20
    seen = port.snapshot()
    assert not seen.relays_closed
    assert ("evse_board_support/RCDTriggered", "DC") in seen.errors
    port.residual_ma = 0
    assert ("evse_board_support/RCDTriggered", "DC") in port.snapshot().errors  # latched
    port.car_state = "A"
    assert port.snapshot().errors == frozenset()


def test_disabled_port_shows_f_and_keeps_the_pwm_for_later() -> None:
    port = Port()
    port.pilot_mode, port.duty_percent = "PWM", 50.0
    port.enabled = False
    assert port.snapshot().duty_percent == 0
    port.enabled = True
    assert port.snapshot().duty_percent == 50.0
