"""Smart Charging (TC_056-TC_060, TC_066, TC_067, TC_072): profiles, stack levels, absolute/recurring/
relative schedules, the composite schedule, and that the composite is what the EVSE enforces."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from everpy.csms import Csms
from everpy.ocpp.v16.smart_charging import STATION_MAX_CURRENT_A
from everpy.ocpp.values import parse_time, rfc3339

from .station import WAIT_S, Station, sil_station


def _at(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def profile(profile_id: int, purpose: str, periods: list[tuple[int, float]], *, stack: int = 0,
            kind: str = "Absolute", unit: str = "A", start: str | None = "now", duration: int | None = None,
            **extra: Any) -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit,
                                "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods]}
    if start == "now":
        schedule["startSchedule"] = _at(-1)
    elif start is not None:
        schedule["startSchedule"] = start
    if duration is not None:
        schedule["duration"] = duration
    return {"chargingProfileId": profile_id, "stackLevel": stack, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": schedule, **extra}


async def _set(station: Station, connector: int, cs_profile: dict[str, Any]) -> str:
    return (await station.call("SetChargingProfile", connectorId=connector, csChargingProfiles=cs_profile))["status"]


async def _composite_at(station: Station, connector: int, duration: int,
                        unit: str = "A") -> tuple[float, list[tuple[int, float]]]:
    """(scheduleStart as epoch seconds, [(startPeriod, limit)])"""
    answer = await station.call("GetCompositeSchedule", connectorId=connector, duration=duration, chargingRateUnit=unit)
    assert answer["status"] == "Accepted"
    assert answer["chargingSchedule"]["duration"] == duration
    periods = answer["chargingSchedule"]["chargingSchedulePeriod"]
    return parse_time(answer["scheduleStart"]), [(p["startPeriod"], p["limit"]) for p in periods]


async def _composite(station: Station, connector: int, duration: int, unit: str = "A") -> list[tuple[int, float]]:
    return (await _composite_at(station, connector, duration, unit))[1]


async def test_tc_056_tx_default_profile_is_enforced_by_the_evse(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        limits = station.system.watch("evse", "evse", "limits")
        assert await _set(station, 1, profile(1, "TxDefaultProfile", [(0, 10.0)])) == "Accepted"
        assert await _composite(station, 1, 600) == [(0, 10.0)]
        schedules = station.system.watch("ocpp", "main", "charging_schedules")
        await station.charging()
        await limits.wait_for(lambda v: 0 < v["max_current"] <= 10.0, WAIT_S)
        assert station.ocpp.cp.smart_charging.composite  # the same function answers both
        published = await schedules.wait_for(lambda v: True, WAIT_S)
        connector_1 = next(s for s in published["schedules"] if s["evse"] == 1)
        assert connector_1["charging_schedule_period"][0]["limit"] == 10.0


async def test_tc_057_tx_profile_only_during_a_transaction_and_removed_after(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert await _set(station, 1, profile(2, "TxProfile", [(0, 8.0)])) == "Rejected"
        await station.charging()
        assert await _set(station, 1, profile(2, "TxProfile", [(0, 8.0)], transactionId=99)) == "Rejected"
        assert await _set(station, 1, profile(2, "TxProfile", [(0, 8.0)], transactionId=1)) == "Accepted"
        assert await _composite(station, 1, 60) == [(0, 8.0)]
        await station.unplug()
        await csms.wait_for("StopTransaction")
        await station.transactions.wait_for(lambda e: e["transaction_event"] == "Ended", WAIT_S)
        # no profile left: the station reports its own maximum, not "no schedule" nor the TxProfile's 8 A
        assert await _composite(station, 1, 60) == [(0, STATION_MAX_CURRENT_A)]


async def test_tc_066_stack_levels_and_duration(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert await _set(station, 1, profile(1, "TxDefaultProfile", [(0, 16.0)], stack=0)) == "Accepted"
        start = math.floor(time.time()) - 1  # whole seconds: the expected offsets below are exact
        assert await _set(station, 1, profile(2, "TxDefaultProfile", [(0, 6.0), (30, 9.0)], stack=1,
                                              duration=61, start=rfc3339(start))) == "Accepted"
        # the higher stack level wins while its schedule runs (started 1 s ago, 61 s long), then stack 0 again
        begin, periods = await _composite_at(station, 1, 120)
        assert periods == [(0, 6.0), (int(start + 30 - begin), 9.0), (int(start + 61 - begin), 16.0)]
        assert await _set(station, 1, profile(3, "TxDefaultProfile", [(0, 1.0)], stack=11)) == "Rejected"


async def test_tc_058_charge_point_max_profile_caps_everything(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert await _set(station, 1, profile(1, "ChargePointMaxProfile", [(0, 6.0)])) == "Rejected"
        assert await _set(station, 0, profile(1, "ChargePointMaxProfile", [(0, 6.0)])) == "Accepted"
        assert await _set(station, 0, profile(2, "TxDefaultProfile", [(0, 12.0)])) == "Accepted"  # for all
        assert await _composite(station, 1, 60) == [(0, 6.0)]
        assert await _composite(station, 0, 60) == [(0, 6.0)]


async def test_recurring_daily_and_power_units(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        # a daily schedule whose day began 86390 s ago: 20 A, 5 A for its last 5 s, then the next day
        cs = profile(1, "TxDefaultProfile", [(0, 20.0), (86395, 5.0)], kind="Recurring",
                     start=_at(-86390), recurrencyKind="Daily")
        assert await _set(station, 1, cs) == "Accepted"
        periods = await _composite(station, 1, 30)
        assert [limit for _, limit in periods] == [20.0, 5.0, 20.0]
        assert [start for start, _ in periods][1] in (4, 5, 6)
        assert await _set(station, 1, profile(5, "TxDefaultProfile", [(0, 6900.0)], unit="W", stack=2)) \
            == "Accepted"
        assert await _composite(station, 1, 10) == [(0, 10.0)]  # 6900 W / (230 V x 3 phases)
        assert await _composite(station, 1, 10, unit="W") == [(0, 6900.0)]


async def test_relative_profile_counts_from_the_transaction_start(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        cs = profile(1, "TxDefaultProfile", [(0, 12.0), (3600, 7.0)], kind="Relative", start=None)
        assert await _set(station, 1, cs) == "Accepted"
        await station.charging()
        periods = await _composite(station, 1, 7200)
        assert periods[0][1] == 12.0 and periods[1][1] == 7.0 and 3590 <= periods[1][0] <= 3600


async def test_tc_059_060_clear_charging_profile(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert await _set(station, 1, profile(1, "TxDefaultProfile", [(0, 10.0)])) == "Accepted"
        assert await _set(station, 1, profile(2, "TxDefaultProfile", [(0, 8.0)], stack=3)) == "Accepted"
        assert (await station.call("ClearChargingProfile", id=2))["status"] == "Accepted"
        assert (await station.call("ClearChargingProfile", id=2))["status"] == "Unknown"
        assert await _composite(station, 1, 60) == [(0, 10.0)]
        assert (await station.call("ClearChargingProfile", chargingProfilePurpose="TxDefaultProfile"))["status"] \
            == "Accepted"
        assert await _composite(station, 1, 60) == [(0, STATION_MAX_CURRENT_A)]


async def test_remote_start_with_a_tx_profile(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        cs = profile(9, "TxProfile", [(0, 7.0)], kind="Relative", start=None)
        await station.plug_in()
        answer = await station.call("RemoteStartTransaction", idTag="R", connectorId=1, chargingProfile=cs)
        assert answer["status"] == "Accepted"
        await csms.wait_for("StartTransaction")
        await station.status("Charging")
        assert (await _composite(station, 1, 60))[0][1] == 7.0
