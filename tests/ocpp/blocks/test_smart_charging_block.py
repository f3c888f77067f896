"""SmartCharging alone, against the fakes: exact composite periods (reported and applied), range checks of
SetChargingProfile / GetCompositeSchedule, and quarantine of persisted profiles the station cannot use."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from everpy.core.clock import FakeClock
from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.smart_charging import (
    DAY,
    KIND,
    MAX_COMPOSITE_DURATION_S,
    MAX_LIMIT_A,
    MAX_LIMIT_W,
    STATION_MAX_CURRENT_A,
    STATION_MAX_PHASES,
    SmartCharging,
    compile_profile,
)
from everpy.ocpp.v16.transactions import Transactions
from everpy.ocpp.values import rfc3339

from .fakes import FakeStation, block_context

NOW = 1_767_225_600  # the FakeClock's start, 2026-01-01T00:00:00Z (a Thursday)
MAX_W = STATION_MAX_CURRENT_A * 230.0 * STATION_MAX_PHASES  # 22080 W


def at(offset: float) -> str:
    return rfc3339(NOW + offset)


def stamp(offset: int) -> str:
    """An apply_limits timestamp (whole seconds)."""
    return at(offset).replace(".000Z", "Z")


@dataclass
class Rig:
    block: SmartCharging
    ctx: BlockContext[Configuration]
    station: FakeStation
    clock: FakeClock
    connectors: Connectors
    transactions: Transactions

    async def set(self, connector: Any, cs_profile: Any) -> str:
        reply = await self.block.on_set_charging_profile({"connectorId": connector, "csChargingProfiles": cs_profile})
        return reply.payload["status"]

    async def composite(self, connector: Any = 1, duration: Any = 600, unit: str | None = "A") -> dict[str, Any]:
        payload = {"connectorId": connector, "duration": duration}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return (await self.block.on_get_composite_schedule(payload)).payload

    async def periods(self, connector: int = 1, duration: int = 600, unit: str = "A") -> list[tuple[int, float]]:
        answer = await self.composite(connector, duration, unit)
        assert answer["status"] == "Accepted"
        return [(p["startPeriod"], p["limit"]) for p in answer["chargingSchedule"]["chargingSchedulePeriod"]]

    async def applied(self, connector: int = 1) -> list[tuple[str, float | None]]:
        """(timestamp, ac_max_current_A or None) of what the last apply() sent to the EVSE."""
        self.station.calls.clear()
        await self.block.apply()
        [(evse, entries)] = [args for args in self.station.called("apply_limits") if args[0] == connector]
        assert evse == connector
        for entry in entries:
            assert entry["limits_to_leaves"] == {}
            assert set(entry["limits_to_root"]) in (set(), {"ac_max_current_A", "ac_max_phase_count"})
        return [(e["timestamp"], e["limits_to_root"].get("ac_max_current_A", {}).get("value")) for e in entries]

    def start_transaction(self, connector: int, transaction_id: int, offset: float = 0) -> None:
        self.transactions.transaction_started(self.connectors[connector],
                                              {"uuid": f"tx-{connector}", "timestamp": at(offset)}, None)
        self.transactions.repository.set_transaction_id(f"tx-{connector}", transaction_id)


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    ctx, station, _, clock, repository = block_context(tmp_path, evse_ids=[1, 2])
    connectors = Connectors([1, 2])
    transactions = Transactions(ctx, repository, connectors)
    block = SmartCharging(ctx, connectors, transactions)
    yield Rig(block, ctx, station, clock, connectors, transactions)
    block.cancel_timers()
    transactions.cancel_timers()
    ctx.jobs.cancel_all()


def profile(profile_id: int, periods: list[tuple[int, float]] | None = None, *, purpose: str = "TxDefaultProfile",
            stack: int = 0, kind: str = "Absolute", unit: str = "A", start: str | None = at(-3600),
            duration: int | None = None, **extra: Any) -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": s, "limit": limit} for s, limit in (periods or [(0, 10.0)])]}
    if start is not None:
        schedule["startSchedule"] = start
    if duration is not None:
        schedule["duration"] = duration
    return {"chargingProfileId": profile_id, "stackLevel": stack, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": schedule, **extra}


# -- the reported composite schedule ---------------------------------------------------------------------
async def test_without_profiles_the_station_reports_its_maximum(rig: Rig):
    schedule = {"duration": 600, "startSchedule": "2026-01-01T00:00:00.000Z", "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": STATION_MAX_CURRENT_A,
                                            "numberPhases": STATION_MAX_PHASES}]}
    assert await rig.composite(1) == {"status": "Accepted", "connectorId": 1,
                                      "scheduleStart": "2026-01-01T00:00:00.000Z", "chargingSchedule": schedule}
    assert await rig.composite(0, unit=None) == {**await rig.composite(1), "connectorId": 0}  # A by default
    assert await rig.periods(2, unit="W") == [(0, MAX_W)]
    # and nothing is imposed on the EVSEs
    await rig.block.apply()
    assert rig.station.called("apply_limits") == [(1, []), (2, [])]


async def test_changes_within_one_second_are_one_period_holding_the_last_state(rig: Rig):
    await rig.clock.advance(0.5)  # now 00:00:00.5; the schedule starts at the whole second 00:00:00
    assert await rig.set(1, profile(1, [(0, 16.0)])) == "Accepted"
    # starts 0.3 s into the first second, ends at 20.3 s; stack 2 starts at 20.8 s and ends at 60.8 s
    assert await rig.set(1, profile(2, [(0, 6.0)], stack=1, start=at(0.3), duration=20)) == "Accepted"
    assert await rig.set(1, profile(3, [(0, 8.0)], stack=2, start=at(20.8), duration=40)) == "Accepted"
    answer = await rig.composite(1, 120)
    assert answer["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6.0, "numberPhases": 3},  # not 16 A for a zero-length moment first
        {"startPeriod": 20, "limit": 8.0, "numberPhases": 3},  # 20.3 s and 20.8 s: one period, the later state
        {"startPeriod": 60, "limit": 16.0, "numberPhases": 3}]
    assert await rig.applied(1) == [(stamp(0), 6.0), (stamp(20), 8.0), (stamp(60), 16.0)]


async def test_an_ended_schedule_falls_back_to_the_lower_stack_then_to_no_limit(rig: Rig):
    assert await rig.set(1, profile(1, [(0, 16.0)], validTo=at(600))) == "Accepted"
    assert await rig.set(1, profile(2, [(0, 6.0)], stack=1, start=at(0), duration=300)) == "Accepted"
    assert await rig.periods(1, 900) == [(0, 6.0), (300, 16.0), (600, STATION_MAX_CURRENT_A)]
    assert await rig.periods(1, 450) == [(0, 6.0), (300, 16.0)]  # only what lies within the duration
    # applied: after validTo the EVSE gets "no OCPP limit", not 16 A forever
    assert await rig.applied(1) == [(stamp(0), 6.0), (stamp(300), 16.0), (stamp(600), None)]
    assert rig.station.called("apply_limits")[1] == (2, [])  # the profiles are connector 1's only


async def test_the_only_profile_s_last_limit_does_not_run_on_past_its_duration(rig: Rig):
    assert await rig.set(1, profile(1, [(0, 10.0), (120, 12.0)], start=at(0), duration=300)) == "Accepted"
    assert await rig.periods(1, 600) == [(0, 10.0), (120, 12.0), (300, STATION_MAX_CURRENT_A)]
    assert await rig.applied(1) == [(stamp(0), 10.0), (stamp(120), 12.0), (stamp(300), None)]
    # a profile that starts later: no limit until then
    assert await rig.set(2, profile(2, [(0, 7.0)], start=at(60))) == "Accepted"
    assert await rig.periods(2, 600) == [(0, STATION_MAX_CURRENT_A), (60, 7.0)]
    assert await rig.applied(2) == [(stamp(0), None), (stamp(60), 7.0)]


async def test_reported_limits_are_capped_rounded_and_converted(rig: Rig):
    assert await rig.set(1, profile(1, [(0, 40.0), (60, 4.1)], start=at(0))) == "Accepted"
    # 40 A is above the station's maximum (reported capped, applied as set: the EVSE caps by its hardware)
    assert await rig.periods(1, 120) == [(0, STATION_MAX_CURRENT_A), (60, 4.1)]
    assert await rig.applied(1) == [(stamp(0), 40.0), (stamp(60), 4.1)]
    # 4.1 A x 690 V is 2828.9999999999995 in floats: reported 2829.0 (to the schema's 0.1), not 2828.9
    assert await rig.periods(1, 120, unit="W") == [(0, MAX_W), (60, 2829.0)]
    assert await rig.set(2, profile(2, [(0, 6900.0)], unit="W")) == "Accepted"
    assert await rig.periods(2, 60) == [(0, 10.0)]  # 6900 W / (230 V x 3 phases)
    assert await rig.periods(2, 60, unit="W") == [(0, 6900.0)]
    assert await rig.set(0, profile(3, [(0, 20.5)], purpose="ChargePointMaxProfile")) == "Accepted"
    assert await rig.periods(1, 120) == [(0, 20.5), (60, 4.1)]
    assert await rig.periods(0, 60) == [(0, 20.5)]
    # the published schedules are the reported ones
    await rig.block.apply()
    name, published = rig.station.published[-1]
    assert name == "charging_schedules"
    assert [(s["evse"], [(p["start_period"], p["limit"], p["number_phases"]) for p in s["charging_schedule_period"]])
            for s in published["schedules"]] == [(0, [(0, 20.5, 3)]), (1, [(0, 20.5, 3), (60, 4.1, 3)]),
                                                  (2, [(0, 10.0, 3)])]


async def test_recurring_profiles_anchored_long_ago_are_computed_per_recurrence(rig: Rig):
    daily = profile(1, [(0, 10.0), (43200, 20.0)], kind="Recurring", recurrencyKind="Daily",
                    start="0001-01-01T00:00:00Z")
    assert await rig.set(1, daily) == "Accepted"
    # a recurrence start is computed, not looped to over 739 000 days; only the days in the span are visited
    assert compile_profile(1, daily).boundaries(NOW, NOW + DAY, None) == [NOW, NOW + 43200]
    # the largest duration the schema allows is answered for one week, and says so
    answer = await rig.composite(1, 2**31 - 1)
    assert answer["chargingSchedule"]["duration"] == MAX_COMPOSITE_DURATION_S
    assert [(p["startPeriod"], p["limit"]) for p in answer["chargingSchedule"]["chargingSchedulePeriod"]] \
        == [(k * 43200, 20.0 if k % 2 else 10.0) for k in range(14)]
    assert await rig.applied(1) == [(stamp(0), 10.0), (stamp(43200), 20.0)]  # the 24 h horizon
    # weekly from 0001-01-01 (a Monday): 20 A from Friday 00:00 (tomorrow) to Monday 00:00
    weekly = profile(2, [(0, 10.0), (4 * DAY, 20.0)], kind="Recurring", recurrencyKind="Weekly",
                     start="0001-01-01T00:00:00Z")
    assert await rig.set(2, weekly) == "Accepted"
    assert await rig.periods(2, 7 * DAY) == [(0, 10.0), (DAY, 20.0), (4 * DAY, 10.0)]


async def test_a_relative_tx_profile_counts_from_the_transaction_start(rig: Rig):
    relative = profile(9, [(0, 12.0), (3600, 7.0)], purpose="TxProfile", kind="Relative", start=None)
    assert await rig.set(1, relative) == "Rejected"  # a TxProfile needs a transaction
    rig.start_transaction(1, transaction_id=7)
    await rig.clock.advance(600)
    assert await rig.set(1, relative) == "Accepted"
    assert await rig.periods(1, 7200) == [(0, 12.0), (3000, 7.0)]
    assert await rig.periods(2, 60) == [(0, STATION_MAX_CURRENT_A)]
    await rig.transactions.transaction_finished(rig.connectors[1], {"timestamp": at(700)})
    assert rig.block.profiles() == {}  # removed with its transaction
    assert await rig.periods(1, 60) == [(0, STATION_MAX_CURRENT_A)]


async def test_a_transaction_id_must_be_the_connector_s_transaction(rig: Rig):
    rig.start_transaction(1, transaction_id=7)
    assert await rig.set(1, profile(1, purpose="TxProfile", transactionId=8)) == "Rejected"
    assert await rig.set(2, profile(1, purpose="TxProfile", transactionId=7)) == "Rejected"
    assert await rig.set(2, profile(1, transactionId=7)) == "Rejected"  # TxDefault, connector 2 runs none
    assert await rig.set(0, profile(1, transactionId=7)) == "Rejected"
    assert rig.block.profiles() == {}
    assert await rig.set(1, profile(1, [(0, 8.0)], purpose="TxProfile", transactionId=7)) == "Accepted"
    assert await rig.periods(1, 60) == [(0, 8.0)]


async def test_remote_start_profile_is_checked_and_installed_when_the_transaction_starts(rig: Rig):
    tx = profile(3, [(0, 7.0)], purpose="TxProfile", kind="Relative", start=None)
    assert not rig.block.accept_remote_start_profile(1, {**tx, "transactionId": 7})  # none can run yet
    assert not rig.block.accept_remote_start_profile(1, profile(3, [(0, -7.0)], purpose="TxProfile"))
    assert not rig.block.accept_remote_start_profile(1, profile(3))  # not a TxProfile
    assert rig.block.accept_remote_start_profile(1, tx)
    rig.start_transaction(1, transaction_id=7)
    assert list(rig.block.profiles()) == [3]
    assert await rig.periods(1, 60) == [(0, 7.0)]


# -- range, not just schema ------------------------------------------------------------------------------
def _schedule(p: dict[str, Any]) -> dict[str, Any]:
    return p["chargingSchedule"]


def _first(p: dict[str, Any]) -> dict[str, Any]:
    return p["chargingSchedule"]["chargingSchedulePeriod"][0]


def _set_periods(*periods: tuple[int, float]) -> Callable[[dict[str, Any]], None]:
    def mutate(p: dict[str, Any]) -> None:
        _schedule(p)["chargingSchedulePeriod"] = [{"startPeriod": s, "limit": limit} for s, limit in periods]
    return mutate


REJECTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "negative limit": lambda p: _first(p).update(limit=-1.0),
    "limit above MAX_LIMIT_A": lambda p: _first(p).update(limit=MAX_LIMIT_A + 0.1),
    "limit above MAX_LIMIT_W": lambda p: (_schedule(p).update(chargingRateUnit="W"),
                                          _first(p).update(limit=MAX_LIMIT_W + 0.1)),
    "limit not a number": lambda p: _first(p).update(limit="10"),
    "limit NaN": lambda p: _first(p).update(limit=float("nan")),
    "limit a boolean": lambda p: _first(p).update(limit=True),
    "limit missing": lambda p: _first(p).pop("limit"),
    "numberPhases 0": lambda p: _first(p).update(numberPhases=0),
    "numberPhases 4": lambda p: _first(p).update(numberPhases=4),
    "numberPhases text": lambda p: _first(p).update(numberPhases="3"),
    "negative startPeriod": _set_periods((-1, 10.0), (60, 8.0)),
    "first startPeriod not 0": _set_periods((5, 10.0)),
    "startPeriod repeated": _set_periods((0, 10.0), (60, 8.0), (60, 6.0)),
    "startPeriod decreasing": _set_periods((0, 10.0), (60, 8.0), (30, 6.0)),
    "no periods": _set_periods(),
    "periods not a list": lambda p: _schedule(p).update(chargingSchedulePeriod={"startPeriod": 0, "limit": 1}),
    "more periods than ChargingScheduleMaxPeriods": _set_periods(*[(60 * i, 10.0) for i in range(25)]),
    "negative duration": lambda p: _schedule(p).update(duration=-1),
    "negative stackLevel": lambda p: p.update(stackLevel=-1),
    "stackLevel above ChargeProfileMaxStackLevel": lambda p: p.update(stackLevel=11),
    "stackLevel text": lambda p: p.update(stackLevel="0"),
    "validTo equals validFrom": lambda p: p.update(validFrom=at(0), validTo=at(0)),
    "validTo before validFrom": lambda p: p.update(validFrom=at(60), validTo=at(0)),
    "validFrom not a date": lambda p: p.update(validFrom="2026-02-30T00:00:00Z"),
    "startSchedule not a date": lambda p: _schedule(p).update(startSchedule="yesterday"),
    "negative minChargingRate": lambda p: _schedule(p).update(minChargingRate=-0.1),
    "transactionId without a transaction": lambda p: p.update(transactionId=1),
    "unknown unit": lambda p: _schedule(p).update(chargingRateUnit=["A"]),
    "unknown purpose": lambda p: p.update(chargingProfilePurpose="Max"),
    "Recurring without recurrencyKind": lambda p: p.update(chargingProfileKind="Recurring"),
    "Recurring monthly": lambda p: p.update(chargingProfileKind="Recurring", recurrencyKind="Monthly"),
    "Absolute without a start": lambda p: _schedule(p).pop("startSchedule"),
    "schedule not an object": lambda p: p.update(chargingSchedule="16 A"),
    "TxProfile without a transaction": lambda p: p.update(chargingProfilePurpose="TxProfile"),
}


@pytest.mark.parametrize("mutate", REJECTED.values(), ids=REJECTED.keys())
async def test_set_charging_profile_rejects_what_is_out_of_range(rig: Rig, mutate: Callable[[dict[str, Any]], Any]):
    cs_profile = profile(1, [(0, 10.0), (60, 8.0)])
    mutate(cs_profile)
    assert await rig.set(1, cs_profile) == "Rejected"
    assert rig.block.profiles() == {}
    assert rig.ctx.store.quarantined() == []


@pytest.mark.parametrize(("connector", "cs_profile"), [
    (1, profile(1, purpose="ChargePointMaxProfile")),  # station-wide only
    (3, profile(1)),  # no such connector
    ("1", profile(1)),
    (-1, profile(1)),
    (1, None),
    (1, [profile(1)]),
], ids=["ChargePointMax on a connector", "unknown connector", "connectorId text", "negative connectorId",
        "no profile", "profile a list"])
async def test_set_charging_profile_rejects_a_wrong_connector_or_shape(rig: Rig, connector: Any, cs_profile: Any):
    assert await rig.set(connector, cs_profile) == "Rejected"
    assert rig.block.profiles() == {}


async def test_the_bounds_themselves_are_accepted(rig: Rig):
    assert await rig.set(1, profile(1, [(0, MAX_LIMIT_A)], stack=10)) == "Accepted"
    assert await rig.set(1, profile(2, [(0, MAX_LIMIT_W)], unit="W", stack=9)) == "Accepted"
    phases = profile(3, [(60 * i, 0.0) for i in range(24)], stack=8, duration=0)
    for period, number in zip(phases["chargingSchedule"]["chargingSchedulePeriod"], [1, 2, 3] * 8, strict=True):
        period["numberPhases"] = number
    _schedule(phases)["minChargingRate"] = 0.0
    assert await rig.set(1, phases) == "Accepted"
    assert sorted(rig.block.profiles()) == [1, 2, 3]


@pytest.mark.parametrize(("connector", "duration", "unit"), [
    (3, 600, "A"), (-1, 600, "A"), ("1", 600, "A"), (1, -1, "A"), (1, "600", "A"), (1, 600, "kW")])
async def test_get_composite_schedule_rejects_what_it_cannot_compute(rig: Rig, connector: Any, duration: Any,
                                                                      unit: str):
    assert await rig.composite(connector, duration, unit) == {"status": "Rejected"}


async def test_a_zero_duration_composite_is_the_limit_now(rig: Rig):
    assert await rig.set(1, profile(1, [(0, 9.0)])) == "Accepted"
    answer = await rig.composite(1, 0)
    assert answer["chargingSchedule"]["duration"] == 0
    assert answer["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 9.0,
                                                                     "numberPhases": 3}]


# -- persisted profiles ----------------------------------------------------------------------------------
GOOD = {"connectorId": 1, "profile": profile(5, [(0, 6.0)], stack=1)}


def _garbage(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    record = copy.deepcopy(GOOD)
    change(record)
    return record


CORRUPT = {
    "profile missing": {"connectorId": 1},
    "connectorId text": _garbage(lambda r: r.update(connectorId="1")),
    "stackLevel text": _garbage(lambda r: r["profile"].update(stackLevel="1")),
    "startSchedule not a date": _garbage(lambda r: _schedule(r["profile"]).update(startSchedule="2026-13-45")),
    "validTo not a date": _garbage(lambda r: r["profile"].update(validTo=12)),
    "period without a limit": _garbage(lambda r: _first(r["profile"]).pop("limit")),
    "schedule missing": _garbage(lambda r: r["profile"].pop("chargingSchedule")),
    "negative limit": _garbage(lambda r: _first(r["profile"]).update(limit=-6.0)),
    "stored under another id": _garbage(lambda r: r["profile"].update(chargingProfileId=6)),
}


@pytest.mark.parametrize("garbage", CORRUPT.values(), ids=CORRUPT.keys())
async def test_a_corrupt_persisted_profile_is_quarantined_and_the_rest_applies(rig: Rig, garbage: dict[str, Any]):
    assert await rig.set(1, profile(1, [(0, 10.0)])) == "Accepted"
    rig.ctx.store.put_record(KIND, 5, garbage)  # stack 1, 6 A if it were usable
    await rig.block.apply()  # as at start
    assert rig.station.called("apply_limits") == [(1, [{
        "timestamp": stamp(0), "limits_to_leaves": {},
        "limits_to_root": {"ac_max_current_A": {"value": 10.0, "source": "OCPP"},
                           "ac_max_phase_count": {"value": 3, "source": "OCPP"}}}]), (2, [])]
    assert list(rig.ctx.store.records(KIND)) == [1]
    [row] = rig.ctx.store.quarantined()
    assert (row.kind, row.source, row.data) == ("record", "charging_profile/5", repr(garbage))
    assert row.reason
    assert rig.ctx.store.new_quarantine_events() == [("record", row.reason)]
    assert await rig.periods(1, 60) == [(0, 10.0)]
    assert rig.ctx.store.quarantined() == [row]  # once, not on every read


async def test_a_valid_persisted_profile_is_kept(rig: Rig):
    rig.ctx.store.put_record(KIND, 5, GOOD)
    assert rig.block.profiles() == {5: GOOD}
    assert await rig.periods(1, 60) == [(0, 6.0)]
    assert rig.ctx.store.quarantined() == []
