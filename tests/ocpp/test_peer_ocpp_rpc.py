"""The SIL charger against an independent CSMS: npm `ocpp-rpc` in strict mode (its own language,
websocket stack and schema validator). Every frame either way is validated; none may fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .peers import ocpp_rpc_peer
from .station import Address, sil_station


async def test_full_session_and_remote_operations_against_ocpp_rpc_strict(tmp_path):
    async with ocpp_rpc_peer() as peer:
        port = (await peer.wait_event(lambda e: e.get("event") == "listening"))["port"]
        async with sil_station(tmp_path, Address(f"ws://127.0.0.1:{port}/ocpp"), wait_boot=False) as station:
            await peer.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            await station.plug_in()
            await station.swipe("PEERTAG")
            await peer.wait_call("Authorize")
            await peer.wait_call("StartTransaction")
            await peer.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
            answers = {}
            for action, payload in [
                ("GetConfiguration", {}),
                ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}),
                ("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}),
                ("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
                    "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Absolute", "chargingSchedule": {
                        "startSchedule": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5000.0}]}}}),
                ("GetCompositeSchedule", {"connectorId": 1, "duration": 600}),
                ("SendLocalList", {"listVersion": 1, "updateType": "Full",
                                   "localAuthorizationList": [{"idTag": "X", "idTagInfo": {"status": "Accepted"}}]}),
                ("GetLocalListVersion", {}),
                ("ReserveNow", {"connectorId": 1, "idTag": "R", "reservationId": 1, "expiryDate":
                                (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")}),
                ("DataTransfer", {"vendorId": "org.example"}),
                ("ClearCache", {}),
                ("RemoteStopTransaction", {"transactionId": 1}),
            ]:
                answers[action] = await peer.call(action, payload)
            await peer.wait_call("StopTransaction", lambda p: p["reason"] == "Remote")
            await station.unplug()
            await peer.wait_call("StatusNotification", lambda p: p["status"] == "Available" and p["connectorId"] == 1)
        assert peer.failures() == []
        results = {action: answer.get("result") for action, answer in answers.items()}
        assert results["ChangeConfiguration"] == {"status": "Accepted"}
        assert results["TriggerMessage"] == {"status": "Accepted"}
        assert results["SetChargingProfile"] == {"status": "Accepted"}
        composite = results["GetCompositeSchedule"]
        assert composite["status"] == "Accepted"
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 7.2  # 5000 W / 690 V, 0.1 steps
        assert results["SendLocalList"] == {"status": "Accepted"} and results["GetLocalListVersion"]["listVersion"] == 1
        assert results["ReserveNow"] == {"status": "Occupied"}  # the car is charging
        assert results["DataTransfer"] == {"status": "UnknownVendorId"}
        assert results["RemoteStopTransaction"] == {"status": "Accepted"}
        assert len(peer.calls("MeterValues")) >= 1
