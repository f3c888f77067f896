"""Smart charging (K) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (real bus,
EvseManager, EnergyManager, simulated car) on a mosquitto of the test's own, which the test watches too, and
the development CSMS (everpy/csms/v201.py) over a real websocket: a TxDefaultProfile shows in the composite
schedule and its limit reaches the EVSE through energy management (the EVSE's ``limits``), GetChargingProfiles
reports it, ClearChargingProfile lifts it; a remote start's TxProfile; and TC_K_38 (smart charging disabled:
the remote start's profile is ignored, the transaction starts anyway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from everpy.core.broker import PrivateBroker, find_mosquitto
from everpy.core.bus import Bus
from everpy.csms import v201
from everpy.ocpp.charging_profiles import STATION_MAX_CURRENT_A
from everpy.testing import Probe, Recorder
from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")]

STATION = "CP1"
WAIT_S = 20.0  # an `everpy run` process starting on cores shared with other suites
VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
TOKEN = {"idToken": "REMOTE-1", "type": "Central"}


def _at(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def tx_default(profile_id: int, limit: float) -> dict[str, Any]:
    return {"id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": [{
                "id": 1, "startSchedule": _at(-1), "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]}


def tx_profile(profile_id: int, limit: float) -> dict[str, Any]:
    """A TxProfile for a remote start (K05: no transactionId), counted from the transaction's start."""
    return {"id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "chargingSchedule": [{
                "id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]}


@dataclass
class Rig:
    csms: v201.Csms
    station: StationProcess
    limits: Recorder  # the EVSE's limits (what energy management grants it)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.csms.call(STATION, action, payload)

    async def composite(self, evse_id: int = 1, duration: int = 600) -> list[tuple[int, float]]:
        answer = await self.call("GetCompositeSchedule", {"evseId": evse_id, "duration": duration,
                                                          "chargingRateUnit": "A"})
        assert answer["status"] == "Accepted", answer
        assert answer["schedule"]["evseId"] == evse_id and answer["schedule"]["duration"] == duration
        return [(p["startPeriod"], p["limit"]) for p in answer["schedule"]["chargingSchedulePeriod"]]

    async def max_current(self, predicate: Any) -> float:
        limits = await self.limits.wait_for(lambda v: predicate(v["max_current"]), WAIT_S)
        return float(limits["max_current"])


@asynccontextmanager
async def rig(tmp_path: Path, variables: dict[str, str] | None = None, swipe: bool = True) -> AsyncIterator[Rig]:
    broker = PrivateBroker()
    address = await broker.start()
    bus = Bus(address, "smart-charging-test-witness")
    await bus.connect()
    probe = Probe(bus)
    limits = probe.watch("evse", "evse", "limits")
    await probe.flush()  # subscribed before the station says anything
    try:
        async with v201.Csms() as csms:
            config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, swipe=swipe, base=SIL_OCPP201,
                                     keys={**VARIABLES, **(variables or {})}, test_keys={})
            password_file = tmp_path / "mqtt-password"  # the broker takes logged-in clients only
            password_file.write_text(address.password or "")
            password_file.chmod(0o600)
            config["settings"] = {**config.get("settings", {}), "mqtt_broker_host": address.host,
                                  "mqtt_broker_port": address.port, "mqtt_broker_user": address.username,
                                  "mqtt_broker_password_file": str(password_file)}
            station = StationProcess(config, tmp_path)
            station.start()
            try:
                await csms.wait_for("StatusNotification", timeout=WAIT_S)
                yield Rig(csms, station, limits)
            except BaseException:
                print(station.log()[-8000:])  # the station's side of a failure
                raise
            finally:
                station.stop()
    finally:
        await bus.close()
        await broker.stop()


async def test_a_tx_default_profile_is_composed_enforced_reported_and_cleared(tmp_path: Path):
    """K01 K08 K09 K10 (no TC_K case of these is in the station case list): SetChargingProfile
    TxDefaultProfile 10 A on EVSE 1: Accepted; GetCompositeSchedule shows 10 A; the car charges and the EVSE's
    limit from energy management is at most 10 A; GetChargingProfiles: Accepted, then ReportChargingProfiles
    with the profile (source CSO, tbc false); ClearChargingProfile: Accepted, the composite is the station's
    maximum again, the EVSE's limit rises above 10 A, GetChargingProfiles: NoProfiles."""
    async with rig(tmp_path) as k:
        assert (await k.call("SetChargingProfile", {"evseId": 1, "chargingProfile": tx_default(1, 10.0)})) \
            == {"status": "Accepted"}
        assert await k.composite(1) == [(0, 10.0)]
        assert await k.composite(0) == [(0, STATION_MAX_CURRENT_A)]  # station-wide: nothing limits it
        await k.csms.wait_transaction(station=STATION, timeout=WAIT_S)
        assert 0 < await k.max_current(lambda a: 0 < a <= 10.0) <= 10.0
        listed = await k.call("GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
        report = await k.csms.wait_report(5, "ReportChargingProfiles", STATION, WAIT_S)
        cleared = await k.call("ClearChargingProfile", {"chargingProfileId": 1})
        after = await k.composite(1)
        raised = await k.max_current(lambda a: a > 10.0)
        none_left = await k.call("GetChargingProfiles", {"requestId": 6, "chargingProfile": {}})
    assert listed == {"status": "Accepted"}
    assert [(p["evseId"], p["chargingLimitSource"], p["tbc"]) for p in report.parts] == [(1, "CSO", False)]
    assert [p["id"] for p in report.parts[0]["chargingProfile"]] == [1]
    assert cleared == {"status": "Accepted"}
    assert after == [(0, STATION_MAX_CURRENT_A)]
    assert raised > 10.0
    assert none_left == {"status": "NoProfiles"}


async def test_a_remote_start_with_a_tx_profile_limits_its_transaction(tmp_path: Path):
    """K05 (F01): RequestStartTransaction with a TxProfile (no transactionId) of 7 A: Accepted; the
    transaction starts with the profile bound to it (GetChargingProfiles reports it with the transactionId),
    the composite is 7 A and the EVSE's limit is at most 7 A."""
    async with rig(tmp_path, swipe=False) as k:
        start = await k.call("RequestStartTransaction", {"evseId": 1, "remoteStartId": 3, "idToken": TOKEN,
                                                         "chargingProfile": tx_profile(9, 7.0)})
        tx = await k.csms.wait_transaction(station=STATION, timeout=WAIT_S)
        await k.max_current(lambda a: 0 < a <= 7.0)
        composite = await k.composite(1)
        listed = await k.call("GetChargingProfiles", {"requestId": 1, "chargingProfile": {
            "chargingProfilePurpose": "TxProfile"}})
        report = await k.csms.wait_report(1, "ReportChargingProfiles", STATION, WAIT_S)
    assert start["status"] == "Accepted"
    assert composite == [(0, 7.0)]
    assert listed == {"status": "Accepted"}
    [profile] = report.parts[0]["chargingProfile"]
    assert (profile["id"], profile["transactionId"]) == (9, tx.transaction_id)


async def test_tc_k_38_disabled_smart_charging_ignores_the_remote_start_profile(tmp_path: Path):
    """TC_K_38_CS: SmartChargingCtrlr.Enabled false: RequestStartTransaction with a chargingProfile is
    Accepted and the transaction starts, the profile ignored (GetChargingProfiles: NoProfiles); a
    SetChargingProfile is Rejected."""
    async with rig(tmp_path, {"SmartChargingCtrlr.Enabled": "false"}, swipe=False) as k:
        start = await k.call("RequestStartTransaction", {"evseId": 1, "remoteStartId": 4, "idToken": TOKEN,
                                                         "chargingProfile": tx_profile(9, 7.0)})
        tx = await k.csms.wait_transaction(station=STATION, timeout=WAIT_S)
        listed = await k.call("GetChargingProfiles", {"requestId": 2, "chargingProfile": {}})
        refused = await k.call("SetChargingProfile", {"evseId": 1, "chargingProfile": tx_default(1, 10.0)})
    assert start["status"] == "Accepted"
    assert tx.events[0].payload["transactionInfo"]["remoteStartId"] == 4
    assert listed == {"status": "NoProfiles"}
    assert refused["status"] == "Rejected" and refused["statusInfo"]["reasonCode"] == "NotEnabled"
