"""The SIL charger against an independent CSMS: npm `ocpp-rpc` in strict mode. Every frame the station
sends (its CALLs and its answers to the CSMS's CALLs) is validated by ocpp-rpc against the official OCPP
1.6 JSON schemas; the `rpc_csms` fixture fails the test if any frame was rejected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from websockets.typing import Subprotocol

from everpy.ocpp.v16.smart_charging import STATION_MAX_CURRENT_A, STATION_MAX_PHASES

from ..ocpp.certs import make_pki, sign_csr
from ..ocpp.sil import StationProcess, sil_ocpp_config
from ..ocpp.station import wait_file
from .conftest import FileServer, peer_station
from .peers import WAIT_S, OcppRpcCsms


async def test_boot_heartbeat_and_status_of_every_connector(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        boot = await rpc_csms.wait_call("BootNotification")
        assert boot["chargePointSerialNumber"] == "SIL-0001" and boot["firmwareVersion"] == "everpy-0.1.0"
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 0)
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Available")
        connected = await rpc_csms.wait_event(lambda e: e["event"] == "connected")
        assert connected == {"event": "connected", "identity": "CP1", "protocol": "ocpp1.6"}
        mark = rpc_csms.mark()
        assert (await rpc_csms.call("TriggerMessage", requestedMessage="Heartbeat"))["status"] == "Accepted"
        await rpc_csms.wait_call("Heartbeat", after=mark)


async def test_plug_swipe_charge_with_meter_values_and_unplug(tmp_path: Path, rpc_csms: OcppRpcCsms):
    keys = {"MeterValueSampleInterval": "1", "StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import"}
    async with peer_station(tmp_path, rpc_csms.url, keys=keys) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await station.plug_in()
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Preparing")
        await station.swipe("TAG1")
        assert await rpc_csms.wait_call("Authorize") == {"idTag": "TAG1"}
        start = await rpc_csms.wait_call("StartTransaction")
        assert start["idTag"] == "TAG1" and start["connectorId"] == 1
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
        sample = await rpc_csms.wait_call("MeterValues", lambda p: p.get("transactionId") == 1)
        measurands = {s.get("measurand", "Energy.Active.Import.Register") for v in sample["meterValue"]
                      for s in v["sampledValue"]}
        assert {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"} <= measurands
        await station.unplug()
        stop = await rpc_csms.wait_call("StopTransaction")
        assert stop["transactionId"] == 1 and stop["reason"] == "EVDisconnected"
        assert stop["meterStop"] >= start["meterStart"]
        contexts = {s.get("context") for v in stop["transactionData"] for s in v["sampledValue"]}
        assert {"Transaction.Begin", "Transaction.End"} <= contexts
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=stop_index(rpc_csms))


def stop_index(csms: OcppRpcCsms) -> int:
    return csms.calls("StopTransaction")[-1].index


async def test_remote_start_and_remote_stop(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await station.plug_in()
        answer = await rpc_csms.call("RemoteStartTransaction", idTag="REMOTE1", connectorId=1)
        assert answer == {"status": "Accepted"}
        start = await rpc_csms.wait_call("StartTransaction")
        assert start["idTag"] == "REMOTE1"
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
        assert await rpc_csms.call("RemoteStopTransaction", transactionId=999) == {"status": "Rejected"}
        assert await rpc_csms.call("RemoteStopTransaction", transactionId=1) == {"status": "Accepted"}
        stop = await rpc_csms.wait_call("StopTransaction")
        assert stop["reason"] == "Remote" and stop["transactionId"] == 1


async def test_swiping_the_same_id_tag_stops_with_reason_local(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await station.plug_in()
        await station.swipe("OWNER")
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
        await station.swipe("OWNER")
        stop = await rpc_csms.wait_call("StopTransaction")
        assert stop["reason"] == "Local" and stop["idTag"] == "OWNER"  # answered with an idTagInfo
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Finishing")


async def test_get_and_change_configuration(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        await rpc_csms.wait_call("BootNotification")
        every_key = await rpc_csms.call("GetConfiguration")  # the largest answer: all keys, schema-checked
        keys = {entry["key"]: entry for entry in every_key["configurationKey"]}
        assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
        assert "AuthorizationKey" not in keys
        some = await rpc_csms.call("GetConfiguration", key=["HeartbeatInterval", "NoSuchKey"])
        assert [entry["key"] for entry in some["configurationKey"]] == ["HeartbeatInterval"]
        assert some["unknownKey"] == ["NoSuchKey"]
        change = rpc_csms.call
        assert await change("ChangeConfiguration", key="HeartbeatInterval", value="120") == {"status": "Accepted"}
        assert await change("ChangeConfiguration", key="HeartbeatInterval", value="-5") == {"status": "Rejected"}
        assert await change("ChangeConfiguration", key="NumberOfConnectors", value="2") == {"status": "Rejected"}
        assert await change("ChangeConfiguration", key="NoSuchKey", value="1") == {"status": "NotSupported"}
        after = await rpc_csms.call("GetConfiguration", key=["HeartbeatInterval"])
        assert after["configurationKey"][0]["value"] == "120"


async def test_trigger_message_for_every_kind(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        for message in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                        "FirmwareStatusNotification", "DiagnosticsStatusNotification"):
            mark = rpc_csms.mark()
            connector = {"connectorId": 1} if message in ("StatusNotification", "MeterValues") else {}
            assert await rpc_csms.call("TriggerMessage", requestedMessage=message, **connector) \
                == {"status": "Accepted"}
            triggered = await rpc_csms.wait_call(message, after=mark)
            if connector:
                assert triggered["connectorId"] == 1
        assert await rpc_csms.call("TriggerMessage", requestedMessage="StatusNotification", connectorId=9) \
            == {"status": "Rejected"}


async def test_smart_charging_profiles_and_composite_schedule(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        station_max = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
                       "chargingProfileKind": "Absolute",
                       "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2020-01-01T00:00:00Z",
                                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.5}]}}
        tx_default = {"chargingProfileId": 2, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
                      "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
                      "chargingSchedule": {"chargingRateUnit": "W", "duration": 86400,
                                           "startSchedule": "2020-01-01T00:00:00Z",
                                           "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900.0,
                                                                       "numberPhases": 3}]}}
        tx_without_transaction = {**tx_default, "chargingProfileId": 3, "chargingProfilePurpose": "TxProfile"}
        set_profile = rpc_csms.call
        assert await set_profile("SetChargingProfile", connectorId=0, csChargingProfiles=station_max) \
            == {"status": "Accepted"}
        assert await set_profile("SetChargingProfile", connectorId=1, csChargingProfiles=tx_default) \
            == {"status": "Accepted"}
        assert await set_profile("SetChargingProfile", connectorId=1, csChargingProfiles=tx_without_transaction) \
            == {"status": "Rejected"}
        for unit, limit in (("A", 10.0), ("W", 6900.0)):  # 6900 W over 3 phases at 230 V = 10 A < 20.5 A
            schedule = await rpc_csms.call("GetCompositeSchedule", connectorId=1, duration=3600,
                                           chargingRateUnit=unit)
            assert schedule["status"] == "Accepted" and schedule["connectorId"] == 1
            periods = schedule["chargingSchedule"]["chargingSchedulePeriod"]
            assert schedule["chargingSchedule"]["chargingRateUnit"] == unit
            assert periods[0]["startPeriod"] == 0 and periods[0]["limit"] == limit
        station_wide = await rpc_csms.call("GetCompositeSchedule", connectorId=0, duration=600)
        assert station_wide["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 20.5
        assert await rpc_csms.call("ClearChargingProfile", id=2) == {"status": "Accepted"}
        assert await rpc_csms.call("ClearChargingProfile", id=2) == {"status": "Unknown"}
        assert await rpc_csms.call("ClearChargingProfile", chargingProfilePurpose="ChargePointMaxProfile") \
            == {"status": "Accepted"}
        cleared = await rpc_csms.call("GetCompositeSchedule", connectorId=1, duration=600)
        # no profile left: the station's own maximum over the whole duration, nothing from the cleared ones
        assert cleared["status"] == "Accepted"
        assert cleared["chargingSchedule"]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": STATION_MAX_CURRENT_A, "numberPhases": STATION_MAX_PHASES}]


async def test_reservation_then_charging_with_the_reserved_id_tag(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        reserve = {"connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z", "idTag": "HOLDER"}
        assert await rpc_csms.call("ReserveNow", reservationId=7, **reserve) == {"status": "Accepted"}
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Reserved")
        reserved_at = rpc_csms.calls("StatusNotification")[-1].index
        assert await rpc_csms.call("CancelReservation", reservationId=7) == {"status": "Accepted"}
        assert await rpc_csms.call("CancelReservation", reservationId=7) == {"status": "Rejected"}
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=reserved_at)
        assert await rpc_csms.call("ReserveNow", reservationId=8, **reserve) == {"status": "Accepted"}
        await station.plug_in()
        await station.swipe("HOLDER")
        start = await rpc_csms.wait_call("StartTransaction")
        assert start["idTag"] == "HOLDER" and start["reservationId"] == 8


async def test_local_list_versions_updates_and_cache(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        await rpc_csms.wait_call("BootNotification")
        assert await rpc_csms.call("GetLocalListVersion") == {"listVersion": 0}
        full = [{"idTag": "LOCAL1", "idTagInfo": {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z"}},
                {"idTag": "LOCAL2", "idTagInfo": {"status": "Blocked", "parentIdTag": "FLEET"}}]
        assert await rpc_csms.call("SendLocalList", listVersion=3, updateType="Full",
                                   localAuthorizationList=full) == {"status": "Accepted"}
        assert await rpc_csms.call("GetLocalListVersion") == {"listVersion": 3}
        differential = [{"idTag": "LOCAL2"}, {"idTag": "LOCAL3", "idTagInfo": {"status": "Accepted"}}]
        assert await rpc_csms.call("SendLocalList", listVersion=2, updateType="Differential",
                                   localAuthorizationList=differential) == {"status": "VersionMismatch"}
        assert await rpc_csms.call("SendLocalList", listVersion=4, updateType="Differential",
                                   localAuthorizationList=differential) == {"status": "Accepted"}
        assert await rpc_csms.call("GetLocalListVersion") == {"listVersion": 4}
        assert await rpc_csms.call("ClearCache") == {"status": "Accepted"}


async def test_availability_unlock_data_transfer_and_reset(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        mark = rpc_csms.mark()
        assert await rpc_csms.call("ChangeAvailability", connectorId=1, type="Inoperative") == {"status": "Accepted"}
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Unavailable", after=mark)
        assert await rpc_csms.call("ChangeAvailability", connectorId=0, type="Operative") == {"status": "Accepted"}
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Available", after=mark)
        assert await rpc_csms.call("UnlockConnector", connectorId=1) == {"status": "Unlocked"}
        assert await rpc_csms.call("UnlockConnector", connectorId=4) == {"status": "NotSupported"}
        assert await rpc_csms.call("DataTransfer", vendorId="com.example", data="x") == {"status": "UnknownVendorId"}
        answer = await station.system.call("ocpp", "data_transfer", "data_transfer",
                                           request={"vendor_id": "everpy.test", "message_id": "ping",
                                                    "data": "Grüße ✓ 42"})
        assert answer == {"status": "Accepted", "data": "echo:Grüße ✓ 42"}  # UTF-8 both ways
        assert await rpc_csms.call("DataTransfer", vendorId="com.example", data="x") == {"status": "UnknownVendorId"}
        assert await rpc_csms.call("Reset", type="Soft") == {"status": "Accepted"}
        await wait_file(tmp_path / "soft-reset")  # the System module ran the soft reset command


AUTHORIZATION_KEY = "0123456789abcdef0123456789abcdef"  # 16 bytes as 32 hex digits


async def test_security_profile_1_basic_auth_password_accepted(tmp_path: Path, ocpp_rpc_node_modules: Path):
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", {"password": AUTHORIZATION_KEY}) as csms:
        keys = {"SecurityProfile": "1", "AuthorizationKey": AUTHORIZATION_KEY}
        async with peer_station(tmp_path, csms.url, keys=keys):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            auth = [e for e in csms.events if e["event"] == "auth"]
            assert auth == [{"event": "auth", "identity": "CP1", "accepted": True, "reason": "password matches"}]
            # the key is write-only: never shown, even to the CSMS that set it
            answer = await csms.call("GetConfiguration", key=["AuthorizationKey", "SecurityProfile"])
            assert [k["key"] for k in answer["configurationKey"]] == ["SecurityProfile"]
        assert csms.violations() == []


async def test_security_profile_1_wrong_password_is_refused_and_retried(tmp_path: Path, ocpp_rpc_node_modules: Path):
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", {"password": AUTHORIZATION_KEY}) as csms:
        keys = {"SecurityProfile": "1", "AuthorizationKey": "fedcba9876543210fedcba9876543210"}
        async with peer_station(tmp_path, csms.url, keys=keys):
            first = await csms.wait_event(lambda e: e["event"] == "auth")
            assert first["accepted"] is False and first["reason"] == "wrong password"
            await csms.wait_event(lambda e: e["event"] == "auth", after=csms.mark())  # it keeps trying
            assert not [e for e in csms.events if e["event"] in ("connected", "call")]


async def test_firmware_update_and_diagnostics_upload_report_their_status(tmp_path: Path, rpc_csms: OcppRpcCsms,
                                                                         file_server: FileServer):
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "ocpp.log").write_text("a log line to upload\n")
    system = {"firmware_installer_command": "{python} -m everpy_modules.System.sil_installer",
              "default_retry_interval_s": 0}
    async with peer_station(tmp_path, rpc_csms.url, system=system):
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        mark = rpc_csms.mark()
        assert await rpc_csms.call("UpdateFirmware", location=f"{file_server.url}/firmware/image.bin",
                                   retrieveDate="2020-01-01T00:00:00Z", retries=1) == {}
        await rpc_csms.wait_call("FirmwareStatusNotification", lambda p: p["status"] == "Installed", after=mark)
        statuses = [c.params["status"] for c in rpc_csms.calls("FirmwareStatusNotification") if c.index > mark]
        assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
        mark = rpc_csms.mark()
        answer = await rpc_csms.call("GetDiagnostics", location=f"{file_server.url}/uploads", retries=1)
        await rpc_csms.wait_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", after=mark)
        assert list(file_server.uploads) == [answer["fileName"]] and file_server.uploads[answer["fileName"]]


async def test_the_peer_reports_schema_invalid_frames(tmp_path: Path, ocpp_rpc_node_modules: Path):
    """The check every test above relies on: a frame the schemas reject shows up in violations()."""
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log") as csms:
        async with websockets.connect(f"{csms.url}/PROBE", subprotocols=[Subprotocol("ocpp1.6")]) as link:
            await link.send(json.dumps([2, "m1", "BootNotification", {"chargePointVendor": "no model"}]))
            error = json.loads(await asyncio.wait_for(link.recv(), WAIT_S))
            assert error[:3] == [4, "m1", "OccurrenceConstraintViolation"]
            await link.send(json.dumps([2, "m2", "Heartbeat", {}]))
            assert json.loads(await asyncio.wait_for(link.recv(), WAIT_S))[:2] == [3, "m2"]
        [violation] = csms.violations()
        assert violation["event"] == "validation_failure" and violation["method"] == "BootNotification"
        assert violation["outbound"] is False and violation["isCall"] is True


async def test_boot_rejected_then_pending_then_accepted(tmp_path: Path, ocpp_rpc_node_modules: Path):
    settings = {"registration": ["Rejected", "Pending"], "bootRetryInterval": 1}
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", settings) as csms:
        async with peer_station(tmp_path, csms.url):
            await csms.wait_call("BootNotification")
            pending = await csms.wait_call("BootNotification", after=csms.calls("BootNotification")[0].index + 1)
            assert pending["chargePointModel"] == "everpy-sil"
            answer = await csms.call("GetConfiguration", key=["HeartbeatInterval"])  # allowed while Pending
            assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            actions = [e["action"] for e in csms.events if e["event"] == "call"]
            assert actions[:3] == ["BootNotification"] * 3  # nothing else before Accepted
        assert csms.violations() == []


async def test_fault_clock_aligned_values_heartbeat_and_remote_start_profile(tmp_path: Path,
                                                                              rpc_csms: OcppRpcCsms):
    keys = {"MeterValuesAlignedData": "Energy.Active.Import.Register,Voltage",
            "StopTxnAlignedData": "Energy.Active.Import.Register"}
    async with peer_station(tmp_path, rpc_csms.url, keys=keys) as station:
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        mark = rpc_csms.mark()
        assert await rpc_csms.call("ChangeConfiguration", key="HeartbeatInterval", value="1") == {"status": "Accepted"}
        await rpc_csms.wait_call("Heartbeat", after=mark)
        # (from here on other messages every second stand in for heartbeats, as 1.6 allows)
        assert await rpc_csms.call("ChangeConfiguration", key="ClockAlignedDataInterval", value="1") \
            == {"status": "Accepted"}
        aligned = await rpc_csms.wait_call(
            "MeterValues", lambda p: any(s.get("context") == "Sample.Clock" for v in p["meterValue"]
                                         for s in v["sampledValue"]))
        assert aligned["connectorId"] in (0, 1)
        await station.plug_in()
        tx_profile = {"chargingProfileId": 9, "stackLevel": 2, "chargingProfilePurpose": "TxProfile",
                      "chargingProfileKind": "Relative",
                      "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                          {"startPeriod": 0, "limit": 13.3}, {"startPeriod": 3600, "limit": 6.1}]}}
        assert await rpc_csms.call("RemoteStartTransaction", idTag="REMOTE9", connectorId=1,
                                   chargingProfile=tx_profile) == {"status": "Accepted"}
        await rpc_csms.wait_call("StartTransaction", lambda p: p["idTag"] == "REMOTE9")
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Charging")
        schedule = await rpc_csms.call("GetCompositeSchedule", connectorId=1, duration=7200, chargingRateUnit="W")
        limits = [p["limit"] for p in schedule["chargingSchedule"]["chargingSchedulePeriod"]]
        assert len(limits) == 2 and limits[0] > limits[1] > 0  # 13.3 A then 6.1 A, in W
        mark = rpc_csms.mark()
        # the car draws more than the pilot allows: EvseManager raises an over-current error
        await station.car("draw_power_fixed 45,3;sleep 36000")
        faulted = await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Faulted", after=mark)
        assert faulted["errorCode"] == "OverCurrentFailure"
        # ocpp-rpc pinged every second all along and would have dropped a station that missed a pong
        assert [e["event"] for e in rpc_csms.events if e["event"] in ("connected", "disconnected")] == ["connected"]


async def test_offline_transaction_is_delivered_in_order_with_the_csms_s_transaction_id(tmp_path: Path,
                                                                                        rpc_csms: OcppRpcCsms):
    keys = {"LocalAuthorizeOffline": "true", "AllowOfflineTxForUnknownId": "false"}
    async with peer_station(tmp_path, rpc_csms.url, keys=keys) as station:
        # charge once online, so TAG1 is in the authorisation cache
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        await station.plug_in()
        await station.swipe("TAG1")
        await rpc_csms.wait_call("StartTransaction")
        await station.unplug()
        await rpc_csms.wait_call("StopTransaction")
        await rpc_csms.wait_call("StatusNotification", lambda p: p["status"] == "Available",
                                 after=rpc_csms.calls("StopTransaction")[-1].index)
        mark = rpc_csms.mark()
        await rpc_csms.refuse_connections()  # the CSMS goes away; the station's reconnects get HTTP 503
        await rpc_csms.wait_event(lambda e: e["event"] == "auth" and not e["accepted"], after=mark)
        await station.plug_in()
        await station.swipe("TAG1")  # accepted from the cache while offline
        transactions = station.system.watch("ocpp", "main", "ocpp_transaction_event")
        await transactions.wait_for(lambda e: e["transaction_event"] == "Started", WAIT_S)
        await station.unplug()
        await transactions.wait_for(lambda e: e["transaction_event"] == "Ended", WAIT_S)
        mark = rpc_csms.mark()
        await rpc_csms.accept_connections(first_transaction_id=500)
        stop = await rpc_csms.wait_call("StopTransaction", after=mark)
        [start] = [c for c in rpc_csms.calls("StartTransaction") if c.index > mark]
        assert start.params["idTag"] == "TAG1" and start.index < rpc_csms.calls("StopTransaction")[-1].index
        assert stop["transactionId"] == 500 and stop["reason"] == "EVDisconnected"  # the id given after reconnect
        assert stop["timestamp"] >= start.params["timestamp"]
        assert len(rpc_csms.calls("BootNotification")) == 1  # the same run of the station: no new boot
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)


WHITEPAPER_TLS12_CIPHERS = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                            "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"}


@pytest.mark.parametrize("max_version", ["TLSv1.2", "TLSv1.3"])
async def test_security_profile_2_tls_with_basic_auth(tmp_path: Path, ocpp_rpc_node_modules: Path, max_version: str):
    pki = make_pki(tmp_path / "pki")
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca), "maxVersion": max_version}
    settings = {"password": AUTHORIZATION_KEY, "tls": tls}
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", settings) as csms:
        keys = {"SecurityProfile": "2", "AuthorizationKey": AUTHORIZATION_KEY}
        async with peer_station(tmp_path, csms.url, keys=keys, ocpp={"csms_ca_file": str(pki.ca)}):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        [auth] = [e for e in csms.events if e["event"] == "auth"]
        assert auth["accepted"] and auth["reason"] == "password matches"
        assert auth["tls"]["protocol"] == max_version and auth["tls"]["clientCertificate"] is None
        if max_version == "TLSv1.2":
            assert auth["tls"]["cipher"] in WHITEPAPER_TLS12_CIPHERS
        assert csms.violations() == []


async def test_security_profile_3_mutual_tls(tmp_path: Path, ocpp_rpc_node_modules: Path):
    pki = make_pki(tmp_path / "pki")
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca),
           "requireClientCertificate": True}
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", {"tls": tls}) as csms:
        ocpp = {"csms_ca_file": str(pki.ca), "client_cert_file": str(pki.client_cert),
                "client_key_file": str(pki.client_key)}
        async with peer_station(tmp_path, csms.url, keys={"SecurityProfile": "3"}, ocpp=ocpp):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        [auth] = [e for e in csms.events if e["event"] == "auth"]
        # the station certificate: CN = the station's serial number, O = the CPO (Security whitepaper)
        assert auth["tls"]["clientCertificate"] == {"CN": "SIL-0001", "O": "everpy test CPO"}
        assert csms.violations() == []


async def test_csms_certificate_from_an_unknown_ca_is_refused(tmp_path: Path, ocpp_rpc_node_modules: Path):
    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", ca_name="someone else's root")
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca)}
    settings = {"password": AUTHORIZATION_KEY, "tls": tls}
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log", settings) as csms:
        keys = {"SecurityProfile": "2", "AuthorizationKey": AUTHORIZATION_KEY}
        async with peer_station(tmp_path, csms.url, keys=keys, ocpp={"csms_ca_file": str(other.ca)}) as station:
            events = station.system.watch("ocpp", "main", "security_event")
            event = await events.wait_for(lambda e: e["type"] == "InvalidCentralSystemCertificate", WAIT_S)
            assert event["type"] == "InvalidCentralSystemCertificate"
            await csms.wait_event(lambda e: e["event"] == "tls_error")  # the station aborted the handshake
            assert not [e for e in csms.events if e["event"] in ("auth", "connected")]  # no password was sent


async def test_security_extension_trigger_and_log_upload(tmp_path: Path, rpc_csms: OcppRpcCsms,
                                                         file_server: FileServer):
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "ocpp.log").write_text("a log line to upload\n")
    async with peer_station(tmp_path, rpc_csms.url, system={"default_retry_interval_s": 0}):
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
        mark = rpc_csms.mark()
        assert await rpc_csms.call("ExtendedTriggerMessage", requestedMessage="StatusNotification", connectorId=1) \
            == {"status": "Accepted"}
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)
        assert await rpc_csms.call("ExtendedTriggerMessage", requestedMessage="MeterValues", connectorId=7) \
            == {"status": "Rejected"}
        mark = rpc_csms.mark()
        answer = await rpc_csms.call("GetLog", logType="DiagnosticsLog", requestId=42, retries=1,
                                     log={"remoteLocation": f"{file_server.url}/uploads"})
        assert answer["status"] == "Accepted"
        await rpc_csms.wait_call("LogStatusNotification", lambda p: p["status"] == "Uploaded", after=mark)
        assert [c.params for c in rpc_csms.calls("LogStatusNotification") if c.index > mark] == [
            {"status": "Uploading", "requestId": 42}, {"status": "Uploaded", "requestId": 42}]
        assert list(file_server.uploads) == [answer["filename"]]
        mark = rpc_csms.mark()
        assert await rpc_csms.call("ExtendedTriggerMessage", requestedMessage="LogStatusNotification") \
            == {"status": "Accepted"}
        assert (await rpc_csms.wait_call("LogStatusNotification", after=mark))["status"] in ("Idle", "Uploaded")


async def test_sil_demo_as_its_own_process(tmp_path: Path, rpc_csms: OcppRpcCsms):
    """`everpy run` of config/sil-ocpp.yaml (the demo): the car charges and leaves, the RFID reader answers
    the authorisation request with its token, all on its own."""
    car = "sleep 0.5;iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 2;unplug"
    config = sil_ocpp_config(tmp_path, rpc_csms.url, car_script=car, keys={"MeterValueSampleInterval": "1"})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        start = await rpc_csms.wait_call("StartTransaction")
        assert start["idTag"] == "DEADBEEF"
        await rpc_csms.wait_call("MeterValues", lambda p: p.get("transactionId") == 1)
        stop = await rpc_csms.wait_call("StopTransaction")
        assert stop["transactionId"] == 1 and stop["reason"] == "EVDisconnected"
        actions = [e["action"] for e in rpc_csms.events if e["event"] == "call"]
        assert actions[0] == "BootNotification" and "Authorize" in actions
    finally:
        station.stop()
    assert "Traceback" not in station.log() and "ERROR" not in station.log()


async def test_certificate_management_then_upgrade_to_mutual_tls(tmp_path: Path, ocpp_rpc_node_modules: Path):
    """Security extension certificate management over strict schemas: the CSMS installs its root, has the
    station's CSR signed, and the station moves from profile 2 to 3 with the certificate it got."""
    pki = make_pki(tmp_path / "pki")
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca),
           "requestClientCertificate": True}
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log",
                           {"password": AUTHORIZATION_KEY, "tls": tls}) as csms:
        keys = {"SecurityProfile": "2", "AuthorizationKey": AUTHORIZATION_KEY, "CpoName": "everpy test CPO"}
        async with peer_station(tmp_path, csms.url, keys=keys, ocpp={"csms_ca_file": str(pki.ca)}):
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1)
            roots = {"certificateType": "CentralSystemRootCertificate"}
            assert await csms.call("GetInstalledCertificateIds", **roots) == {"status": "NotFound"}
            assert await csms.call("InstallCertificate", certificate=pki.ca.read_text(), **roots) \
                == {"status": "Accepted"}
            installed = await csms.call("GetInstalledCertificateIds", **roots)
            assert installed["status"] == "Accepted" and len(installed["certificateHashData"]) == 1
            mark = csms.mark()
            assert await csms.call("ExtendedTriggerMessage", requestedMessage="SignChargePointCertificate") \
                == {"status": "Accepted"}
            csr = (await csms.wait_call("SignCertificate", after=mark))["csr"]
            assert await csms.call("CertificateSigned", certificateChain=sign_csr(pki, csr)) == {"status": "Accepted"}
            mark = csms.mark()
            assert await csms.call("ChangeConfiguration", key="SecurityProfile", value="3") == {"status": "Accepted"}
            auth = await csms.wait_event(lambda e: e["event"] == "auth", after=mark)
            assert auth["accepted"] and auth["reason"] == "client certificate"
            assert auth["tls"]["clientCertificate"] == {"CN": "SIL-0001", "O": "everpy test CPO"}
            await csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)
            [root] = installed["certificateHashData"]
            assert await csms.call("DeleteCertificate", certificateHashData=root) == {"status": "Accepted"}
            assert await csms.call("DeleteCertificate", certificateHashData=root) == {"status": "NotFound"}
        assert csms.violations() == []
