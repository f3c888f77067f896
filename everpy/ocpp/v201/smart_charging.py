"""Functional block K (smart charging) of OCPP 2.0.1: SetChargingProfile (K01), ClearChargingProfile (K10),
GetChargingProfiles / ReportChargingProfiles (K09), GetCompositeSchedule (K08), a RequestStartTransaction's
TxProfile (K05), and the composite limit of every EVSE applied to energy management.

The math is version-neutral (:mod:`everpy.ocpp.charging_profiles`): this block reads 2.0.1's fields into
it. ChargingStationMaxProfile is the station maximum (evseId 0 only, never Relative: K01.FR.38);
ChargingStationExternalConstraints are local limits and refused from the CSMS (K01.FR.22). A profile's
``chargingSchedule`` holds one to three schedules; all are checked and kept (and reported as received), the
first is the one the station computes with (the others are alternatives offered to an ISO 15118 EV, which
this station does not negotiate).

Installing (K01): the same id replaces the installed profile (K01.FR.05); another profile with the same
purpose and stack level on the same EVSE and an overlapping validity is refused (K01.FR.06), and so is a
TxProfile with the stack level and transaction of another (K01.FR.39). A TxProfile names the transaction
running on its EVSE (K01.FR.03, K01.FR.09), and ends with it. Every Rejected carries statusInfo.reasonCode.

Profiles are records of the store (kind :data:`KIND`, this version's own); a record that no longer
compiles when read is quarantined and removed, never used. SmartChargingCtrlr.Entries is kept at the number
installed. With SmartChargingCtrlr.Enabled false no profile is installed or applied, and a remote start's
profile is ignored (the transaction starts without it: TC_K_38).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext, Signal, handles
from everpy.ocpp.charging_profiles import (
    MAX_COMPOSITE_DURATION_S,
    InvalidProfile,
    LimitApplier,
    Profile,
    Role,
    compile_schedule,
    identify,
    is_int,
    kind_of,
    reported,
    validity,
)
from everpy.ocpp.charging_profiles import composite as compute_composite
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.device_model import Address, DeviceModel
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.charging import (
    SMART_CHARGING_ENABLED,
    SMART_CHARGING_ENTRIES,
    SMART_CHARGING_PERIODS_PER_SCHEDULE,
    SMART_CHARGING_PROFILE_STACK_LEVEL,
    SMART_CHARGING_RATE_UNIT,
)
from everpy.ocpp.values import parse_time, rfc3339

Ctx = BlockContext[DeviceModel]
KIND = "charging_profile"
ROLES = {"ChargingStationMaxProfile": Role.STATION_MAX, "ChargingStationExternalConstraints": Role.EXTERNAL,
         "TxDefaultProfile": Role.TX_DEFAULT, "TxProfile": Role.TX}
CSO = "CSO"  # chargingLimitSource of the profiles the CSMS sets
MAX_SCHEDULES = 3
MAX_TRANSACTION_ID = 36
# Most profiles installed at once: each one is compiled for every composite, and the store holds them.
MAX_PROFILES = 64
# Most profiles in one ReportChargingProfilesRequest; a larger group is sent in several (tbc).
PROFILES_PER_REPORT = 8


class Refused(InvalidProfile):
    """A profile the station will not install now, with the reasonCode of the Rejected answer."""

    def __init__(self, reason_code: str, info: str) -> None:
        super().__init__(info)
        self.reason_code = reason_code


def compile_profile(evse_id: Any, raw: Any) -> Profile:
    """A ChargingProfileType as the station computes with it; InvalidProfile for anything out of range or
    of the wrong type. These checks do not depend on the device model (see SmartCharging.check)."""
    profile_id, stack_level, role = identify("evseId", evse_id, raw, "id", ROLES)
    kind, recurrence = kind_of(raw)
    if role is Role.STATION_MAX and evse_id != 0:
        raise InvalidProfile("a ChargingStationMaxProfile is only for evseId 0")
    if role is Role.STATION_MAX and kind == "Relative":
        raise InvalidProfile("a ChargingStationMaxProfile is not Relative")  # K01.FR.38
    if role is Role.TX and evse_id == 0:
        raise InvalidProfile("a TxProfile is only for an EVSE, not evseId 0")  # K01.FR.16
    valid_from, valid_to = validity(raw)
    transaction_id = raw.get("transactionId")
    if transaction_id is not None:
        if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= MAX_TRANSACTION_ID:
            raise InvalidProfile(f"transactionId {transaction_id!r} is not a string of 1..{MAX_TRANSACTION_ID}")
        if role is not Role.TX:
            raise InvalidProfile("only a TxProfile names a transactionId")
    raw_schedules = raw.get("chargingSchedule")
    if not isinstance(raw_schedules, list) or not 1 <= len(raw_schedules) <= MAX_SCHEDULES:
        raise InvalidProfile(f"chargingSchedule is not a list of 1..{MAX_SCHEDULES} schedules")
    schedules = [compile_schedule(schedule) for schedule in raw_schedules]
    ids = [schedule.get("id") for schedule in raw_schedules]
    if not all(is_int(schedule_id) for schedule_id in ids) or len(set(ids)) != len(ids):
        raise InvalidProfile(f"the schedules' ids {ids!r} are not distinct integers")
    for schedule in schedules:
        if kind == "Relative" and schedule.start is not None:
            raise InvalidProfile("a Relative profile has no startSchedule")  # K01.FR.41
        if kind != "Relative" and schedule.start is None:
            raise InvalidProfile(f"an {kind} profile needs startSchedule")  # K01.FR.40
    first = schedules[0]
    return Profile(profile_id, evse_id, role, stack_level, kind, recurrence, valid_from, valid_to, first.start,
                   first.duration, first.unit, first.periods, transaction_id)


@dataclass(frozen=True)
class Installed:
    """A profile of the store: what the CSMS sent (reported as such) and its compiled form."""

    evse_id: int
    raw: dict[str, Any]
    source: str
    profile: Profile

    @property
    def purpose(self) -> str:
        return str(self.raw["chargingProfilePurpose"])


class RunningTransaction(Protocol):
    @property
    def tx_id(self) -> str: ...

    @property
    def state(self) -> Any: ...  # TxState: start_time (RFC 3339), remote_start_id


class TransactionsView(Protocol):
    """What smart charging needs of the transactions block."""

    running: dict[int, Any]  # EVSE id -> RunningTransaction
    started: Signal[int]
    ended: Signal[int]


def _rejected(reason_code: str, info: str) -> Reply:
    return Reply({"status": "Rejected", "statusInfo": {"reasonCode": reason_code, "additionalInfo": info[:512]}})


class SmartCharging:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: TransactionsView) -> None:
        self.ctx, self.evses, self.transactions = ctx, evses, transactions
        transactions.started.subscribe(self.transaction_started)
        transactions.ended.subscribe(self.transaction_ended)
        ctx.config.on_change(self._variable_changed)
        # RequestStartTransaction profiles waiting for their transaction, by EVSE (None: whichever EVSE)
        self._pending: dict[int | None, dict[str, Any]] = {}
        self._applier = LimitApplier(ctx.station, ctx.clock, evses.ids, self.composite)

    def cancel_timers(self) -> None:
        self._applier.cancel_timers()

    @property
    def enabled(self) -> bool:
        return self.ctx.config.bool(SMART_CHARGING_ENABLED)

    def _variable_changed(self, address: Address, value: str) -> None:
        if address.ref == SMART_CHARGING_ENABLED:
            self.ctx.jobs.spawn(self.apply())

    # -- the store ----------------------------------------------------------------------------------------
    def installed(self) -> dict[int, Installed]:
        """id -> profile, the usable ones only: every other record is quarantined and removed (a corrupt or
        hand-edited store must not stop the others, or the whole service)."""
        loaded: dict[int, Installed] = {}
        for pid, data in self.ctx.store.records(KIND).items():
            try:
                evse_id, raw, source = data.get("evseId"), data.get("profile"), data.get("source")
                profile = compile_profile(evse_id, raw)
                if profile.id != pid:
                    raise InvalidProfile(f"id {profile.id} is stored as {pid}")
                if evse_id != 0 and evse_id not in self.evses:
                    raise InvalidProfile(f"no EVSE {evse_id}")
                if source != CSO:
                    raise InvalidProfile(f"source {source!r} is not {CSO}")
            except InvalidProfile as bad:
                self.ctx.store.drop_record(KIND, pid, data, str(bad))
                continue
            assert isinstance(raw, dict) and is_int(evse_id)  # compile_profile checked both
            loaded[pid] = Installed(evse_id, raw, CSO, profile)
        return loaded

    def _remove(self, ids: list[int]) -> None:
        with self.ctx.store.atomic():
            for pid in ids:
                self.ctx.store.remove_record(KIND, pid)
        self._count()

    def _count(self) -> None:
        self.ctx.config.set_internal(SMART_CHARGING_ENTRIES, str(len(self.ctx.store.records(KIND))))

    # -- installing -----------------------------------------------------------------------------------------
    def check(self, evse_id: Any, raw: Any, *, transaction_id: str | None, starting: bool = False) -> Profile:
        """The profile if the station installs it on that EVSE now, else Refused. ``transaction_id``: the
        transaction a TxProfile must name (None: no transaction runs there); ``starting``: a remote start's
        TxProfile, for the transaction about to start (so it names none yet)."""
        try:
            profile = compile_profile(evse_id, raw)
        except InvalidProfile as bad:
            raise Refused("InvalidProfile", str(bad)) from None
        if evse_id != 0 and evse_id not in self.evses:
            raise Refused("UnknownEvse", f"no EVSE {evse_id}")
        if profile.role is Role.EXTERNAL:  # K01.FR.22: local limits, not the CSMS's
            raise Refused("InvalidProfile", "ChargingStationExternalConstraints are not set by the CSMS")
        model = self.ctx.config
        if profile.stack_level > model.int(SMART_CHARGING_PROFILE_STACK_LEVEL):
            raise Refused("InvalidStackLevel", f"stackLevel {profile.stack_level} is above ProfileStackLevel")
        assert isinstance(raw, dict)
        most = model.int(SMART_CHARGING_PERIODS_PER_SCHEDULE)
        for schedule in raw["chargingSchedule"]:
            if len(schedule["chargingSchedulePeriod"]) > most:
                raise Refused("InvalidSchedule", f"a schedule has more than PeriodsPerSchedule ({most}) periods")
            if schedule["chargingRateUnit"] not in model.list(SMART_CHARGING_RATE_UNIT):
                raise Refused("UnsupportedRateUnit", f"unit {schedule['chargingRateUnit']} is not in RateUnit")
        if profile.role is Role.TX and not starting:
            if transaction_id is None:
                raise Refused("TxNotFound", f"no transaction runs on EVSE {evse_id}")
            if profile.transaction_id != transaction_id:  # K01.FR.03 (none), K01.FR.09 (another)
                raise Refused("TxNotFound", f"transactionId {profile.transaction_id!r} does not run on EVSE "
                                            f"{evse_id}")
        return profile

    def _conflict(self, profile: Profile, installed: dict[int, Installed]) -> str | None:
        for other in installed.values():
            theirs = other.profile
            if theirs.id == profile.id or theirs.role is not profile.role or theirs.stack_level != profile.stack_level:
                continue
            if profile.role is Role.TX and theirs.transaction_id == profile.transaction_id:  # K01.FR.39
                return f"profile {theirs.id} has stackLevel {profile.stack_level} for this transaction"
            if profile.role is not Role.TX and other.evse_id == profile.evse_id and theirs.overlaps(profile):
                return f"profile {theirs.id} has this purpose and stackLevel on EVSE {profile.evse_id}"  # K01.FR.06
        return None

    def _install(self, profile: Profile, raw: dict[str, Any]) -> None:
        installed = self.installed()
        conflict = self._conflict(profile, installed)
        if conflict is not None:
            raise Refused("DuplicateProfile", conflict)
        if len(installed) - (profile.id in installed) >= MAX_PROFILES:
            raise Refused("NoCapacity", f"{MAX_PROFILES} profiles are installed")
        with self.ctx.store.atomic():  # K01.FR.05: the same id replaces, wherever it was
            self.ctx.store.put_record(KIND, profile.id, {"evseId": profile.evse_id, "profile": raw, "source": CSO})
        self._count()
        self.ctx.log.info("charging profile %d (%s) installed on EVSE %d", profile.id, raw["chargingProfilePurpose"],
                          profile.evse_id)

    def _running_id(self, evse_id: Any) -> str | None:
        tx = self.transactions.running.get(evse_id) if is_int(evse_id) else None
        return None if tx is None else str(tx.tx_id)

    @handles("SetChargingProfile")
    async def on_set_charging_profile(self, payload: dict[str, Any]) -> Reply:
        evse_id, raw = payload.get("evseId"), payload.get("chargingProfile")
        if not self.enabled:
            return _rejected("NotEnabled", "SmartChargingCtrlr.Enabled is false")
        try:
            profile = self.check(evse_id, raw, transaction_id=self._running_id(evse_id))
            assert isinstance(raw, dict)
            self._install(profile, raw)
        except Refused as refused:
            self.ctx.log.warning("SetChargingProfile on EVSE %r rejected: %s", evse_id, refused)
            return _rejected(refused.reason_code, str(refused))
        return Reply({"status": "Accepted"}, self.apply)

    def accept_remote_start_profile(self, evse_id: int | None, profile: dict[str, Any] | None) -> str | None:
        """A RequestStartTransaction's chargingProfile (K05: a TxProfile without transactionId): None if it
        is taken (installed on the transaction that runs already, else kept for the one about to start),
        else the reason. With smart charging disabled it is ignored and the start goes ahead (TC_K_38).
        Every remote start replaces what an earlier one left waiting (None: nothing waits): a start whose car
        never came must not hand its limit to the next one."""
        self._pending.pop(evse_id, None)
        if evse_id is not None:
            self._pending.pop(None, None)
        if profile is None:
            return None
        if not self.enabled:
            self.ctx.log.info("RequestStartTransaction's charging profile ignored: smart charging is disabled")
            return None
        if not isinstance(profile, dict) or profile.get("chargingProfilePurpose") != "TxProfile":
            return "the charging profile is not a TxProfile"
        if "transactionId" in profile:
            return "a remote start's charging profile has no transactionId"
        running = self._running_id(evse_id)
        try:
            if running is not None and evse_id is not None:  # F01: the car was plugged in first, its tx runs
                bound = {**profile, "transactionId": running}
                self._install(self.check(evse_id, bound, transaction_id=running), bound)
                self.ctx.jobs.spawn(self.apply())
                return None
            # for one EVSE, or for whichever EVSE starts it (checked against the first)
            self.check(evse_id if evse_id is not None else self.evses.ids()[0], profile, transaction_id=None,
                       starting=True)
        except Refused as refused:
            self.ctx.log.warning("RequestStartTransaction's charging profile rejected: %s", refused)
            return str(refused)
        self._pending[evse_id] = profile
        return None

    @handles("ClearChargingProfile")
    async def on_clear_charging_profile(self, payload: dict[str, Any]) -> Reply:
        profile_id, criteria = payload.get("chargingProfileId"), payload.get("chargingProfileCriteria") or {}
        installed = self.installed()
        if profile_id is not None:  # K10.FR.02: by id, whatever the criteria
            matching = [profile_id] if profile_id in installed else []
        else:
            matching = [pid for pid, p in installed.items() if p.profile.role is not Role.EXTERNAL
                        and criteria.get("evseId") in (None, p.evse_id)
                        and criteria.get("chargingProfilePurpose") in (None, p.purpose)
                        and criteria.get("stackLevel") in (None, p.profile.stack_level)]
        if not matching:
            return Reply({"status": "Unknown"})
        self._remove(matching)
        return Reply({"status": "Accepted"}, self.apply)

    # -- GetChargingProfiles ----------------------------------------------------------------------------------
    @staticmethod
    def _reported(p: Installed, evse_id: Any, criteria: dict[str, Any]) -> bool:
        ids, sources = criteria.get("chargingProfileId"), criteria.get("chargingLimitSource")
        return (evse_id in (None, p.evse_id)
                and (ids is None or p.profile.id in ids)
                and (sources is None or p.source in sources)
                and criteria.get("chargingProfilePurpose") in (None, p.purpose)
                and criteria.get("stackLevel") in (None, p.profile.stack_level))

    @handles("GetChargingProfiles")
    async def on_get_charging_profiles(self, payload: dict[str, Any]) -> Reply:
        request_id, evse_id = payload.get("requestId"), payload.get("evseId")
        criteria = payload.get("chargingProfile") or {}
        found = [p for p in self.installed().values() if self._reported(p, evse_id, criteria)]
        if not found:
            return Reply({"status": "NoProfiles"})
        reports = self.reports(request_id, found)
        return Reply({"status": "Accepted"}, lambda: self._send_reports(reports))

    @staticmethod
    def reports(request_id: Any, found: list[Installed]) -> list[dict[str, Any]]:
        """The ReportChargingProfilesRequests of the profiles: one or more per EVSE and source (at most
        PROFILES_PER_REPORT profiles each), tbc on every one but the last."""
        groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for p in sorted(found, key=lambda p: (p.evse_id, p.source, p.profile.id)):
            groups.setdefault((p.evse_id, p.source), []).append(p.raw)
        reports = []
        for (evse_id, source), profiles in groups.items():
            for first in range(0, len(profiles), PROFILES_PER_REPORT):
                reports.append({"requestId": request_id, "chargingLimitSource": source, "tbc": True,
                                "evseId": evse_id, "chargingProfile": profiles[first:first + PROFILES_PER_REPORT]})
        reports[-1]["tbc"] = False
        return reports

    async def _send_reports(self, reports: list[dict[str, Any]]) -> None:
        for report in reports:
            if await self.ctx.sender.call_or_log("ReportChargingProfiles", report) is None:
                self.ctx.log.warning("ReportChargingProfiles of request %r not delivered; the rest not sent",
                                     report["requestId"])
                return

    # -- transactions ---------------------------------------------------------------------------------------
    def transaction_started(self, evse_id: int) -> None:
        tx = self.transactions.running.get(evse_id)
        # only a remotely started transaction takes a remote start's profile (not a local one that came first)
        pending = None
        if tx is not None and tx.state.remote_start_id is not None:
            pending = self._pending.pop(evse_id, None) or self._pending.pop(None, None)
        if pending is not None and tx is not None:
            raw = {**pending, "transactionId": str(tx.tx_id)}
            try:
                self._install(self.check(evse_id, raw, transaction_id=str(tx.tx_id)), raw)
            except Refused as refused:
                self.ctx.log.warning("the remote start's charging profile not installed on EVSE %d: %s", evse_id,
                                     refused)
        self.ctx.jobs.spawn(self.apply())

    def transaction_ended(self, evse_id: int) -> None:
        """K01: a TxProfile ends with its transaction."""
        self._remove([pid for pid, p in self.installed().items()
                      if p.evse_id == evse_id and p.profile.role is Role.TX])
        self.ctx.jobs.spawn(self.apply())

    def _tx_start(self, evse_id: int) -> float | None:
        tx = self.transactions.running.get(evse_id)
        if tx is None:
            return None
        try:
            return parse_time(str(tx.state.start_time))
        except ValueError:
            return None

    # -- the composite ----------------------------------------------------------------------------------------
    def composite(self, evse_id: int, begin: float, duration: float, unit: str) -> list[dict[str, Any]]:
        """The EVSE's composite (see everpy.ocpp.charging_profiles.composite); 0 = the station. Nothing
        limits while smart charging is disabled."""
        profiles = [p.profile for p in self.installed().values()] if self.enabled else []
        return compute_composite(profiles, evse_id, begin, duration, unit, self._tx_start(evse_id))

    @handles("GetCompositeSchedule")
    async def on_get_composite_schedule(self, payload: dict[str, Any]) -> Reply:
        evse_id, duration = payload.get("evseId"), payload.get("duration")
        units = self.ctx.config.list(SMART_CHARGING_RATE_UNIT)
        unit = payload.get("chargingRateUnit") or ("A" if "A" in units else (units or ["A"])[0])
        if not self.enabled:
            return _rejected("NotEnabled", "SmartChargingCtrlr.Enabled is false")
        if not is_int(evse_id) or (evse_id != 0 and evse_id not in self.evses):
            return _rejected("UnknownEvse", f"no EVSE {evse_id!r}")
        if not is_int(duration) or duration < 0:
            return _rejected("InvalidValue", f"duration {duration!r} is not an integer >= 0")
        if unit not in units or unit not in ("A", "W"):
            return _rejected("UnsupportedRateUnit", f"unit {unit!r} is not in RateUnit")
        duration = min(duration, MAX_COMPOSITE_DURATION_S)
        now = math.floor(self.ctx.clock.time())
        periods = reported(self.composite(evse_id, now, duration, unit), unit)
        return Reply({"status": "Accepted", "schedule": {
            "evseId": evse_id, "duration": duration, "scheduleStart": rfc3339(now), "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods}})

    async def apply(self) -> None:
        """Drop TxProfiles whose transaction no longer runs (it ended while the service was away), keep
        Entries current, and send every EVSE's composite to energy management."""
        stale = [pid for pid, p in self.installed().items() if p.profile.role is Role.TX
                 and p.profile.transaction_id != self._running_id(p.evse_id)]
        self._remove(stale)
        await self._applier.apply()
