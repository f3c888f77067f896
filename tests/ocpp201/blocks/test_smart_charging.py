"""Functional block K (smart charging) of OCPP 2.0.1 against a fake context: SetChargingProfile and every
refusal (with its reasonCode), replacement and conflicts, TxProfiles bound to their transaction,
persistence across a new block on the same store (a bad record quarantined), the composite (GetComposite
Schedule and what reaches energy management), GetChargingProfiles with its ReportChargingProfiles paging,
ClearChargingProfile, and a RequestStartTransaction's profile.

Of block K the OCTT 2.0.1 station case list (tests/ocpp201/octt-cases.tsv) holds only TC_K_38_CS; the
other tests name the use cases and requirements (K01 SetChargingProfile, K05 remote start, K08 composite,
K09 GetChargingProfiles, K10 ClearChargingProfile)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.blocks import Signal
from everpy.ocpp.charging_profiles import STATION_MAX_CURRENT_A
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.smart_charging import KIND, MAX_PROFILES, PROFILES_PER_REPORT, SmartCharging
from everpy.ocpp.v201.variables.charging import SMART_CHARGING_ENABLED, SMART_CHARGING_ENTRIES
from everpy.ocpp.values import rfc3339

from .fakes import Fixture, block_context, handle

NOW = 1_767_225_600  # the FakeClock's start, 2026-01-01T00:00:00Z
ENABLED = "SmartChargingCtrlr.Enabled"


def at(offset: float) -> str:
    return rfc3339(NOW + offset)


@dataclass
class TxState:
    start_time: str
    remote_start_id: int | None = None


@dataclass
class FakeRunning:
    tx_id: str
    state: TxState


@dataclass
class FakeTransactions:
    running: dict[int, FakeRunning] = field(default_factory=dict)
    started: Signal[int] = field(default_factory=Signal)
    ended: Signal[int] = field(default_factory=Signal)

    def start(self, evse_id: int, tx_id: str, offset: float = 0, remote_start_id: int | None = None) -> None:
        self.running[evse_id] = FakeRunning(tx_id, TxState(at(offset), remote_start_id))
        self.started.emit(evse_id)

    def end(self, evse_id: int) -> None:
        del self.running[evse_id]
        self.ended.emit(evse_id)


def profile(profile_id: int, periods: list[tuple[int, float]] | None = None, *, purpose: str = "TxDefaultProfile",
            stack: int = 0, kind: str = "Absolute", unit: str = "A", start: str | None = at(-3600),
            duration: int | None = None, **extra: Any) -> dict[str, Any]:
    schedule: dict[str, Any] = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": s, "limit": limit} for s, limit in (periods or [(0, 10.0)])]}
    if start is not None and kind != "Relative":
        schedule["startSchedule"] = start
    if duration is not None:
        schedule["duration"] = duration
    return {"id": profile_id, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [schedule], **extra}


class K:
    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, fixture: Fixture | None = None,
                 transactions: FakeTransactions | None = None) -> None:
        self.tmp_path, self.variables = tmp_path, variables
        self.f = block_context(tmp_path, [1, 2], variables, None if fixture is None else fixture.store)
        self.transactions = transactions or FakeTransactions()
        self.block = SmartCharging(self.f.ctx, self.f.evses, self.transactions)

    def restart(self) -> K:
        self.block.cancel_timers()
        return K(self.tmp_path, self.variables, self.f, FakeTransactions(dict(self.transactions.running)))

    async def call(self, action: str, payload: dict[str, Any], schema: bool = True) -> dict[str, Any]:
        """The block's answer (checked against the schema); its after-work done."""
        return await handle(self.f, action, payload, self.block, check_request=schema)

    async def set(self, evse_id: int, cs_profile: dict[str, Any], schema: bool = True) -> str:
        answer = await self.call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": cs_profile}, schema)
        return str(answer["status"] if answer["status"] == "Accepted" else answer["statusInfo"]["reasonCode"])

    async def composite(self, evse_id: int = 1, duration: int = 600, unit: str | None = "A") -> dict[str, Any]:
        payload: dict[str, Any] = {"evseId": evse_id, "duration": duration}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return await self.call("GetCompositeSchedule", payload)

    async def periods(self, evse_id: int = 1, duration: int = 600, unit: str = "A") -> list[tuple[int, float]]:
        answer = await self.composite(evse_id, duration, unit)
        assert answer["status"] == "Accepted", answer
        return [(p["startPeriod"], p["limit"]) for p in answer["schedule"]["chargingSchedulePeriod"]]

    async def applied(self, evse_id: int = 1) -> list[tuple[str, float | None]]:
        """(timestamp, ac_max_current_A or None) of what the last apply() sent to the EVSE."""
        self.f.station.calls.clear()
        await self.block.apply()
        [(_, entries)] = [args for args in self.f.station.called("apply_limits") if args[0] == evse_id]
        return [(e["timestamp"], e["limits_to_root"].get("ac_max_current_A", {}).get("value")) for e in entries]

    def entries(self) -> int:
        return self.f.model.int(SMART_CHARGING_ENTRIES)

    def reports(self) -> list[dict[str, Any]]:
        reports = self.f.sender.of("ReportChargingProfiles")
        for report in reports:
            DIALECT.check("ReportChargingProfiles", report, response=False)
        return reports


@pytest.fixture
async def k(tmp_path: Path) -> Any:
    rig = K(tmp_path)
    yield rig
    rig.block.cancel_timers()
    rig.f.ctx.jobs.cancel_all()


# -- SetChargingProfile -----------------------------------------------------------------------------------------
async def test_a_tx_default_profile_is_installed_reported_and_applied(k: K):
    """K01 K08: SetChargingProfile TxDefaultProfile on EVSE 1: Accepted, Entries 1, the composite of EVSE 1 is
    its limit, EVSE 2 reports the station's maximum, and EVSE 1's limit reaches energy management."""
    assert await k.set(1, profile(1, [(0, 10.0)])) == "Accepted"
    assert k.entries() == 1
    assert await k.periods(1) == [(0, 10.0)]
    assert await k.periods(2) == [(0, STATION_MAX_CURRENT_A)]
    assert await k.applied(1) == [(at(0).replace(".000Z", "Z"), 10.0)]
    assert await k.applied(2) == []  # nothing limits EVSE 2: no OCPP limit at all
    published = [value for name, value in k.f.station.published if name == "charging_schedules"][-1]
    evse_1 = next(s for s in published["schedules"] if s["evse"] == 1)
    assert evse_1["charging_schedule_period"][0]["limit"] == 10.0


REFUSALS: list[tuple[str, int, dict[str, Any], str]] = [
    ("stack level above ProfileStackLevel", 1, profile(1, stack=9), "InvalidStackLevel"),
    ("more periods than PeriodsPerSchedule", 1, profile(1, [(i * 60, 6.0) for i in range(25)]), "InvalidSchedule"),
    ("unknown EVSE", 5, profile(1), "UnknownEvse"),
    ("station maximum on an EVSE", 1, profile(1, purpose="ChargingStationMaxProfile"), "InvalidProfile"),
    ("relative station maximum", 0, profile(1, purpose="ChargingStationMaxProfile", kind="Relative"),
     "InvalidProfile"),
    ("TxProfile on the station", 0, profile(1, purpose="TxProfile", transactionId="t"), "InvalidProfile"),
    ("TxProfile without a transaction", 1, profile(1, purpose="TxProfile", transactionId="t"), "TxNotFound"),
    ("external constraints from the CSMS", 0, profile(1, purpose="ChargingStationExternalConstraints"),
     "InvalidProfile"),
    ("negative limit", 1, profile(1, [(0, -1.0)]), "InvalidProfile"),
    ("limit beyond any connector", 1, profile(1, [(0, 20_000.0)]), "InvalidProfile"),
    ("first startPeriod not 0", 1, profile(1, [(10, 6.0)]), "InvalidProfile"),
    ("startPeriod not increasing", 1, profile(1, [(0, 6.0), (60, 8.0), (60, 9.0)]), "InvalidProfile"),
    ("negative startPeriod", 1, profile(1, [(0, 6.0), (-5, 8.0)]), "InvalidProfile"),
    ("validTo before validFrom", 1, profile(1, validFrom=at(60), validTo=at(0)), "InvalidProfile"),
    ("absolute without startSchedule", 1, profile(1, start=None), "InvalidProfile"),
    ("recurring without recurrencyKind", 1, profile(1, kind="Recurring"), "InvalidProfile"),
    ("transactionId on a TxDefaultProfile", 1, profile(1, transactionId="t"), "InvalidProfile"),
    ("negative stack level", 1, profile(1, stack=-1), "InvalidProfile"),
    ("negative duration", 1, profile(1, duration=-1), "InvalidProfile"),
]


def _with_period(fields: dict[str, Any]) -> dict[str, Any]:
    cs = profile(1)
    cs["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(fields)
    return cs


def _relative_with_start() -> dict[str, Any]:
    cs = profile(1, kind="Relative")
    cs["chargingSchedule"][0]["startSchedule"] = at(0)
    return cs


def _two_schedules_same_id() -> dict[str, Any]:
    cs = profile(1)
    cs["chargingSchedule"].append(copy.deepcopy(cs["chargingSchedule"][0]))
    return cs


REFUSALS += [
    ("numberPhases 0", 1, _with_period({"numberPhases": 0}), "InvalidProfile"),
    ("numberPhases 4", 1, _with_period({"numberPhases": 4}), "InvalidProfile"),
    ("phaseToUse with three phases", 1, _with_period({"numberPhases": 3, "phaseToUse": 2}), "InvalidProfile"),
    ("phaseToUse 4", 1, _with_period({"numberPhases": 1, "phaseToUse": 4}), "InvalidProfile"),
    ("relative with startSchedule", 1, _relative_with_start(), "InvalidProfile"),
    ("two schedules with one id", 1, _two_schedules_same_id(), "InvalidProfile"),
]


@pytest.mark.parametrize(("evse_id", "cs_profile", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_set_charging_profile_refusals(k: K, evse_id: int, cs_profile: dict[str, Any], reason: str):
    """K01.FR.03 K01.FR.09 K01.FR.16 K01.FR.19 K01.FR.22 K01.FR.31 K01.FR.35 K01.FR.38 K01.FR.40 K01.FR.41:
    every profile the station cannot or must not use is Rejected with a reasonCode, nothing is installed, and
    the block keeps working."""
    assert await k.set(evse_id, cs_profile) == reason
    assert k.f.store.records(KIND) == {} and k.entries() == 0
    assert await k.set(1, profile(2)) == "Accepted"


async def test_unit_and_disabled_refusals(tmp_path: Path):
    """K01.FR.26: a unit not in SmartChargingCtrlr.RateUnit is Rejected, in SetChargingProfile and in
    GetCompositeSchedule; with SmartChargingCtrlr.Enabled false SetChargingProfile and GetCompositeSchedule
    are Rejected."""
    k = K(tmp_path, {"SmartChargingCtrlr.RateUnit": "A"})
    assert await k.set(1, profile(1, [(0, 6900.0)], unit="W")) == "UnsupportedRateUnit"
    assert (await k.composite(1, unit="W"))["statusInfo"]["reasonCode"] == "UnsupportedRateUnit"
    k.f.model.set_internal(SMART_CHARGING_ENABLED, "false")
    assert await k.set(1, profile(1)) == "NotEnabled"
    assert (await k.composite(1))["status"] == "Rejected"
    k.block.cancel_timers()


async def test_the_same_id_replaces_and_a_conflict_is_refused(k: K):
    """K01.FR.05: a profile with an installed id replaces it (also on another EVSE); K01.FR.06: another id with
    the same purpose and stack level on the same EVSE and an overlapping validity is Rejected, one whose
    validity does not overlap, or on another EVSE, is installed."""
    assert await k.set(1, profile(1, [(0, 10.0)])) == "Accepted"
    assert await k.set(1, profile(1, [(0, 8.0)])) == "Accepted"
    assert await k.periods(1) == [(0, 8.0)] and k.entries() == 1
    assert await k.set(2, profile(1, [(0, 7.0)])) == "Accepted"  # moved to EVSE 2
    assert await k.periods(1) == [(0, STATION_MAX_CURRENT_A)] and await k.periods(2) == [(0, 7.0)]
    assert await k.set(2, profile(2, [(0, 6.0)])) == "DuplicateProfile"
    assert await k.set(2, profile(3, [(0, 6.0)], stack=1)) == "Accepted"
    assert await k.set(1, profile(4, [(0, 6.0)])) == "Accepted"
    assert await k.set(2, profile(1, [(0, 7.0)], validTo=at(3600))) == "Accepted"
    assert await k.set(2, profile(5, [(0, 5.0)], validFrom=at(3600))) == "Accepted"  # after profile 1's validity
    assert k.entries() == 4


async def test_a_tx_profile_needs_its_transaction_and_ends_with_it(k: K):
    """K01.FR.03 K01.FR.09 K01.FR.39: a TxProfile needs the transactionId of the transaction on its EVSE; it
    overrides the TxDefaultProfile during that transaction; another with the same stack level and transaction
    is Rejected; it is removed when the transaction ends."""
    assert await k.set(1, profile(1, [(0, 16.0)])) == "Accepted"
    assert await k.set(1, profile(2, [(0, 8.0)], purpose="TxProfile", transactionId="tx-1")) == "TxNotFound"
    k.transactions.start(1, "tx-1")
    await k.f.ctx.jobs.wait_idle()
    assert await k.set(1, profile(2, [(0, 8.0)], purpose="TxProfile")) == "TxNotFound"
    assert await k.set(1, profile(2, [(0, 8.0)], purpose="TxProfile", transactionId="tx-9")) == "TxNotFound"
    assert await k.set(2, profile(2, [(0, 8.0)], purpose="TxProfile", transactionId="tx-1")) == "TxNotFound"
    assert await k.set(1, profile(2, [(0, 8.0)], purpose="TxProfile", transactionId="tx-1")) == "Accepted"
    assert await k.set(1, profile(3, [(0, 7.0)], purpose="TxProfile", transactionId="tx-1")) == "DuplicateProfile"
    assert await k.periods(1) == [(0, 8.0)]
    assert await k.applied(1) == [(at(0).replace(".000Z", "Z"), 8.0)]
    k.transactions.end(1)
    await k.f.ctx.jobs.wait_idle()
    assert sorted(k.f.store.records(KIND)) == [1] and k.entries() == 1
    assert await k.periods(1) == [(0, 16.0)]


# -- persistence ------------------------------------------------------------------------------------------------
async def test_profiles_survive_a_restart_and_a_bad_record_is_quarantined(k: K):
    """K01: profiles are kept in the store: a new block on the same store computes with them; a record that
    no longer compiles is quarantined and removed, the others still count; a TxProfile whose transaction no
    longer runs is dropped."""
    assert await k.set(0, profile(1, [(0, 20.0)], purpose="ChargingStationMaxProfile")) == "Accepted"
    assert await k.set(1, profile(2, [(0, 12.0)])) == "Accepted"
    k.transactions.start(2, "tx-2")
    assert await k.set(2, profile(3, [(0, 9.0)], purpose="TxProfile", transactionId="tx-2")) == "Accepted"
    bad = profile(4, [(0, -3.0)])
    k.f.store.put_record(KIND, 4, {"evseId": 1, "profile": bad, "source": "CSO"})
    k.f.store.put_record(KIND, 5, {"evseId": 1, "profile": profile(6), "source": "CSO"})  # stored under another id
    k.f.store.put_record(KIND, 7, "not an object")  # type: ignore[arg-type]
    again = k.restart()
    await again.block.apply()
    assert sorted(again.f.store.records(KIND)) == [1, 2, 3] and again.entries() == 3
    assert sorted(q.source for q in again.f.store.quarantined()) == [
        "2.0.1 record 'charging_profile'", f"{KIND}/4", f"{KIND}/5"]
    assert await again.periods(1) == [(0, 12.0)] and await again.periods(2) == [(0, 9.0)]
    assert await again.periods(0) == [(0, 20.0)]
    third = K(again.tmp_path, None, again.f, FakeTransactions())  # tx-2 did not survive
    await third.block.apply()
    assert sorted(third.f.store.records(KIND)) == [1, 2]
    again.block.cancel_timers()
    third.block.cancel_timers()


# -- the composite ----------------------------------------------------------------------------------------------
async def test_composite_stacks_caps_converts_and_follows_time(k: K):
    """K08 K01.FR.13: the station maximum caps every EVSE; a higher stack level wins while its schedule runs;
    W converts at 230 V per phase; evseId 0 is the station; an unknown EVSE is Rejected; a Relative profile
    counts from the transaction's start."""
    assert await k.set(0, profile(1, [(0, 20.0)], purpose="ChargingStationMaxProfile")) == "Accepted"
    assert await k.set(0, profile(2, [(0, 16.0)])) == "Accepted"  # a TxDefaultProfile for every EVSE
    assert await k.set(1, profile(3, [(0, 25.0), (60, 6.0)], stack=1, start=at(0), duration=120)) == "Accepted"
    assert await k.periods(1, 600) == [(0, 20.0), (60, 6.0), (120, 16.0)]
    assert await k.periods(2, 600) == [(0, 16.0)]
    assert await k.periods(0, 600) == [(0, 16.0)]
    assert await k.periods(2, 60, "W") == [(0, 16.0 * 230 * 3)]
    answer = await k.composite(1, 30)
    assert answer["schedule"] == {"evseId": 1, "duration": 30, "scheduleStart": at(0), "chargingRateUnit": "A",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0, "numberPhases": 3}]}
    assert (await k.composite(3))["statusInfo"]["reasonCode"] == "UnknownEvse"
    assert (await k.composite(1, 10**9))["schedule"]["duration"] == 7 * 86400  # bounded
    assert await k.set(2, profile(4, [(0, 6900.0)], unit="W", stack=2)) == "Accepted"
    assert await k.periods(2, 60) == [(0, 10.0)]
    assert await k.set(1, profile(5, [(0, 12.0), (3600, 7.0)], kind="Relative", stack=3)) == "Accepted"
    assert (await k.periods(1, 7200))[0] == (0, 20.0)  # no transaction: the Relative profile waits
    k.transactions.start(1, "tx-1", offset=-600)
    assert await k.periods(1, 7200) == [(0, 12.0), (3000, 7.0)]


async def test_disabled_smart_charging_applies_no_limit(tmp_path: Path):
    """SmartChargingCtrlr.Enabled false: installed profiles stay but nothing limits the EVSEs."""
    k = K(tmp_path)
    assert await k.set(1, profile(1, [(0, 10.0)])) == "Accepted"
    assert await k.applied(1) != []
    k.f.model.set_internal(SMART_CHARGING_ENABLED, "false")
    await k.f.ctx.jobs.wait_idle()
    assert await k.applied(1) == []
    k.block.cancel_timers()


# -- GetChargingProfiles ------------------------------------------------------------------------------------------
async def test_get_charging_profiles_reports_by_evse_and_source_with_paging(k: K):
    """K09: NoProfiles when nothing matches; else Accepted, then ReportChargingProfiles grouped per EVSE (and
    source), at most PROFILES_PER_REPORT profiles each, tbc on all but the last; the criteria select."""
    answer = await k.call("GetChargingProfiles", {"requestId": 1, "chargingProfile": {}})
    assert answer == {"status": "NoProfiles"} and k.reports() == []
    assert await k.set(0, profile(100, purpose="ChargingStationMaxProfile")) == "Accepted"
    for n in range(PROFILES_PER_REPORT + 2):
        window: dict[str, Any] = {"validFrom": at(n // 5 * 100), "validTo": at(n // 5 * 100 + 100)}  # K01.FR.06
        assert await k.set(1, profile(n + 1, stack=n % 5, **window)) == "Accepted"
    assert await k.set(2, profile(50, stack=3)) == "Accepted"
    assert (await k.call("GetChargingProfiles", {"requestId": 7, "chargingProfile": {}}))["status"] == "Accepted"
    reports = k.reports()
    assert [(r["evseId"], len(r["chargingProfile"]), r["tbc"]) for r in reports] == [
        (0, 1, True), (1, PROFILES_PER_REPORT, True), (1, 2, True), (2, 1, False)]
    assert {r["requestId"] for r in reports} == {7} and {r["chargingLimitSource"] for r in reports} == {"CSO"}
    assert reports[3]["chargingProfile"] == [profile(50, stack=3)]  # as the CSMS sent it

    async def ids(request: dict[str, Any]) -> list[int]:
        k.f.sender.sent.clear()
        answer = await k.call("GetChargingProfiles", {"requestId": 8, **request})
        if answer["status"] == "NoProfiles":
            return []
        assert k.reports()[-1]["tbc"] is False
        return sorted(p["id"] for r in k.reports() for p in r["chargingProfile"])

    assert await ids({"evseId": 0, "chargingProfile": {}}) == [100]
    assert await ids({"evseId": 2, "chargingProfile": {}}) == [50]
    assert await ids({"chargingProfile": {"stackLevel": 3}}) == [4, 9, 50]
    assert await ids({"chargingProfile": {"chargingProfilePurpose": "ChargingStationMaxProfile"}}) == [100]
    assert await ids({"chargingProfile": {"chargingProfileId": [2, 50, 999]}}) == [2, 50]
    assert await ids({"evseId": 1, "chargingProfile": {"chargingProfileId": [50]}}) == []
    assert await ids({"chargingProfile": {"chargingLimitSource": ["EMS"]}}) == []
    assert await ids({"chargingProfile": {"chargingLimitSource": ["CSO"], "stackLevel": 0}}) == [1, 6, 100]


# -- ClearChargingProfile -----------------------------------------------------------------------------------------
async def test_clear_charging_profile_by_id_and_by_criteria(k: K):
    """K10: by id (Accepted, again Unknown); by evseId / purpose / stackLevel criteria; nothing left to clear:
    Unknown; the composite follows."""
    assert await k.set(1, profile(1, [(0, 10.0)])) == "Accepted"
    assert await k.set(1, profile(2, [(0, 8.0)], stack=3)) == "Accepted"
    assert await k.set(2, profile(3, [(0, 9.0)], stack=3)) == "Accepted"
    assert await k.set(0, profile(4, [(0, 30.0)], purpose="ChargingStationMaxProfile")) == "Accepted"
    clear = lambda payload: k.call("ClearChargingProfile", payload)  # noqa: E731
    assert await clear({"chargingProfileId": 2}) == {"status": "Accepted"}
    assert await clear({"chargingProfileId": 2}) == {"status": "Unknown"}
    assert await k.periods(1) == [(0, 10.0)] and k.entries() == 3
    assert await clear({"chargingProfileCriteria": {"evseId": 2, "stackLevel": 0}}) == {"status": "Unknown"}
    assert await clear({"chargingProfileCriteria": {"evseId": 2, "stackLevel": 3}}) == {"status": "Accepted"}
    assert await clear({"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}}) \
        == {"status": "Accepted"}
    assert sorted(k.f.store.records(KIND)) == [4]
    assert await k.periods(1) == [(0, 30.0)]
    assert await clear({}) == {"status": "Accepted"}
    assert await clear({}) == {"status": "Unknown"}
    assert k.entries() == 0 and await k.applied(1) == []


async def test_at_most_max_profiles_are_installed(k: K):
    """Refused (NoCapacity) beyond MAX_PROFILES; replacing one still works."""
    for n in range(MAX_PROFILES):
        assert await k.set(1 + n % 2, profile(n + 1, stack=n // 2 % 9, validFrom=at(n // 18 * 10),
                                              validTo=at(n // 18 * 10 + 10))) == "Accepted"
    assert await k.set(1, profile(999, stack=0, validFrom=at(10_000))) == "NoCapacity"
    assert await k.set(1, profile(1, stack=0, validFrom=at(0), validTo=at(10))) == "Accepted"


# -- RequestStartTransaction's profile ------------------------------------------------------------------------------
async def test_a_remote_start_profile_is_installed_for_its_transaction(k: K):
    """K05 (F01): a TxProfile without transactionId is taken and installed, with the transaction's id, when
    the remotely started transaction begins (not on a local start); with a transactionId, or another purpose,
    it is refused; with a transaction already running it is installed at once."""
    cs = profile(9, [(0, 7.0)], purpose="TxProfile", kind="Relative")
    assert k.block.accept_remote_start_profile(1, {**cs, "transactionId": "x"}) is not None
    assert k.block.accept_remote_start_profile(1, profile(9)) is not None
    assert k.block.accept_remote_start_profile(1, profile(9, [(0, -1.0)], purpose="TxProfile")) is not None
    assert k.block.accept_remote_start_profile(1, cs) is None
    assert k.f.store.records(KIND) == {}
    k.transactions.start(2, "local", remote_start_id=None)
    k.transactions.start(1, "tx-r", remote_start_id=42)
    await k.f.ctx.jobs.wait_idle()
    assert k.f.store.records(KIND)[9]["profile"]["transactionId"] == "tx-r"
    assert await k.periods(1) == [(0, 7.0)] and await k.periods(2) == [(0, STATION_MAX_CURRENT_A)]
    assert k.block.accept_remote_start_profile(2, profile(11, [(0, 6.0)], purpose="TxProfile",
                                                          kind="Relative")) is None
    await k.f.ctx.jobs.wait_idle()
    assert k.f.store.records(KIND)[11]["profile"]["transactionId"] == "local"
    assert await k.periods(2) == [(0, 6.0)]


async def test_a_remote_start_profile_without_evse_goes_to_the_evse_that_starts(k: K):
    """K05: RequestStartTransaction without evseId: its profile goes to the remotely started transaction."""
    assert k.block.accept_remote_start_profile(None, profile(9, [(0, 7.0)], purpose="TxProfile",
                                                             kind="Relative")) is None
    k.transactions.start(2, "tx-r", remote_start_id=1)
    await k.f.ctx.jobs.wait_idle()
    assert k.f.store.records(KIND)[9]["evseId"] == 2
    assert await k.periods(2) == [(0, 7.0)]


async def test_a_later_remote_start_replaces_a_profile_left_waiting(k: K):
    """A remote start whose car never came leaves its profile waiting; the next RequestStartTransaction (here
    without a profile) replaces it, so its transaction is not limited by the earlier one's profile."""
    assert k.block.accept_remote_start_profile(1, profile(9, [(0, 7.0)], purpose="TxProfile",
                                                          kind="Relative")) is None
    assert k.block.accept_remote_start_profile(1, None) is None
    k.transactions.start(1, "tx-r", remote_start_id=43)
    await k.f.ctx.jobs.wait_idle()
    assert k.f.store.records(KIND) == {}


async def test_tc_k_38_disabled_smart_charging_ignores_the_remote_start_profile(tmp_path: Path):
    """TC_K_38_CS: SmartChargingCtrlr.Enabled false: RequestStartTransaction's chargingProfile is ignored (the
    remote start goes ahead: accept_remote_start_profile has no objection) and nothing is installed when the
    transaction starts."""
    k = K(tmp_path, {ENABLED: "false"})
    assert k.block.accept_remote_start_profile(1, profile(9, [(0, 7.0)], purpose="TxProfile",
                                                          kind="Relative")) is None
    k.transactions.start(1, "tx-r", remote_start_id=42)
    await k.f.ctx.jobs.wait_idle()
    assert k.f.store.records(KIND) == {}
    assert await k.applied(1) == []
    k.block.cancel_timers()
