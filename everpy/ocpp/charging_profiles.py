"""Charging profiles as the station computes with them, whatever the protocol version: a checked profile
compiled to periods, the limit it sets at a time, the composite schedule of an EVSE, and its enforcement.

Each version's smart-charging block reads its own message fields (names and rules differ) into a
:class:`Profile` using the helpers here (:func:`compile_periods`, :func:`compile_schedule`, ...), and gives
every profile a :class:`Role`: what it means in the composite, independent of what the version calls it.

The composite of an EVSE at time t is min(station maximum, external constraints, TxProfile if one applies
else TxDefaultProfile), each role contributing its valid profile with the highest stack level whose
schedule covers t (EVSE-specific profiles win over station-wide ones, EVSE 0). A schedule with a
``duration`` ends after it and a profile ends at its ``validTo``; from then on the next lower profile
applies, or nothing limits. :func:`composite` computes that once for both uses:

* what is *applied* (``station.apply_limits``, energy management; :class:`LimitApplier`): one entry per
  period, an entry with no limits where no profile limits (the EVSE's own limits then hold), no entries at
  all if nothing limits within the horizon;
* what is *reported* (GetCompositeSchedule, the ``charging_schedules`` variable; :func:`reported`): every
  second of the requested span has a limit. Where no profile limits, the limit is the station's maximum
  (:data:`STATION_MAX_CURRENT_A` on :data:`STATION_MAX_PHASES` phases, also the cap of every reported
  limit): with no (or no more) profile the station still draws at most its hardware maximum, so that is
  what it reports, instead of leaving the schedule out or letting the last profile's limit run on past the
  profile's end (a schedule with a duration ends there). There is no input for the real hardware maximum,
  hence the documented constant.

Reported periods have strictly increasing whole-second ``startPeriod`` values starting at 0: changes that
fall within the same second (profile times carry milliseconds) become one period holding the state after
the last of them. A composite is computed for at most :data:`MAX_COMPOSITE_DURATION_S` (the longest
recurrence, Weekly, repeats after it), which keeps the answer (and the work, one pass per recurrence)
bounded whatever int32 the CSMS sends.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeGuard

from everpy.core.clock import Clock, TimerHandle
from everpy.ocpp.station import Station
from everpy.ocpp.values import parse_time, rfc3339

VOLTAGE = 230.0  # for converting between A and W schedules (per phase)
DEFAULT_PHASES = 3  # numberPhases when a period leaves it out ("3 will be assumed")
HORIZON_S = 24 * 3600  # what is applied to the EVSEs at a time (recomputed well before its end)
UNITS = {"A": "Current", "W": "Power"}
DAY, WEEK = 86400, 7 * 86400
RECURRENCE = {"Daily": DAY, "Weekly": WEEK}
KINDS = ("Absolute", "Recurring", "Relative")

# The station's maximum where no profile limits (reported composites): 32 A per phase on 3 phases (22 kW at
# 230 V), the SIL station's hardware and the usual AC wallbox. Also the cap of every reported limit. Not
# applied to the EVSE: there, "no profile" means no OCPP limit and its own limits hold.
STATION_MAX_CURRENT_A = 32.0
STATION_MAX_PHASES = 3
# Largest limit a profile may set: above anything a charger connector carries (MCS: 3000 A, 3.75 MW), with
# room for the round "unlimited" values CSMSs send (999 A, 1 MW). More is a unit or encoding error.
MAX_LIMIT_A = 10_000.0
MAX_LIMIT_W = 10_000_000.0
MAX_LIMIT = {"A": MAX_LIMIT_A, "W": MAX_LIMIT_W}
MAX_PHASES = 3
# Longest span a composite is computed for (see the module text): a week.
MAX_COMPOSITE_DURATION_S = WEEK


class InvalidProfile(ValueError):
    """A charging profile the station cannot use; the message says why."""


class Role(StrEnum):
    """What a profile means in the composite (each version maps its purposes onto these)."""

    STATION_MAX = "StationMax"  # caps the whole station (and so every EVSE)
    EXTERNAL = "External"  # a local constraint (energy management), station-wide or of one EVSE
    TX_DEFAULT = "TxDefault"  # for transactions without a TxProfile
    TX = "Tx"  # for one transaction


@dataclass(frozen=True)
class Period:
    start: int  # seconds from the schedule's start
    limit: float
    phases: int


@dataclass(frozen=True)
class Schedule:
    unit: str  # "A" or "W"
    duration: int | None
    start: float | None  # startSchedule (epoch seconds)
    periods: tuple[Period, ...]


@dataclass(frozen=True)
class Profile:
    """A checked charging profile, with its times parsed (epoch seconds)."""

    id: int
    evse_id: int  # 0: the station
    role: Role
    stack_level: int
    kind: str
    recurrence: int | None  # seconds, Recurring only
    valid_from: float | None
    valid_to: float | None
    start: float | None  # when an Absolute or Recurring schedule starts; unused for Relative
    duration: int | None
    unit: str
    periods: tuple[Period, ...]
    transaction_id: int | str | None

    def _start_at(self, at: float, tx_start: float | None) -> float | None:
        """When the schedule (recurrence) that runs at `at` started, None if none is anchored."""
        if self.kind == "Relative":
            return tx_start
        if self.kind == "Recurring":
            assert self.recurrence is not None
            anchor = self.start if self.start is not None else 0.0
            # O(1) however long ago the anchor is (no loop over the elapsed recurrences)
            return anchor + math.floor((at - anchor) / self.recurrence) * self.recurrence
        return self.start

    def limit_at(self, at: float, tx_start: float | None) -> Period | None:
        """The period in force at `at`, or None if the profile does not limit then."""
        if self.valid_from is not None and at < self.valid_from:
            return None
        if self.valid_to is not None and at >= self.valid_to:
            return None
        start = self._start_at(at, tx_start)
        if start is None or at < start:
            return None
        elapsed = at - start
        if self.duration is not None and elapsed >= self.duration:
            return None
        index = bisect.bisect_right([p.start for p in self.periods], elapsed) - 1
        return self.periods[index] if index >= 0 else None

    def boundaries(self, begin: float, end: float, tx_start: float | None) -> list[float]:
        """Times within [begin, end) where the profile's limit may change."""
        times = [t for t in (self.valid_from, self.valid_to) if t is not None]
        starts: list[float] = []
        first = self._start_at(begin, tx_start)
        if self.recurrence is not None:
            # one pass per recurrence within [begin, end): bounded by the span, not by the elapsed time
            while first is not None and first < end:
                starts.append(first)
                first += self.recurrence
        elif first is not None:
            starts.append(first)
        for start in starts:
            times.extend(start + p.start for p in self.periods)
            if self.duration is not None:
                times.append(start + self.duration)
        return [t for t in times if begin <= t < end]

    def overlaps(self, other: Profile) -> bool:
        """Whether the validity periods of the two profiles overlap (no bound: forever)."""
        return (self.valid_to is None or other.valid_from is None or other.valid_from < self.valid_to) and \
            (other.valid_to is None or self.valid_from is None or self.valid_from < other.valid_to)


# -- reading the fields both versions share -----------------------------------------------------------------
def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def time_field(value: Any, what: str) -> float:
    """Epoch seconds of a date-time field; InvalidProfile if it is none."""
    if not isinstance(value, str):
        raise InvalidProfile(f"{what} is not a date-time")
    try:
        seconds = parse_time(value)
    except (ValueError, OverflowError, OSError) as error:
        raise InvalidProfile(f"{what} {value!r} is not a date-time: {error}") from None
    if not math.isfinite(seconds):
        raise InvalidProfile(f"{what} {value!r} is not a date-time")
    return seconds


def validity(raw: dict[str, Any]) -> tuple[float | None, float | None]:
    """(validFrom, validTo) of a profile, checked."""
    valid_from = time_field(raw["validFrom"], "validFrom") if "validFrom" in raw else None
    valid_to = time_field(raw["validTo"], "validTo") if "validTo" in raw else None
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidProfile("validTo is not after validFrom")
    return valid_from, valid_to


def identify(place_field: str, place: Any, raw: Any, id_field: str, roles: Mapping[str, Role]
             ) -> tuple[int, int, Role]:
    """(id, stackLevel, role) of a profile for the place (connector or EVSE, 0 = the station) it is set on;
    InvalidProfile naming the field (each version's own name) that is out of range or of the wrong type."""
    if not is_int(place) or place < 0:
        raise InvalidProfile(f"{place_field} {place!r} is not an integer >= 0")
    if not isinstance(raw, dict):
        raise InvalidProfile("the charging profile is not an object")
    profile_id, stack_level, purpose = raw.get(id_field), raw.get("stackLevel"), raw.get("chargingProfilePurpose")
    if not is_int(profile_id):
        raise InvalidProfile(f"{id_field} {profile_id!r} is not an integer")
    if not is_int(stack_level) or stack_level < 0:
        raise InvalidProfile(f"stackLevel {stack_level!r} is not an integer >= 0")
    role = roles.get(purpose) if isinstance(purpose, str) else None
    if role is None:
        raise InvalidProfile(f"chargingProfilePurpose {purpose!r} is unknown")
    return profile_id, stack_level, role


def kind_of(raw: dict[str, Any]) -> tuple[str, int | None]:
    """A profile's chargingProfileKind, and its recurrence in seconds (Recurring only, else None)."""
    kind = raw.get("chargingProfileKind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidProfile(f"chargingProfileKind {kind!r} is unknown")
    if kind != "Recurring":
        return kind, None
    recurrency_kind = raw.get("recurrencyKind")
    recurrence = RECURRENCE.get(recurrency_kind) if isinstance(recurrency_kind, str) else None
    if recurrence is None:
        raise InvalidProfile(f"recurrencyKind {recurrency_kind!r} is not Daily or Weekly")
    return kind, recurrence


def _period(raw: Any, index: int, unit: str) -> Period:
    where = f"chargingSchedulePeriod[{index}]"
    if not isinstance(raw, dict):
        raise InvalidProfile(f"{where} is not an object")
    start, limit, phases = raw.get("startPeriod"), raw.get("limit"), raw.get("numberPhases", DEFAULT_PHASES)
    if not is_int(start) or start < 0:
        raise InvalidProfile(f"{where}.startPeriod {start!r} is not an integer >= 0")
    if not is_number(limit) or not 0 <= limit <= MAX_LIMIT[unit]:
        raise InvalidProfile(f"{where}.limit {limit!r} is not a number within 0..{MAX_LIMIT[unit]:g} {unit}")
    if not is_int(phases) or not 1 <= phases <= MAX_PHASES:
        raise InvalidProfile(f"{where}.numberPhases {phases!r} is not within 1..{MAX_PHASES}")
    if "phaseToUse" in raw:  # a single phase chosen: only when charging on one
        phase = raw["phaseToUse"]
        if not is_int(phase) or not 1 <= phase <= MAX_PHASES:
            raise InvalidProfile(f"{where}.phaseToUse {phase!r} is not within 1..{MAX_PHASES}")
        if phases != 1:
            raise InvalidProfile(f"{where}.phaseToUse is only allowed with numberPhases 1")
    return Period(start, float(limit), phases)


def compile_periods(raw_periods: Any, unit: str) -> tuple[Period, ...]:
    if not isinstance(raw_periods, list) or not raw_periods:
        raise InvalidProfile("chargingSchedulePeriod is not a non-empty list")
    periods = tuple(_period(p, i, unit) for i, p in enumerate(raw_periods))
    if periods[0].start != 0:
        raise InvalidProfile("the first startPeriod is not 0")
    if any(b.start <= a.start for a, b in zip(periods, periods[1:], strict=False)):
        raise InvalidProfile("startPeriod values are not strictly increasing")
    return periods


def compile_schedule(schedule: Any) -> Schedule:
    """A chargingSchedule's unit, duration, start and periods, each checked."""
    if not isinstance(schedule, dict):
        raise InvalidProfile("chargingSchedule is not an object")
    unit, duration = schedule.get("chargingRateUnit"), schedule.get("duration")
    if not isinstance(unit, str) or unit not in UNITS:
        raise InvalidProfile(f"chargingRateUnit {unit!r} is not A or W")
    if duration is not None and (not is_int(duration) or duration < 0):
        raise InvalidProfile(f"duration {duration!r} is not an integer >= 0")
    start = time_field(schedule["startSchedule"], "startSchedule") if "startSchedule" in schedule else None
    minimum = schedule.get("minChargingRate")
    if minimum is not None and (not is_number(minimum) or not 0 <= minimum <= MAX_LIMIT[unit]):
        raise InvalidProfile(f"minChargingRate {minimum!r} is not a number within 0..{MAX_LIMIT[unit]:g}")
    return Schedule(unit, duration, start, compile_periods(schedule.get("chargingSchedulePeriod"), unit))


# -- the composite ------------------------------------------------------------------------------------------
def convert(limit: float, phases: int, unit: str, wanted: str) -> float:
    if unit == wanted:
        return limit
    return limit / (VOLTAGE * phases) if wanted == "A" else limit * VOLTAGE * phases


def tenths(limit: float) -> float:
    """Down to a multiple of 0.1 (the schemas' step); rounded first so that 2.3 stays 2.3."""
    return math.floor(round(limit * 10, 6)) / 10


def relevant(profiles: Iterable[Profile], evse_id: int) -> dict[Role, list[Profile]]:
    """Profiles per role that can apply to the EVSE (0 = the station), best first: EVSE-specific before
    station-wide, then the highest stack level."""
    by_role: dict[Role, list[Profile]] = {role: [] for role in Role}
    for profile in profiles:
        if profile.evse_id in (0, evse_id):
            by_role[profile.role].append(profile)
    for candidates in by_role.values():
        candidates.sort(key=lambda p: (p.evse_id == evse_id, p.stack_level), reverse=True)
    return by_role


def _limit(by_role: dict[Role, list[Profile]], at: float, tx_start: float | None,
           unit: str) -> tuple[float, int] | None:
    def best(candidates: list[Profile]) -> tuple[float, int] | None:
        for profile in candidates:
            period = profile.limit_at(at, tx_start)
            if period is not None:
                return convert(period.limit, period.phases, profile.unit, unit), period.phases
        return None

    tx = best(by_role[Role.TX]) if tx_start is not None else None
    chosen = [x for x in (best(by_role[Role.STATION_MAX]), best(by_role[Role.EXTERNAL]),
                          tx or best(by_role[Role.TX_DEFAULT])) if x is not None]
    if not chosen:
        return None
    return min(x[0] for x in chosen), min(x[1] for x in chosen)


def composite(profiles: Iterable[Profile], evse_id: int, begin: float, duration: float, unit: str,
              tx_start: float | None) -> list[dict[str, Any]]:
    """Periods [{startPeriod, limit, numberPhases}] relative to begin, covering [begin, begin + duration):
    startPeriod whole seconds, strictly increasing from 0, neighbours differing; limit (and numberPhases)
    None where no profile limits. ``tx_start``: when the EVSE's transaction started (None: none runs)."""
    by_role = relevant(profiles, evse_id)
    end = begin + duration
    # the state after the last change within each second (profile times carry milliseconds)
    latest: dict[int, float] = {0: begin}
    for candidates in by_role.values():
        for profile in candidates:
            for at in profile.boundaries(begin, end, tx_start):
                second = math.floor(at - begin)
                latest[second] = max(latest.get(second, at), at)
    periods: list[dict[str, Any]] = []
    for second in sorted(latest):
        limit, phases = _limit(by_role, latest[second], tx_start, unit) or (None, None)
        if periods and periods[-1]["limit"] == limit and periods[-1]["numberPhases"] == phases:
            continue
        periods.append({"startPeriod": second, "limit": limit, "numberPhases": phases})
    return periods


def reported(periods: list[dict[str, Any]], unit: str) -> list[dict[str, Any]]:
    """The composite as the station reports it: the station's maximum where no profile limits, every limit
    capped at it and down to a multiple of 0.1; neighbours that became equal are merged."""
    out: list[dict[str, Any]] = []
    for period in periods:
        phases = STATION_MAX_PHASES if period["limit"] is None else period["numberPhases"]
        cap = convert(STATION_MAX_CURRENT_A, phases, "A", unit)
        limit = tenths(cap if period["limit"] is None else min(period["limit"], cap))
        if out and out[-1]["limit"] == limit and out[-1]["numberPhases"] == phases:
            continue
        out.append({"startPeriod": period["startPeriod"], "limit": limit, "numberPhases": phases})
    return out


def limit_entries(begin: float, periods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The energy ScheduleReqEntry list that enforces a composite (in A) from `begin`: none at all when
    nothing limits (the EVSE's own limits hold), else one per period, empty limits where none limits."""
    if all(period["limit"] is None for period in periods):
        return []
    entries = []
    for period in periods:
        timestamp = datetime.fromtimestamp(begin + period["startPeriod"], UTC).isoformat().replace("+00:00", "Z")
        limits = {} if period["limit"] is None else {
            "ac_max_current_A": {"value": period["limit"], "source": "OCPP"},
            "ac_max_phase_count": {"value": period["numberPhases"], "source": "OCPP"}}
        entries.append({"timestamp": timestamp, "limits_to_root": limits, "limits_to_leaves": {}})
    return entries


CompositeOf = Callable[[int, float, float, str], list[dict[str, Any]]]  # (evse id, begin, duration, unit)


class LimitApplier:
    """Sends the composite of every EVSE to energy management (``station.apply_limits``), publishes every
    composite (station included) as ``charging_schedules``, and does it again before the horizon ends."""

    def __init__(self, station: Station, clock: Clock, evse_ids: Callable[[], list[int]],
                 composite_of: CompositeOf) -> None:
        self.station, self.clock, self.evse_ids, self.composite_of = station, clock, evse_ids, composite_of
        self._refresh_timer: TimerHandle | None = None

    def cancel_timers(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()

    async def apply(self) -> None:
        now = math.floor(self.clock.time())
        schedules = []
        for evse_id in [0, *self.evse_ids()]:
            periods = self.composite_of(evse_id, now, HORIZON_S, "A")
            schedules.append({"evse": evse_id, "charging_rate_unit": "A", "start_schedule": rfc3339(now),
                              "duration": HORIZON_S, "charging_schedule_period": [
                                  {"start_period": p["startPeriod"], "limit": p["limit"],
                                   "number_phases": p["numberPhases"]} for p in reported(periods, "A")]})
            if evse_id != 0:
                await self.station.apply_limits(evse_id, limit_entries(now, periods))
        self.station.publish("charging_schedules", {"schedules": schedules})
        self.cancel_timers()
        # profiles reach beyond the horizon, and recurring ones roll over: recompute well before its end
        self._refresh_timer = self.clock.call_later(HORIZON_S / 2, self.apply)
