"""everpy.metering on its own: the plausibility rules and the raise-once/clear guard, on a FakeClock."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from everpy.core.clock import FakeClock
from everpy.metering import MeterLimits, PlausibilityRules, ReadingGuard

# An 11 kW wallbox meter: jumps are judged at 11 kW, with a 2 s margin and a 10 Wh counter step.
WALLBOX = MeterLimits(
    energy_Wh=9_999_999_900, power_W=11_000, current_A=32, voltage_V=289, frequency_Hz=66, energy_resolution_Wh=10
)
LOGGER = "test.metering"


def reading(import_wh: float, export_wh: float = 0.0, **groups: dict[str, float]) -> dict[str, dict[str, float]]:
    """A three-phase reading whose phase counters are a third of the total each."""
    return {
        "energy_Wh_import": {"total": import_wh, "L1": import_wh / 3, "L2": import_wh / 3, "L3": import_wh / 3},
        "energy_Wh_export": {"total": export_wh},
        "power_W": {"total": 7000.0, "L1": 2300.0, "L2": 2350.0, "L3": 2350.0},
        "voltage_V": {"L1": 230.0, "L2": 231.0, "L3": 229.0},
        "current_A": {"L1": 10.0, "L2": 10.2, "L3": 10.2},
        "frequency_Hz": {"L1": 50.0},
        **groups,
    }


def rule_of(rules: PlausibilityRules, value: dict[str, Any], now: float) -> str | None:
    verdict = rules.check(value, now)
    return None if verdict is None else verdict.rule


@pytest.mark.parametrize(
    ("group", "key", "value"),
    [
        ("energy_Wh_import", "total", 1e30),
        ("energy_Wh_import", "L2", 1e11),
        ("energy_Wh_export", "total", -1.0),
        ("power_W", "total", 11_001.0),
        ("power_W", "L3", -20_000.0),
        ("VAR", "total", 1e9),
        ("current_A", "N", 33.0),
        ("voltage_V", "L1", 400.0),
        ("frequency_Hz", "L1", 500.0),
        ("frequency_Hz", "L1", -50.0),
        ("voltage_V", "L2", math.nan),
    ],
)
def test_values_beyond_the_declared_range_are_refused(group: str, key: str, value: float) -> None:
    rules = PlausibilityRules(WALLBOX)
    bad = reading(1000.0)
    bad[group] = {**bad.get(group, {}), key: value}
    verdict = rules.check(bad, 0.0)
    assert verdict is not None and verdict.rule == "out_of_range" and verdict.field == f"{group}.{key}"
    assert not rules.has_baseline  # a refused first reading is no baseline


def test_limits_themselves_are_accepted_and_unknown_groups_ignored() -> None:
    rules = PlausibilityRules(WALLBOX)
    edge = reading(9_999_999_900.0, power_W={"total": -11_000.0}, current_A={"L1": 32.0, "DC": -32.0})
    assert rules.check({**edge, "phase_seq_error": {"x": 1e30}}, 0.0) is None


def test_energy_never_goes_backwards_total_phase_or_export() -> None:
    rules = PlausibilityRules(WALLBOX)
    assert rules.check(reading(1045.0, export_wh=200.0), 0.0) is None
    assert rule_of(rules, reading(500.0), 10.0) == "energy_backwards"  # 1045 -> 500 Wh
    assert rule_of(rules, reading(1045.0, export_wh=199.0), 10.0) == "energy_backwards"
    phase_back = reading(1046.0, export_wh=200.0)
    phase_back["energy_Wh_import"]["L3"] = 300.0  # below its 348.3 Wh
    verdict = rules.check(phase_back, 10.0)
    assert verdict is not None and verdict.field == "energy_Wh_import.L3"
    # The refused readings did not move the baseline: the next true one is compared with 1045 Wh.
    assert rules.check(reading(1046.0, export_wh=200.0), 10.0) is None


def test_a_backwards_counter_stays_refused_however_long_it_stays_there() -> None:
    rules = PlausibilityRules(WALLBOX)
    assert rules.check(reading(1045.0), 0.0) is None
    assert all(rule_of(rules, reading(500.0), t) == "energy_backwards" for t in range(1, 3600, 60))
    # Only a fresh baseline (a restarted driver) takes the new level.
    assert PlausibilityRules(WALLBOX).check(reading(500.0), 3600.0) is None


async def test_energy_may_rise_only_as_fast_as_max_power_allows() -> None:
    clock = FakeClock()
    rules = PlausibilityRules(WALLBOX)
    assert rules.check(reading(10_000.0), clock.monotonic()) is None
    await clock.advance(10.0)
    # 11 kW for 10 s + 2 s margin = 36.7 Wh, + two 10 Wh steps = 56.7 Wh.
    assert rules.check(reading(10_056.0), clock.monotonic()) is None
    await clock.advance(1.0)
    # From 10,056 Wh: 11 kW for 1 + 2 s = 9.2 Wh + 20 Wh = 29.2 Wh.
    too_fast = rules.check(reading(10_100.0), clock.monotonic())
    assert too_fast is not None and too_fast.rule == "energy_too_fast" and too_fast.field == "energy_Wh_import.total"
    assert "11000 W" in too_fast.reason
    # A refused reading does not move the time base: the allowed rise keeps growing from the last
    # accepted reading, so after a meter outage of an hour an hour of charging is plausible.
    await clock.advance(3600.0)
    assert rules.check(reading(10_056.0 + 11_000.0), clock.monotonic()) is None


def test_export_and_phase_counters_are_held_to_the_same_rise() -> None:
    rules = PlausibilityRules(WALLBOX)
    assert rules.check(reading(1000.0, export_wh=0.0), 0.0) is None
    verdict = rules.check(reading(1000.0, export_wh=5000.0), 1.0)
    assert verdict is not None and verdict.field == "energy_Wh_export.total"


def test_float_counters_may_step_by_their_precision() -> None:
    """A float32 counter moves in steps of 1.2e-7 of its value: about 600 Wh at 5 GWh."""
    limits = MeterLimits(power_W=11_000, energy_resolution_Wh=0, energy_relative_resolution=2.0**-23)
    rules = PlausibilityRules(limits)
    big = 5e9
    assert rules.check(reading(big), 0.0) is None
    assert rules.check(reading(big + 1024.0), 0.1) is None  # two float32 steps within 0.1 s
    strict = PlausibilityRules(MeterLimits(power_W=11_000, energy_resolution_Wh=0))
    strict.check(reading(big), 0.0)
    assert rule_of(strict, reading(big + 1024.0), 0.1) == "energy_too_fast"


def test_limits_can_be_tightened_never_widened() -> None:
    tight = WALLBOX.tightened(power_W=7400.0, current_A=None)
    assert (tight.power_W, tight.current_A) == (7400.0, 32)
    with pytest.raises(ValueError, match=r"power_W 22000 is above what the meter can measure \(11000\)"):
        WALLBOX.tightened(power_W=22_000.0)


@pytest.mark.parametrize("bad", [{"power_W": 0.0}, {"voltage_V": math.inf}, {"timing_margin_s": -1.0}])
def test_limits_are_checked_when_made(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        MeterLimits(**bad)


class Faults:
    """What the guard asked the driver to do."""

    def __init__(self) -> None:
        self.raised: list[str] = []
        self.cleared = 0

    def guard(self, clock: FakeClock) -> ReadingGuard:
        return ReadingGuard(
            WALLBOX,
            logging.getLogger(LOGGER),
            raise_fault=self.raised.append,
            clear_fault=self.clear,
            monotonic=clock.monotonic,
        )

    def clear(self) -> None:
        self.cleared += 1


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    caplog.clear()
    return lines


async def test_guard_raises_once_logs_throttled_and_clears_on_the_first_plausible_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock, faults = FakeClock(), Faults()
    guard = faults.guard(clock)
    assert guard.accept(reading(1045.0))

    for _ in range(120):  # two minutes of a backwards register, polled every second
        await clock.advance(1.0)
        assert not guard.accept(reading(500.0))
    assert len(faults.raised) == 1 and "went backwards from 1045 to 500" in faults.raised[0]
    lines = error_lines(caplog)
    assert len(lines) == 2  # at once, and once a minute later with the count held back
    assert "more like this" in lines[1]
    assert guard.faulted and guard.refused == 120 and faults.cleared == 0

    await clock.advance(1.0)
    assert guard.accept(reading(1046.0))
    assert faults.cleared == 1 and not guard.faulted
    assert "plausible again after 120 refused" in caplog.text

    # A new episode is raised and logged at once again, not held back by the last one's minute.
    caplog.clear()
    assert not guard.accept(reading(1e30))
    assert len(faults.raised) == 2 and "outside what the meter can measure" in faults.raised[1]
    assert len(error_lines(caplog)) == 1


async def test_guard_logs_each_broken_rule_but_raises_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock, faults = FakeClock(), Faults()
    guard = faults.guard(clock)
    assert guard.accept(reading(1045.0))
    await clock.advance(1.0)
    assert not guard.accept(reading(500.0))
    assert not guard.accept(reading(1e30))
    assert not guard.accept(reading(1_000_000.0))
    assert len(faults.raised) == 1
    backwards, out_of_range, too_fast = error_lines(caplog)
    assert "went backwards" in backwards and "outside" in out_of_range and "rose" in too_fast
