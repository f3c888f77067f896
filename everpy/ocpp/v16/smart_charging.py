"""Smart Charging profile: charging profiles, the composite schedule, and its enforcement.

The composite schedule of a connector at time t is min(ChargePointMaxProfile, TxProfile if one applies
else TxDefaultProfile), each purpose contributing its valid profile with the highest stackLevel whose
schedule covers t (connector-specific TxDefault profiles win over connector 0 ones). A schedule with a
``duration`` ends after it and a profile ends at its ``validTo``; from then on the next lower profile
applies, or nothing limits. :meth:`SmartCharging.composite` computes that once for both uses:

* what is *applied* (``station.apply_limits``, energy management): one entry per period, an entry with
  no limits where no profile limits (the EVSE's own limits then hold), no entries at all if nothing
  limits within the horizon;
* what is *reported* (GetCompositeSchedule, the ``charging_schedules`` variable): every second of the
  requested span has a limit. Where no profile limits, the limit is the station's maximum
  (:data:`STATION_MAX_CURRENT_A` on :data:`STATION_MAX_PHASES` phases, also the cap of every reported
  limit). OCPP 1.6 §5.7 defines the reported schedule as "the result of the calculation of all active
  schedules and possible local limits present in the Charge Point", and the conf's chargingSchedule is
  "the energy consumption over time": with no (or no more) profile the station still draws at most its
  hardware maximum, so that is what it reports, instead of leaving the schedule out or letting the last
  profile's limit run on past the profile's end (§7.13: a schedule with a duration ends there). EVerest's
  libocpp does the same (CompositeScheduleDefaultLimitAmps). This module has no input for the real
  hardware maximum, hence the documented constant.

Reported periods have strictly increasing whole-second ``startPeriod`` values starting at 0: changes that
fall within the same second (profile times carry milliseconds) become one period holding the state after
the last of them. GetCompositeSchedule computes at most :data:`MAX_COMPOSITE_DURATION_S` (a longer request
is answered for that span, and ``chargingSchedule.duration`` says so): the longest recurrence (Weekly)
repeats after it, and it keeps the answer (and the work, one pass per recurrence) bounded whatever int32
the CSMS sends.

Range, not just schema: SetChargingProfile (and RemoteStartTransaction's profile) answer Rejected for
anything the station cannot compute with (see :func:`compile_profile` and :meth:`SmartCharging.check`),
never an exception. Persisted profiles go through the same structural checks when read; a record that
fails is quarantined and removed, and the others keep working.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.transactions import Started, Transactions
from everpy.ocpp.values import parse_time, rfc3339

KIND = "charging_profile"
VOLTAGE = 230.0  # for converting between A and W schedules (per phase)
DEFAULT_PHASES = 3  # numberPhases when a period leaves it out (1.6 §7.14: "3 will be assumed")
HORIZON_S = 24 * 3600
UNITS = {"A": "Current", "W": "Power"}
DAY, WEEK = 86400, 7 * 86400
RECURRENCE = {"Daily": DAY, "Weekly": WEEK}
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
KINDS = ("Absolute", "Recurring", "Relative")

# The station's maximum where no profile limits (GetCompositeSchedule, charging_schedules): 32 A per phase
# on 3 phases (22 kW at 230 V), the SIL station's hardware and the usual AC wallbox. Also the cap of every
# reported limit. Not applied to the EVSE: there, "no profile" means no OCPP limit and its own limits hold.
STATION_MAX_CURRENT_A = 32.0
STATION_MAX_PHASES = 3
# Largest limit SetChargingProfile accepts: above anything a charger connector carries (MCS: 3000 A,
# 3.75 MW), with room for the round "unlimited" values CSMSs send (999 A, 1 MW). More is a unit or encoding
# error, answered Rejected.
MAX_LIMIT_A = 10_000.0
MAX_LIMIT_W = 10_000_000.0
MAX_LIMIT = {"A": MAX_LIMIT_A, "W": MAX_LIMIT_W}
MAX_PHASES = 3
# Longest span GetCompositeSchedule computes (see the module text): a week.
MAX_COMPOSITE_DURATION_S = WEEK


class InvalidProfile(ValueError):
    """A charging profile the station cannot use; the message says why."""


@dataclass(frozen=True)
class Period:
    start: int  # seconds from the schedule's start
    limit: float
    phases: int


@dataclass(frozen=True)
class Profile:
    """A checked csChargingProfiles, with its times parsed (epoch seconds)."""

    id: int
    connector_id: int
    purpose: str
    stack_level: int
    kind: str
    recurrence: int | None  # seconds, Recurring only
    valid_from: float | None
    valid_to: float | None
    start: float | None  # startSchedule (Absolute: else validFrom); unused for Relative
    duration: int | None
    unit: str
    periods: tuple[Period, ...]
    transaction_id: int | None

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


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _time(value: Any, what: str) -> float:
    if not isinstance(value, str):
        raise InvalidProfile(f"{what} is not a date-time")
    try:
        seconds = parse_time(value)
    except (ValueError, OverflowError, OSError) as error:
        raise InvalidProfile(f"{what} {value!r} is not a date-time: {error}") from None
    if not math.isfinite(seconds):
        raise InvalidProfile(f"{what} {value!r} is not a date-time")
    return seconds


def _period(raw: Any, index: int, unit: str) -> Period:
    where = f"chargingSchedulePeriod[{index}]"
    if not isinstance(raw, dict):
        raise InvalidProfile(f"{where} is not an object")
    start, limit, phases = raw.get("startPeriod"), raw.get("limit"), raw.get("numberPhases", DEFAULT_PHASES)
    if not _is_int(start) or start < 0:
        raise InvalidProfile(f"{where}.startPeriod {start!r} is not an integer >= 0")
    if not _is_number(limit) or not 0 <= limit <= MAX_LIMIT[unit]:
        raise InvalidProfile(f"{where}.limit {limit!r} is not a number within 0..{MAX_LIMIT[unit]:g} {unit}")
    if not _is_int(phases) or not 1 <= phases <= MAX_PHASES:
        raise InvalidProfile(f"{where}.numberPhases {phases!r} is not within 1..{MAX_PHASES}")
    return Period(start, float(limit), phases)


def compile_profile(connector_id: Any, raw: Any) -> Profile:
    """The profile as the station computes with it; InvalidProfile for anything out of range or of the
    wrong type. These checks do not depend on the configuration (see SmartCharging.check for those)."""
    if not _is_int(connector_id) or connector_id < 0:
        raise InvalidProfile(f"connectorId {connector_id!r} is not an integer >= 0")
    if not isinstance(raw, dict):
        raise InvalidProfile("the charging profile is not an object")
    profile_id, stack_level = raw.get("chargingProfileId"), raw.get("stackLevel")
    purpose, kind = raw.get("chargingProfilePurpose"), raw.get("chargingProfileKind")
    if not _is_int(profile_id):
        raise InvalidProfile(f"chargingProfileId {profile_id!r} is not an integer")
    if not _is_int(stack_level) or stack_level < 0:
        raise InvalidProfile(f"stackLevel {stack_level!r} is not an integer >= 0")
    if purpose not in PURPOSES:
        raise InvalidProfile(f"chargingProfilePurpose {purpose!r} is unknown")
    if kind not in KINDS:
        raise InvalidProfile(f"chargingProfileKind {kind!r} is unknown")
    if purpose == "ChargePointMaxProfile" and connector_id != 0:
        raise InvalidProfile("a ChargePointMaxProfile is only for connector 0")
    if purpose == "TxProfile" and connector_id == 0:
        raise InvalidProfile("a TxProfile is only for a connector, not 0")
    recurrence = None
    if kind == "Recurring":
        recurrency_kind = raw.get("recurrencyKind")
        recurrence = RECURRENCE.get(recurrency_kind) if isinstance(recurrency_kind, str) else None
        if recurrence is None:
            raise InvalidProfile(f"recurrencyKind {recurrency_kind!r} is not Daily or Weekly")
    valid_from = _time(raw["validFrom"], "validFrom") if "validFrom" in raw else None
    valid_to = _time(raw["validTo"], "validTo") if "validTo" in raw else None
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidProfile("validTo is not after validFrom")
    transaction_id = raw.get("transactionId")
    if transaction_id is not None and not _is_int(transaction_id):
        raise InvalidProfile(f"transactionId {transaction_id!r} is not an integer")

    schedule = raw.get("chargingSchedule")
    if not isinstance(schedule, dict):
        raise InvalidProfile("chargingSchedule is not an object")
    unit, duration = schedule.get("chargingRateUnit"), schedule.get("duration")
    if not isinstance(unit, str) or unit not in UNITS:
        raise InvalidProfile(f"chargingRateUnit {unit!r} is not A or W")
    if duration is not None and (not _is_int(duration) or duration < 0):
        raise InvalidProfile(f"duration {duration!r} is not an integer >= 0")
    start = _time(schedule["startSchedule"], "startSchedule") if "startSchedule" in schedule else None
    if kind == "Absolute" and start is None:
        if valid_from is None:
            raise InvalidProfile("an Absolute profile needs startSchedule (or validFrom)")
        start = valid_from
    minimum = schedule.get("minChargingRate")
    if minimum is not None and (not _is_number(minimum) or not 0 <= minimum <= MAX_LIMIT[unit]):
        raise InvalidProfile(f"minChargingRate {minimum!r} is not a number within 0..{MAX_LIMIT[unit]:g}")
    raw_periods = schedule.get("chargingSchedulePeriod")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise InvalidProfile("chargingSchedulePeriod is not a non-empty list")
    periods = tuple(_period(p, i, unit) for i, p in enumerate(raw_periods))
    if periods[0].start != 0:
        raise InvalidProfile("the first startPeriod is not 0")
    if any(b.start <= a.start for a, b in zip(periods, periods[1:], strict=False)):
        raise InvalidProfile("startPeriod values are not strictly increasing")
    return Profile(profile_id, connector_id, purpose, stack_level, kind, recurrence, valid_from, valid_to, start,
                   duration, unit, periods, transaction_id)


def _convert(limit: float, phases: int, unit: str, wanted: str) -> float:
    if unit == wanted:
        return limit
    return limit / (VOLTAGE * phases) if wanted == "A" else limit * VOLTAGE * phases


def _tenths(limit: float) -> float:
    """Down to a multiple of 0.1 (the 1.6 schema's step); rounded first so that 2.3 stays 2.3."""
    return math.floor(round(limit * 10, 6)) / 10


class SmartCharging:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, transactions: Transactions) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.transactions = transactions
        transactions.started.subscribe(self.transaction_started)
        transactions.ended.subscribe(self.transaction_ended)
        self._tx_start: dict[int, float] = {}
        self._pending_tx_profile: dict[int, dict[str, Any]] = {}
        self._refresh_timer: TimerHandle | None = None

    def cancel_timers(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()

    def _load(self) -> dict[int, tuple[dict[str, Any], Profile]]:
        """The installed profiles that pass compile_profile; every other record is quarantined and removed
        (a corrupt or hand-edited store must not stop the others, or the whole service)."""
        loaded: dict[int, tuple[dict[str, Any], Profile]] = {}
        for pid, data in self.ctx.store.records(KIND).items():
            try:
                profile = compile_profile(data.get("connectorId"), data.get("profile"))
                if profile.id != pid:
                    raise InvalidProfile(f"chargingProfileId {profile.id} is stored as {pid}")
            except InvalidProfile as bad:
                with self.ctx.store.atomic():
                    self.ctx.store.quarantine("record", f"{KIND}/{pid}", repr(data), str(bad))
                    self.ctx.store.remove_record(KIND, pid)
                continue
            loaded[pid] = (data, profile)
        return loaded

    def profiles(self) -> dict[int, dict[str, Any]]:
        """id -> {"connectorId": n, "profile": csChargingProfiles}, the usable ones only."""
        return {pid: data for pid, (data, _) in self._load().items()}

    # -- installing -------------------------------------------------------------------------------------
    def check(self, connector_id: Any, raw: Any, *, in_transaction: bool) -> Profile:
        """The profile if this station accepts it on that connector now, else InvalidProfile. With
        in_transaction=False (RemoteStartTransaction) a TxProfile is for the transaction about to start."""
        profile = compile_profile(connector_id, raw)
        config = self.ctx.config
        if connector_id != 0 and connector_id not in self.connectors:
            raise InvalidProfile(f"connector {connector_id} does not exist")
        if profile.stack_level > config.int("ChargeProfileMaxStackLevel"):
            raise InvalidProfile(f"stackLevel {profile.stack_level} is above ChargeProfileMaxStackLevel")
        if len(profile.periods) > config.int("ChargingScheduleMaxPeriods"):
            raise InvalidProfile(f"{len(profile.periods)} periods are more than ChargingScheduleMaxPeriods")
        if UNITS[profile.unit] not in config.csl("ChargingScheduleAllowedChargingRateUnit"):
            raise InvalidProfile(f"unit {profile.unit} is not in ChargingScheduleAllowedChargingRateUnit")
        connector = self.connectors.get(connector_id)
        running = None if connector is None else self.transactions.transaction_id(connector)
        if profile.purpose == "TxProfile" and in_transaction and (connector is None or connector.transaction is None):
            raise InvalidProfile("a TxProfile needs a transaction on the connector")
        if profile.transaction_id is not None and (not in_transaction or profile.transaction_id != running):
            raise InvalidProfile(f"transactionId {profile.transaction_id} is not the connector's transaction")
        return profile

    def _install(self, connector_id: int, profile: dict[str, Any]) -> bool:
        existing = self.profiles()
        replaced = [pid for pid, rec in existing.items()
                    if pid == profile["chargingProfileId"]
                    or (rec["connectorId"] == connector_id
                        and rec["profile"]["stackLevel"] == profile["stackLevel"]
                        and rec["profile"]["chargingProfilePurpose"] == profile["chargingProfilePurpose"])]
        if len(existing) - len(replaced) >= self.ctx.config.int("MaxChargingProfilesInstalled"):
            return False
        with self.ctx.store.atomic():
            for pid in replaced:
                self.ctx.store.remove_record(KIND, pid)
            self.ctx.store.put_record(KIND, profile["chargingProfileId"], {"connectorId": connector_id,
                                                                          "profile": profile})
        self.ctx.log.info("charging profile %d installed on connector %d", profile["chargingProfileId"], connector_id)
        return True

    @handles("SetChargingProfile")
    async def on_set_charging_profile(self, payload: dict[str, Any]) -> Reply:
        connector_id, raw = payload.get("connectorId"), payload.get("csChargingProfiles")
        try:
            self.check(connector_id, raw, in_transaction=True)
        except InvalidProfile as bad:
            self.ctx.log.warning("SetChargingProfile on connector %r rejected: %s", connector_id, bad)
            return Reply({"status": "Rejected"})
        assert isinstance(raw, dict) and isinstance(connector_id, int)
        if not self._install(connector_id, raw):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, self.apply)

    def accept_remote_start_profile(self, connector_id: int | None, profile: dict[str, Any]) -> bool:
        """RemoteStartTransaction.chargingProfile: a TxProfile kept until the transaction starts."""
        if not isinstance(profile, dict) or profile.get("chargingProfilePurpose") != "TxProfile" \
                or connector_id is None:
            return False
        try:
            self.check(connector_id, profile, in_transaction=False)
        except InvalidProfile as bad:
            self.ctx.log.warning("RemoteStartTransaction's charging profile rejected: %s", bad)
            return False
        self._pending_tx_profile[connector_id] = profile
        return True

    @handles("ClearChargingProfile")
    async def on_clear_charging_profile(self, payload: dict[str, Any]) -> Reply:
        matching = [pid for pid, rec in self.profiles().items() if self._matches(pid, rec, payload)]
        if not matching:
            return Reply({"status": "Unknown"})
        with self.ctx.store.atomic():
            for pid in matching:
                self.ctx.store.remove_record(KIND, pid)
        return Reply({"status": "Accepted"}, self.apply)

    @staticmethod
    def _matches(pid: int, record: dict[str, Any], criteria: dict[str, Any]) -> bool:
        if "id" in criteria:
            return pid == criteria["id"]
        profile = record["profile"]
        return (criteria.get("connectorId") in (None, record["connectorId"])
                and criteria.get("chargingProfilePurpose") in (None, profile["chargingProfilePurpose"])
                and criteria.get("stackLevel") in (None, profile["stackLevel"]))

    # -- transactions -----------------------------------------------------------------------------------
    def transaction_started(self, started: Started) -> None:
        connector_id = started.connector_id
        self._tx_start[connector_id] = started.start_time
        pending = self._pending_tx_profile.pop(connector_id, None)
        if pending is not None:
            self._install(connector_id, pending)
        self._schedule_apply()

    def transaction_ended(self, connector_id: int) -> None:
        self._tx_start.pop(connector_id, None)
        tx_profiles = [pid for pid, rec in self.profiles().items() if rec["connectorId"] == connector_id
                       and rec["profile"]["chargingProfilePurpose"] == "TxProfile"]
        with self.ctx.store.atomic():
            for pid in tx_profiles:
                self.ctx.store.remove_record(KIND, pid)
        self._schedule_apply()

    def _schedule_apply(self) -> None:
        self.ctx.jobs.spawn(self.apply())

    # -- composite schedule -----------------------------------------------------------------------------
    def _relevant(self, connector_id: int) -> dict[str, list[Profile]]:
        """Profiles per purpose that can apply to the connector (0 = the station), best first:
        connector-specific before connector 0, then the highest stack level."""
        by_purpose: dict[str, list[Profile]] = {purpose: [] for purpose in PURPOSES}
        for _, profile in self._load().values():
            on = profile.connector_id
            if profile.purpose == "ChargePointMaxProfile" or on == connector_id or (
                    profile.purpose == "TxDefaultProfile" and on == 0 and connector_id != 0):
                by_purpose[profile.purpose].append(profile)
        for profiles in by_purpose.values():
            profiles.sort(key=lambda p: (p.connector_id == connector_id, p.stack_level), reverse=True)
        return by_purpose

    def composite(self, connector_id: int, begin: float, duration: float, unit: str) -> list[dict[str, Any]]:
        """Periods [{startPeriod, limit, numberPhases}] relative to begin, covering [begin, begin + duration):
        startPeriod whole seconds, strictly increasing from 0, neighbours differing; limit (and numberPhases)
        None where no profile limits."""
        tx_start = self._tx_start.get(connector_id)
        relevant = self._relevant(connector_id)
        end = begin + duration
        # the state after the last change within each second (profile times carry milliseconds)
        latest: dict[int, float] = {0: begin}
        for profiles in relevant.values():
            for profile in profiles:
                for at in profile.boundaries(begin, end, tx_start):
                    second = math.floor(at - begin)
                    latest[second] = max(latest.get(second, at), at)
        periods: list[dict[str, Any]] = []
        for second in sorted(latest):
            limit, phases = self._limit(relevant, latest[second], tx_start, unit) or (None, None)
            if periods and periods[-1]["limit"] == limit and periods[-1]["numberPhases"] == phases:
                continue
            periods.append({"startPeriod": second, "limit": limit, "numberPhases": phases})
        return periods

    @staticmethod
    def _limit(relevant: dict[str, list[Profile]], at: float, tx_start: float | None,
               unit: str) -> tuple[float, int] | None:
        def best(profiles: list[Profile]) -> tuple[float, int] | None:
            for profile in profiles:
                period = profile.limit_at(at, tx_start)
                if period is not None:
                    return _convert(period.limit, period.phases, profile.unit, unit), period.phases
            return None

        tx = best(relevant["TxProfile"]) if tx_start is not None else None
        chosen = [x for x in (best(relevant["ChargePointMaxProfile"]), tx or best(relevant["TxDefaultProfile"]))
                  if x is not None]
        if not chosen:
            return None
        return min(x[0] for x in chosen), min(x[1] for x in chosen)

    @staticmethod
    def reported(periods: list[dict[str, Any]], unit: str) -> list[dict[str, Any]]:
        """The composite as the station reports it: the station's maximum where no profile limits, every
        limit capped at it and down to a multiple of 0.1; neighbours that became equal are merged."""
        out: list[dict[str, Any]] = []
        for period in periods:
            phases = STATION_MAX_PHASES if period["limit"] is None else period["numberPhases"]
            cap = _convert(STATION_MAX_CURRENT_A, phases, "A", unit)
            limit = _tenths(cap if period["limit"] is None else min(period["limit"], cap))
            if out and out[-1]["limit"] == limit and out[-1]["numberPhases"] == phases:
                continue
            out.append({"startPeriod": period["startPeriod"], "limit": limit, "numberPhases": phases})
        return out

    @handles("GetCompositeSchedule")
    async def on_get_composite_schedule(self, payload: dict[str, Any]) -> Reply:
        connector_id, duration = payload.get("connectorId"), payload.get("duration")
        unit = payload.get("chargingRateUnit", "A")
        if not _is_int(connector_id) or (connector_id != 0 and connector_id not in self.connectors) \
                or not _is_int(duration) or duration < 0 or not isinstance(unit, str) or unit not in UNITS:
            return Reply({"status": "Rejected"})
        duration = min(duration, MAX_COMPOSITE_DURATION_S)
        now = math.floor(self.ctx.clock.time())
        periods = self.reported(self.composite(connector_id, now, duration, unit), unit)
        return Reply({"status": "Accepted", "connectorId": connector_id, "scheduleStart": rfc3339(now),
                      "chargingSchedule": {"duration": duration, "startSchedule": rfc3339(now),
                                           "chargingRateUnit": unit, "chargingSchedulePeriod": periods}})

    async def apply(self) -> None:
        """Send the composite schedule of every connector to energy management and publish it."""
        now = math.floor(self.ctx.clock.time())
        schedules = []
        for connector_id in [0, *self.connectors.ids()]:
            periods = self.composite(connector_id, now, HORIZON_S, "A")
            schedules.append({"evse": connector_id, "charging_rate_unit": "A", "start_schedule": rfc3339(now),
                              "duration": HORIZON_S, "charging_schedule_period": [
                                  {"start_period": p["startPeriod"], "limit": p["limit"],
                                   "number_phases": p["numberPhases"]} for p in self.reported(periods, "A")]})
            if connector_id == 0:
                continue
            entries = []
            if any(period["limit"] is not None for period in periods):  # else: no external limit at all
                for period in periods:
                    timestamp = datetime.fromtimestamp(now + period["startPeriod"], UTC).isoformat() \
                        .replace("+00:00", "Z")
                    limits = {} if period["limit"] is None else {
                        "ac_max_current_A": {"value": period["limit"], "source": "OCPP"},
                        "ac_max_phase_count": {"value": period["numberPhases"], "source": "OCPP"}}
                    entries.append({"timestamp": timestamp, "limits_to_root": limits, "limits_to_leaves": {}})
            await self.ctx.station.apply_limits(connector_id, entries)
        self.ctx.station.publish("charging_schedules", {"schedules": schedules})
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        # profiles reach beyond the horizon, and recurring ones roll over: recompute well before its end
        self._refresh_timer = self.ctx.clock.call_later(HORIZON_S / 2, self.apply)
