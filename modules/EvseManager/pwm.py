"""IEC 61851-1 Annex A: the current a car may draw, encoded as control pilot PWM duty cycle."""

from __future__ import annotations

# Below this the EVSE cannot signal a usable current: no PWM, no charging (A.3: 6 A minimum; the
# 0.1 A slack absorbs rounding of limits computed from watts).
MIN_CHARGING_CURRENT_A = 5.9
# 5 % is reserved for "digital communication required" (ISO 15118 / DIN 70121) and never sent here.
HLC_DUTY_PERCENT = 5.0
# Duty 100 % means "no PWM" (state X1); the board is switched to X1 instead of a 100 % PWM.
NO_PWM_PERCENT = 100.0


def duty_cycle_for_current(current_a: float) -> float:
    """Duty cycle in percent for a per-phase current limit; 100 means "no charging" (X1).

    6 A -> 10 %; up to 51 A: I / 0.6; 51-80 A: I / 2.5 + 64. Currents between two bands are rounded
    down to the lower band's maximum so the car never sees more than the limit.
    """
    if current_a < MIN_CHARGING_CURRENT_A:
        return NO_PWM_PERCENT
    if current_a <= 6.1:
        return 10.0
    if current_a <= 52.5:
        return min(current_a, 51.0) / 0.6
    if current_a <= 80.0:
        return current_a / 2.5 + 64.0
    # Above 80 A basic charging cannot express more; signal the maximum (97 % = 80 A).
    return 97.0


def current_for_duty_cycle(duty_percent: float) -> float:
    """Current in A a car may draw for a duty cycle (the car's side of the table; 0 = must not draw)."""
    if duty_percent < 8.0 or duty_percent > 97.0:
        return 0.0
    if duty_percent < 10.0:
        return 6.0
    if duty_percent <= 85.0:
        return duty_percent * 0.6
    if duty_percent <= 96.0:
        return (duty_percent - 64.0) * 2.5
    return 80.0
