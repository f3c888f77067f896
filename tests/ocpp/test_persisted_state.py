"""Start-up never trusts persisted state blindly: records, key values and reservations that cannot apply
are quarantined, reported, and everything else starts."""

from __future__ import annotations

import logging

from everpy.csms import Csms
from everpy.ocpp.store import OcppStore

from .station import sil_station


async def test_unusable_persisted_state_is_quarantined_and_the_station_starts(tmp_path, csms: Csms, caplog):
    store = OcppStore(tmp_path / "ocpp.db", log=logging.getLogger("test"))
    store.put_record("charging_profile", 7, {"connectorId": 1, "profile": {"stackLevel": "high"}})
    store.put_record("charging_profile", 8, {"connectorId": 1, "profile": {
        "chargingProfileId": 8, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"startSchedule": "2026-01-01T00:00:00Z",
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}})
    store.put_record("reservation", 3, {"connectorId": 1, "expiryDate": "not a date", "idTag": "X"})
    store.put_record("availability", 9, {"operative": "perhaps"})
    store.set_config("HeartbeatInterval", "-5")
    store.close()
    with caplog.at_level(logging.WARNING):
        async with sil_station(tmp_path, csms) as station:
            quarantined = {row.source for row in station.ocpp.store.quarantined()}
            assert {"charging_profile/7", "reservation/3", "availability/9", "HeartbeatInterval"} <= quarantined
            assert await station.config_key("HeartbeatInterval") == "300"  # the default, not -5
            answer = await station.call("GetCompositeSchedule", connectorId=1, duration=60)
            assert answer["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0  # the good one applies
            status = await station.status("Available")  # not Reserved by the unusable reservation
            assert status["connectorId"] == 1
    assert "PersistedStateQuarantined" in caplog.text
