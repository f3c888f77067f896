"""Plausibility of power meter readings, shared by meter drivers.

A meter driver that decoded a reading cleanly still does not know that it is true: a register can
hold 1e30 kWh after a firmware glitch, a swapped or corrupted counter can run backwards, and a
stray bit can make the energy jump by megawatt-hours in a second. Such a value must never reach
the EvseManager, and through it the CSMS and the customer's bill. The driver therefore passes every
decoded reading through a :class:`ReadingGuard` and publishes it only if the guard accepts it.

The rules (:class:`PlausibilityRules`):

* **Range**: every value lies within what the meter can measure at all (:class:`MeterLimits`, from
  the data sheet): energy counters ``0..energy_Wh``, active and reactive power
  ``|x| <= power_W``, ``|current| <= current_A``, ``|voltage| <= voltage_V``,
  frequency ``0..frequency_Hz`` (a meter without voltage may read 0 Hz).
* **Monotonic energy**: no energy counter (import or export; total or any phase) is below the
  value of the last accepted reading.
* **Possible energy rise**: no counter rose more than ``power_W`` can deliver in the time since the
  last accepted reading, plus ``timing_margin_s`` (the meter updates its registers on its own
  schedule, and the time a poll took is not known to the millisecond) plus the counter's own
  resolution (a counter that moves in 10 Wh steps shows a whole step at once).

The baseline for the last two rules is the last *accepted* reading, so a refused one never moves
it: after a glitch the next true value is compared with the last true value, and after an outage
of the meter the allowed rise grows with the time it was away. The baseline lives in memory only:
the first in-range reading after the guard was created becomes the new one. That is also the only
way to accept a counter that went backwards for good (a meter swapped or reset): restart the
driver. An automatic re-baseline after some readings at the new level would let the very fault
these rules exist for through to billing after a short delay, and a genuine swap is a service job
that ends with a restart anyway.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from everpy.core.logs import LogThrottle

# A reading as far as plausibility goes: the measurement groups of the powermeter type (see
# everpy/definitions/types/powermeter.yaml), group -> phase key -> value.
Measurements = Mapping[str, Mapping[str, float]]

ENERGY_GROUPS = ("energy_Wh_import", "energy_Wh_export")
SECONDS_PER_HOUR = 3600.0
FLOAT32_RELATIVE_STEP = 2.0**-23  # one unit in the last place of an IEEE-754 float32, relative


@dataclass(frozen=True)
class MeterLimits:
    """What one meter can measure at all, in the units of the powermeter var.

    The defaults are deliberately wide (they fit any meter a charger is likely to have, DC included)
    so that they only refuse garbage; a register map declares its meter's real figures.
    """

    energy_Wh: float = 1e11  # 100 GWh: more than a 1 MW connection delivers in ten years
    power_W: float = 2e6  # largest active or reactive (apparent) power, total or one phase
    current_A: float = 2000.0
    voltage_V: float = 1500.0
    frequency_Hz: float = 70.0
    energy_resolution_Wh: float = 10.0  # smallest step the energy counters move in (0.01 kWh)
    # Counters read as floats lose resolution as they grow: their step is this fraction of the value.
    energy_relative_resolution: float = 0.0
    timing_margin_s: float = 2.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"meter limit {field.name} must be a finite number >= 0, not {value!r}")
        for name in ("energy_Wh", "power_W", "current_A", "voltage_V", "frequency_Hz"):
            if getattr(self, name) == 0:
                raise ValueError(f"meter limit {name} must be above 0")

    def tightened(self, **limits: float | None) -> MeterLimits:
        """These limits with some of them lowered (None = keep). Raising one is refused: what the
        meter can measure is a fact of the meter, not a setting; a wider meter needs its own map."""
        changes: dict[str, float] = {}
        for name, value in limits.items():
            if value is None:
                continue
            declared = getattr(self, name)
            if value > declared:
                raise ValueError(f"{name} {value:g} is above what the meter can measure ({declared:g})")
            changes[name] = value
        return replace(self, **changes)


# group -> (name of the limit in MeterLimits, whether negative values are possible)
RANGES: dict[str, tuple[str, bool]] = {
    "energy_Wh_import": ("energy_Wh", False),
    "energy_Wh_export": ("energy_Wh", False),
    "power_W": ("power_W", True),
    "VAR": ("power_W", True),
    "current_A": ("current_A", True),
    "voltage_V": ("voltage_V", True),
    "frequency_Hz": ("frequency_Hz", False),
}


@dataclass(frozen=True)
class Implausible:
    """Why a reading was refused."""

    rule: str  # "out_of_range", "energy_backwards" or "energy_too_fast"
    field: str  # e.g. "energy_Wh_import.total"
    reason: str  # one line for logs and the error message


@dataclass(frozen=True)
class _Baseline:
    energy: dict[str, dict[str, float]]
    at: float  # monotonic seconds


class PlausibilityRules:
    """The rules of this module's docstring, with the last accepted reading as baseline."""

    def __init__(self, limits: MeterLimits) -> None:
        self.limits = limits
        self._baseline: _Baseline | None = None

    @property
    def has_baseline(self) -> bool:
        return self._baseline is not None

    def check(self, reading: Measurements, now: float) -> Implausible | None:
        """None if ``reading`` (taken at monotonic ``now``) is plausible; it then becomes the
        baseline. Otherwise the first broken rule; the baseline stays as it was."""
        verdict = self._out_of_range(reading) or self._impossible_energy(reading, now)
        if verdict is None:
            energy = {group: dict(reading[group]) for group in ENERGY_GROUPS if group in reading}
            self._baseline = _Baseline(energy, now)
        return verdict

    def _out_of_range(self, reading: Measurements) -> Implausible | None:
        for group, values in reading.items():
            if group not in RANGES:
                continue
            limit_name, signed = RANGES[group]
            limit = getattr(self.limits, limit_name)
            low = -limit if signed else 0.0
            for key, value in values.items():
                if not low <= value <= limit:  # also refuses NaN
                    return Implausible(
                        "out_of_range",
                        f"{group}.{key}",
                        f"{group}.{key} = {value:g} is outside what the meter can measure ({low:g}..{limit:g})",
                    )
        return None

    def _impossible_energy(self, reading: Measurements, now: float) -> Implausible | None:
        baseline = self._baseline
        if baseline is None:
            return None
        elapsed = max(0.0, now - baseline.at)
        possible_rise = self.limits.power_W * (elapsed + self.limits.timing_margin_s) / SECONDS_PER_HOUR
        for group, before_values in baseline.energy.items():
            for key, before in before_values.items():
                value = reading.get(group, {}).get(key)
                if value is None:
                    continue
                field = f"{group}.{key}"
                if value < before:
                    return Implausible(
                        "energy_backwards", field, f"{field} went backwards from {before:g} to {value:g} Wh"
                    )
                allowed = possible_rise + self._counter_step(max(value, before))
                if value - before > allowed:
                    return Implausible(
                        "energy_too_fast",
                        field,
                        f"{field} rose {value - before:g} Wh in {elapsed:.1f} s, more than "
                        f"{self.limits.power_W:g} W can deliver ({allowed:g} Wh)",
                    )
        return None

    def _counter_step(self, value: float) -> float:
        # Both readings are rounded to the counter's step, so allow two of them.
        return 2 * (self.limits.energy_resolution_Wh + value * self.limits.energy_relative_resolution)


class ReadingGuard:
    """The rules plus what a driver does about a refused reading.

    ``accept(reading)`` says whether to publish it. The first refusal calls ``raise_fault(message)``
    once; refusals are logged at ERROR, at most once a minute per rule (LogThrottle); the first
    accepted reading after refusals calls ``clear_fault()``.
    """

    def __init__(
        self,
        limits: MeterLimits,
        log: logging.Logger,
        raise_fault: Callable[[str], None],
        clear_fault: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
        log_interval_s: float = 60.0,
    ) -> None:
        self.rules = PlausibilityRules(limits)
        self._monotonic = monotonic
        self._raise_fault = raise_fault
        self._clear_fault = clear_fault
        self._log = log
        self._throttle = LogThrottle(log, log_interval_s, monotonic)
        self.refused = 0  # refused readings since the last accepted one
        self._faulted_rules: set[str] = set()

    @property
    def faulted(self) -> bool:
        return self.refused > 0

    def accept(self, reading: Measurements) -> bool:
        verdict = self.rules.check(reading, self._monotonic())
        if verdict is None:
            self._recovered()
            return True
        self.refused += 1
        self._faulted_rules.add(verdict.rule)
        self._throttle(verdict.rule, logging.ERROR, "implausible reading refused: %s", verdict.reason)
        if self.refused == 1:
            self._raise_fault(verdict.reason)
        return False

    def _recovered(self) -> None:
        if not self.faulted:
            return
        self._log.info("meter readings plausible again after %d refused", self.refused)
        for rule in self._faulted_rules:
            self._throttle.forget(rule)
        self._faulted_rules.clear()
        self.refused = 0
        self._clear_fault()
