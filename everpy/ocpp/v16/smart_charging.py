"""Smart Charging profile: charging profiles, the composite schedule, and its enforcement.

The composite schedule of a connector at time t is min(ChargePointMaxProfile, TxProfile if one applies
else TxDefaultProfile), each purpose contributing its valid profile with the highest stackLevel whose
schedule covers t (connector-specific TxDefault profiles win over connector 0 ones). That composite
is exactly what is sent to energy management (external limits) and what GetCompositeSchedule returns.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.transactions import Started, Transactions
from everpy.ocpp.values import parse_time, rfc3339

KIND = "charging_profile"
VOLTAGE = 230.0  # for converting between A and W schedules (per phase)
DEFAULT_PHASES = 3
HORIZON_S = 24 * 3600
UNITS = {"A": "Current", "W": "Power"}
DAY, WEEK = 86400, 7 * 86400


def _schedule_start(profile: dict[str, Any], at: float, tx_start: float | None) -> float | None:
    schedule = profile["chargingSchedule"]
    kind = profile["chargingProfileKind"]
    if kind == "Relative":
        return tx_start
    start = parse_time(schedule["startSchedule"]) if "startSchedule" in schedule else None
    if kind == "Recurring":
        period = WEEK if profile.get("recurrencyKind") == "Weekly" else DAY
        anchor = start if start is not None else 0.0
        return anchor + math.floor((at - anchor) / period) * period
    if start is None and "validFrom" in profile:
        start = parse_time(profile["validFrom"])
    return start


def _limit_at(profile: dict[str, Any], at: float, tx_start: float | None) -> tuple[float, int, str] | None:
    """(limit, phases, unit) the profile sets at time `at`, or None if it does not apply then."""
    if "validFrom" in profile and at < parse_time(profile["validFrom"]):
        return None
    if "validTo" in profile and at >= parse_time(profile["validTo"]):
        return None
    start = _schedule_start(profile, at, tx_start)
    if start is None or at < start:
        return None
    schedule = profile["chargingSchedule"]
    elapsed = at - start
    if "duration" in schedule and elapsed >= schedule["duration"]:
        return None
    chosen = None
    for period in schedule["chargingSchedulePeriod"]:
        if period["startPeriod"] <= elapsed:
            chosen = period
    if chosen is None:
        return None
    return float(chosen["limit"]), int(chosen.get("numberPhases", DEFAULT_PHASES)), schedule["chargingRateUnit"]


def _boundaries(profile: dict[str, Any], begin: float, end: float, tx_start: float | None) -> set[float]:
    """Times within [begin, end) where the profile's limit may change."""
    times = {begin}
    for key in ("validFrom", "validTo"):
        if key in profile:
            times.add(parse_time(profile[key]))
    schedule = profile["chargingSchedule"]
    starts: list[float] = []
    if profile["chargingProfileKind"] == "Recurring":
        period = WEEK if profile.get("recurrencyKind") == "Weekly" else DAY
        first = _schedule_start(profile, begin, tx_start)
        while first is not None and first < end:
            starts.append(first)
            first += period
    else:
        start = _schedule_start(profile, begin, tx_start)
        if start is not None:
            starts.append(start)
    for start in starts:
        times.update(start + p["startPeriod"] for p in schedule["chargingSchedulePeriod"])
        if "duration" in schedule:
            times.add(start + schedule["duration"])
    return {t for t in times if begin <= t < end}


def _convert(limit: float, phases: int, unit: str, wanted: str) -> float:
    if unit == wanted:
        return limit
    return limit / (VOLTAGE * phases) if wanted == "A" else limit * VOLTAGE * phases


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

    def profiles(self) -> dict[int, dict[str, Any]]:
        """id -> {"connectorId": n, "profile": csChargingProfiles}"""
        return self.ctx.store.records(KIND)

    # -- installing -------------------------------------------------------------------------------------
    def _check(self, connector_id: int, profile: dict[str, Any]) -> bool:
        config = self.ctx.config
        purpose = profile["chargingProfilePurpose"]
        schedule = profile["chargingSchedule"]
        if connector_id != 0 and connector_id not in self.connectors:
            return False
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return False
        if profile["stackLevel"] > config.int("ChargeProfileMaxStackLevel"):
            return False
        if len(schedule["chargingSchedulePeriod"]) > config.int("ChargingScheduleMaxPeriods"):
            return False
        if UNITS[schedule["chargingRateUnit"]] not in config.csl("ChargingScheduleAllowedChargingRateUnit"):
            return False
        if profile["chargingProfileKind"] == "Recurring" and "recurrencyKind" not in profile:
            return False
        return not (profile["chargingProfileKind"] == "Absolute" and "startSchedule" not in schedule
                    and "validFrom" not in profile)

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
        connector_id, profile = payload["connectorId"], payload["csChargingProfiles"]
        if not self._check(connector_id, profile):
            return Reply({"status": "Rejected"})
        if profile["chargingProfilePurpose"] == "TxProfile":
            connector = self.connectors.get(connector_id)
            if connector is None or connector.transaction is None:
                return Reply({"status": "Rejected"})
            if "transactionId" in profile:
                if self.transactions.transaction_id(connector) != profile["transactionId"]:
                    return Reply({"status": "Rejected"})
        if not self._install(connector_id, profile):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, self.apply)

    def accept_remote_start_profile(self, connector_id: int | None, profile: dict[str, Any]) -> bool:
        """RemoteStartTransaction.chargingProfile: a TxProfile kept until the transaction starts."""
        if profile["chargingProfilePurpose"] != "TxProfile" or connector_id is None:
            return False
        if not self._check(connector_id, profile):
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
    def _relevant(self, connector_id: int) -> dict[str, list[dict[str, Any]]]:
        """Profiles per purpose that can apply to the connector (0 = the station)."""
        by_purpose: dict[str, list[dict[str, Any]]] = {"ChargePointMaxProfile": [], "TxDefaultProfile": [],
                                                       "TxProfile": []}
        for record in self.profiles().values():
            profile, on = record["profile"], record["connectorId"]
            purpose = profile["chargingProfilePurpose"]
            if purpose == "ChargePointMaxProfile" or on == connector_id or (
                    purpose == "TxDefaultProfile" and on == 0 and connector_id != 0):
                by_purpose[purpose].append(record)
        return by_purpose

    def composite(self, connector_id: int, begin: float, duration: float, unit: str) -> list[dict[str, Any]]:
        """Periods [{startPeriod, limit, numberPhases?}] relative to begin; empty if nothing limits."""
        tx_start = self._tx_start.get(connector_id)
        relevant = self._relevant(connector_id)
        end = begin + duration
        times: set[float] = {begin}
        for records in relevant.values():
            for record in records:
                times |= _boundaries(record["profile"], begin, end, tx_start)
        periods: list[dict[str, Any]] = []
        for at in sorted(times):
            limit = self._limit(connector_id, relevant, at, tx_start, unit)
            entry = None if limit is None else {"startPeriod": int(at - begin), "limit": limit[0],
                                                "numberPhases": limit[1]}
            if entry is None:
                if periods and periods[-1].get("limit") is not None:
                    periods.append({"startPeriod": int(at - begin), "limit": None})
                continue
            if periods and periods[-1]["limit"] == entry["limit"] and \
                    periods[-1].get("numberPhases") == entry["numberPhases"]:
                continue
            periods.append(entry)
        return periods

    def _limit(self, connector_id: int, relevant: dict[str, list[dict[str, Any]]], at: float,
               tx_start: float | None, unit: str) -> tuple[float, int] | None:
        def best(records: list[dict[str, Any]]) -> tuple[float, int] | None:
            # connector-specific before connector 0, then the highest stack level that applies
            ordered = sorted(records, key=lambda r: (r["connectorId"] == connector_id, r["profile"]["stackLevel"]),
                             reverse=True)
            for record in ordered:
                limit = _limit_at(record["profile"], at, tx_start)
                if limit is not None:
                    return _convert(limit[0], limit[1], limit[2], unit), limit[1]
            return None

        tx = best(relevant["TxProfile"]) if tx_start is not None else None
        chosen = [x for x in (best(relevant["ChargePointMaxProfile"]), tx or best(relevant["TxDefaultProfile"]))
                  if x is not None]
        if not chosen:
            return None
        return min(x[0] for x in chosen), min(x[1] for x in chosen)

    @handles("GetCompositeSchedule")
    async def on_get_composite_schedule(self, payload: dict[str, Any]) -> Reply:
        connector_id, duration = payload["connectorId"], payload["duration"]
        if connector_id != 0 and connector_id not in self.connectors:
            return Reply({"status": "Rejected"})
        unit = payload.get("chargingRateUnit", "A")
        now = math.floor(self.ctx.clock.time())
        periods = [p for p in self.composite(connector_id, now, duration, unit) if p["limit"] is not None]
        answer: dict[str, Any] = {"status": "Accepted", "connectorId": connector_id, "scheduleStart": rfc3339(now)}
        if periods:
            answer["chargingSchedule"] = {
                "duration": duration, "startSchedule": rfc3339(now), "chargingRateUnit": unit,
                # the 1.6 schema wants limits in steps of 0.1
                "chargingSchedulePeriod": [{**p, "limit": math.floor(p["limit"] * 10) / 10} for p in periods]}
        return Reply(answer)

    async def apply(self) -> None:
        """Send the composite schedule of every connector to energy management and publish it."""
        now = math.floor(self.ctx.clock.time())
        schedules = []
        for connector_id in [0, *self.connectors.ids()]:
            periods = self.composite(connector_id, now, HORIZON_S, "A")
            schedules.append({"evse": connector_id, "charging_rate_unit": "A", "start_schedule": rfc3339(now),
                              "duration": HORIZON_S, "charging_schedule_period": [
                                  {"start_period": p["startPeriod"], "limit": p["limit"],
                                   "number_phases": p["numberPhases"]} for p in periods if p["limit"] is not None]})
            if connector_id == 0:
                continue
            entries = []
            for period in periods:
                timestamp = datetime.fromtimestamp(now + period["startPeriod"], UTC).isoformat().replace("+00:00", "Z")
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
