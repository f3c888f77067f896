"""OCPP 1.6 Core scenarios named after the OCA test cases: the SIL charger (EvseManager, simulated
board, meter, car and RFID reader, Auth, energy management, System) with the OCPP module on the real
bus, against the in-repo CSMS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ocpp.v16 import call

from everpy.csms import Csms

from .station import WAIT_S, sil_station, wait_file


async def test_tc_001_cold_boot_rejected_then_accepted(tmp_path, csms: Csms):
    csms.behaviour.boot_statuses = ["Rejected", "Accepted"]
    csms.behaviour.boot_interval = 1
    async with sil_station(tmp_path, csms):
        actions = [r.action for r in csms.received]
        assert actions[:2] == ["BootNotification", "BootNotification"]  # nothing else before Accepted
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 0)
        statuses = {r.payload["connectorId"]: r.payload["status"] for r in csms.messages("StatusNotification")}
        assert statuses == {0: "Available", 1: "Available"}
        boot = csms.messages("BootNotification")[0].payload
        assert boot["chargePointSerialNumber"] == "SIL-0001" and boot["firmwareVersion"] == "everpy-0.1.0"


async def test_tc_002_boot_pending_answers_csms_requests_sends_nothing(tmp_path, csms: Csms):
    csms.behaviour.boot_statuses = ["Pending", "Accepted"]
    csms.behaviour.boot_interval = 2
    async with sil_station(tmp_path, csms, wait_boot=False) as station:
        await csms.wait_for("BootNotification")
        await csms.call("CP1", call.GetConfiguration(key=["HeartbeatInterval"]))  # allowed while Pending
        assert station.csms.last_answer("CP1", "GetConfiguration")["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert (await station.call("RemoteStartTransaction", idTag="EARLY", connectorId=1))["status"] == "Rejected"
        assert (await station.call("TriggerMessage", requestedMessage="StatusNotification", connectorId=1))[
            "status"] == "Accepted"
        triggered = await csms.wait_for("StatusNotification", timeout=WAIT_S)  # sent although still Pending
        assert triggered.payload["connectorId"] == 1
        assert not csms.messages("Heartbeat")
        second_boot = await csms.wait_for("BootNotification", after=1, timeout=WAIT_S)
        before_accepted = [r.action for r in csms.received[:csms.received.index(second_boot)]]
        assert before_accepted == ["BootNotification", "StatusNotification"]  # only what was triggered


async def test_tc_003_plug_in_first_then_swipe_charge_and_unplug(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.plug_in()
        await station.status("Preparing")
        await station.swipe("TAG1")
        authorize = await csms.wait_for("Authorize")
        start = await csms.wait_for("StartTransaction")
        assert authorize.payload == {"idTag": "TAG1"}
        assert start.payload["idTag"] == "TAG1" and start.payload["connectorId"] == 1
        await station.status("Charging")
        mark = len(csms.received)
        await station.unplug()
        stop = await csms.wait_for("StopTransaction", after=mark)
        assert stop.payload["reason"] == "EVDisconnected" and stop.payload["transactionId"] == 1
        assert stop.payload["meterStop"] >= start.payload["meterStart"]
        data = stop.payload["transactionData"]
        samples = {(s["context"], s.get("measurand")) for v in data for s in v["sampledValue"]}
        assert ("Transaction.Begin", "Energy.Active.Import.Register") in samples
        assert ("Transaction.End", "Energy.Active.Import.Register") in samples
        available = await station.status("Available", after=mark)
        assert csms.received.index(stop) < next(i for i, r in enumerate(csms.received) if r.payload is available)


async def test_tc_004_1_identification_first_then_plug_in(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.swipe("TAG1")
        await csms.wait_for("Authorize")
        await station.status("Preparing")
        await station.plug_in()
        start = await csms.wait_for("StartTransaction")
        assert start.payload["idTag"] == "TAG1"
        await station.status("Charging")


async def test_tc_007_cached_id_tag_used_with_local_pre_authorize(tmp_path, csms: Csms):
    keys = {"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "true"}
    async with sil_station(tmp_path, csms, keys=keys) as station:
        await station.charging("CACHED")
        await station.unplug()
        await csms.wait_for("StopTransaction")
        authorizes = len(csms.messages("Authorize"))
        mark = len(csms.received)
        await station.charging("CACHED")
        assert len(csms.messages("Authorize")) == authorizes  # answered from the cache
        assert csms.messages("StartTransaction")[-1].payload["idTag"] == "CACHED"
        assert mark


@pytest.mark.parametrize("verdict", ["Invalid", "Blocked", "Expired"])
async def test_tc_023_rejected_id_tag_starts_nothing(tmp_path, csms: Csms, verdict: str):
    csms.behaviour.id_tags["BAD"] = verdict
    async with sil_station(tmp_path, csms) as station:
        await station.plug_in()
        await station.swipe("BAD")
        await csms.wait_for("Authorize", lambda p: p["idTag"] == "BAD")
        await station.system.watch("auth", "main", "token_validation_status").wait_for(
            lambda s: s["status"] == "Rejected", WAIT_S)
        assert not csms.messages("StartTransaction")


async def test_tc_010_tc_012_remote_start_and_stop(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.plug_in()
        assert (await station.call("RemoteStartTransaction", idTag="REMOTE1", connectorId=1))["status"] == "Accepted"
        start = await csms.wait_for("StartTransaction")
        assert start.payload["idTag"] == "REMOTE1"
        assert not csms.messages("Authorize")  # AuthorizeRemoteTxRequests is false
        await station.status("Charging")
        assert (await station.call("RemoteStopTransaction", transactionId=1))["status"] == "Accepted"
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == "Remote"


async def test_tc_011_remote_start_authorized_first_when_configured(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, keys={"AuthorizeRemoteTxRequests": "true"}) as station:
        assert (await station.call("RemoteStartTransaction", idTag="REMOTE2", connectorId=1))["status"] == "Accepted"
        await csms.wait_for("Authorize", lambda p: p["idTag"] == "REMOTE2")
        await station.plug_in()
        start = await csms.wait_for("StartTransaction")
        assert start.payload["idTag"] == "REMOTE2"


async def test_tc_026_027_028_remote_requests_rejected(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("RemoteStartTransaction", idTag="X", connectorId=7))["status"] == "Rejected"
        assert (await station.call("RemoteStartTransaction", idTag="X", connectorId=0))["status"] == "Rejected"
        assert (await station.call("RemoteStopTransaction", transactionId=42))["status"] == "Rejected"
        assert (await station.call("ChangeAvailability", connectorId=1, type="Inoperative"))["status"] == "Accepted"
        await station.status("Unavailable")
        assert (await station.call("RemoteStartTransaction", idTag="X", connectorId=1))["status"] == "Rejected"


@pytest.mark.parametrize(("kind", "reason"), [("Hard", "HardReset"), ("Soft", "SoftReset")])
async def test_tc_013_to_016_reset_stops_the_transaction_first(tmp_path: Path, csms: Csms, kind: str, reason: str):
    async with sil_station(tmp_path, csms) as station:
        await station.charging()
        assert (await station.call("Reset", type=kind))["status"] == "Accepted"
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == reason
        await wait_file(tmp_path / f"{kind.lower()}-reset")  # the System module ran the reset command


async def test_unlock_fixed_cable_is_not_supported(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, board={"connector_type": "IEC62196Type2Cable"}) as station:
        await station.charging()
        assert (await station.call("UnlockConnector", connectorId=1))["status"] == "NotSupported"
        mark = len(csms.received)
        # a triggered status waits for queued transaction messages, so a wrong StopTransaction would be in
        assert (await station.call("TriggerMessage", requestedMessage="StatusNotification", connectorId=1)
                )["status"] == "Accepted"
        await station.status("Charging", after=mark)
        assert not [r for r in csms.received if r.action == "StopTransaction"]  # 1.6 §5.17: nothing stopped


async def test_tc_017_018_unlock_connector(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, board={"connector_type": "IEC62196Type2Socket"}) as station:
        assert (await station.call("UnlockConnector", connectorId=1))["status"] == "Unlocked"
        assert (await station.call("UnlockConnector", connectorId=5))["status"] == "NotSupported"
        await station.charging()
        assert (await station.call("UnlockConnector", connectorId=1))["status"] == "Unlocked"
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == "UnlockCommand"


async def test_tc_019_get_configuration(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("GetConfiguration")
        keys = {k["key"]: k for k in answer["configurationKey"]}
        assert "AuthorizationKey" not in keys  # write-only
        assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
        assert keys["MeterValueSampleInterval"]["readonly"] is False
        answer = await station.call("GetConfiguration", key=["HeartbeatInterval", "NoSuchKey"])
        assert [k["key"] for k in answer["configurationKey"]] == ["HeartbeatInterval"]
        assert answer["unknownKey"] == ["NoSuchKey"]


async def test_tc_021_040_change_configuration_and_it_persists(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("ChangeConfiguration", key="MeterValueSampleInterval", value="17"))["status"] \
            == "Accepted"
        assert (await station.call("ChangeConfiguration", key="NoSuchKey", value="1"))["status"] == "NotSupported"
        assert (await station.call("ChangeConfiguration", key="HeartbeatInterval", value="-5"))["status"] == "Rejected"
        assert (await station.call("ChangeConfiguration", key="MeterValuesSampledData", value="Bogus"))["status"] \
            == "Rejected"
        assert (await station.call("ChangeConfiguration", key="NumberOfConnectors", value="3"))["status"] == "Rejected"
    async with sil_station(tmp_path, csms) as station:
        assert await station.config_key("MeterValueSampleInterval") == "17"


async def test_tc_032_change_availability_scheduled_during_a_transaction(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.charging()
        assert (await station.call("ChangeAvailability", connectorId=1, type="Inoperative"))["status"] == "Scheduled"
        mark = len(csms.received)
        await station.unplug()
        await csms.wait_for("StopTransaction", after=mark)
        await station.status("Unavailable", after=mark)
        assert (await station.call("ChangeAvailability", connectorId=0, type="Operative"))["status"] == "Accepted"
        await station.status("Available", after=mark)


async def test_tc_041_fault_reported_with_error_code(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, evse={"soft_over_current_timeout_ms": 300}) as station:
        await station.charging()
        mark = len(csms.received)
        # the car draws more than the pilot allows: EvseManager raises evse_manager/MREC4OverCurrentFailure
        await station.car("draw_power_fixed 45,3;sleep 36000")
        faulted = await station.status("Faulted", after=mark)
        assert faulted["errorCode"] == "OverCurrentFailure"
        answer = await station.call("ReserveNow", connectorId=1, expiryDate="2099-01-01T00:00:00Z", idTag="A",
                                    reservationId=1)
        assert answer["status"] == "Faulted"  # TC_048_1


async def test_tc_041_board_fault_reaches_the_csms_as_ground_failure(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.charging()
        mark = len(csms.received)
        await station.car("rcd_current 30;sleep 36000")  # residual current: the board's RCD trips
        faulted = await station.status("Faulted", after=mark)
        assert faulted["errorCode"] == "GroundFailure"


async def test_tc_061_clear_cache_and_tc_062_data_transfer(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("ClearCache"))["status"] == "Accepted"
        assert (await station.call("DataTransfer", vendorId="com.example"))["status"] == "UnknownVendorId"
        answer = await station.system.call("ocpp", "data_transfer", "data_transfer",
                                           request={"vendor_id": "com.example", "data": "ping"})
        assert answer == {"status": "Accepted", "data": "ping"}


async def test_tc_068_stop_with_the_same_id_tag(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.charging("OWNER")
        await station.swipe("OWNER")
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "OWNER"


async def test_start_transaction_not_accepted_by_the_csms_stops_it_deauthorized(tmp_path, csms: Csms):
    keys = {"LocalPreAuthorize": "true", "StopTransactionOnInvalidId": "true"}
    async with sil_station(tmp_path, csms, keys=keys) as station:
        await station.call("SendLocalList", listVersion=1, updateType="Full",
                           localAuthorizationList=[{"idTag": "STALE", "idTagInfo": {"status": "Accepted"}}])
        csms.behaviour.id_tags["STALE"] = "Blocked"  # the local list is out of date
        await station.plug_in()
        await station.swipe("STALE")
        await csms.wait_for("StartTransaction", timeout=WAIT_S)
        stop = await csms.wait_for("StopTransaction", timeout=WAIT_S)
        assert stop.payload["reason"] == "DeAuthorized"


async def test_stopping_and_restarting_the_ocpp_service_keeps_the_transaction(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.charging()
        assert await station.system.call("ocpp", "main", "stop") is True
        await csms.wait_disconnected("CP1")
        mark = len(csms.received)
        assert await station.system.call("ocpp", "main", "restart") is True
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", after=mark)
        assert not csms.messages("StopTransaction")
        answer = await station.call("ChangeConfiguration", key="StopTransactionOnEVSideDisconnect", value="false")
        assert answer["status"] == "Rejected"  # EvseManager always ends the transaction on unplug


async def test_tc_034_unavailable_status_survives_a_power_failure(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("ChangeAvailability", connectorId=1, type="Inoperative"))["status"] == "Accepted"
        await station.status("Unavailable")
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False) as station:
        await station.status("Unavailable", after=mark)
        assert (await station.call("RemoteStartTransaction", idTag="X", connectorId=1))["status"] == "Rejected"


async def test_tc_036_connection_loss_during_a_transaction(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, keys={"MeterValueSampleInterval": "1"}) as station:
        await station.charging()
        await csms.disconnect("CP1")
        await csms.wait_disconnected("CP1")
        await csms.wait_connected("CP1")
        mark = len(csms.received)
        await csms.wait_for("MeterValues", lambda p: p["transactionId"] == 1, after=mark)
        await station.unplug()
        stop = await csms.wait_for("StopTransaction", after=mark)
        assert stop.payload["transactionId"] == 1
        assert len(csms.messages("BootNotification")) == 1 and not csms.duplicates()


async def test_tc_048_3_reserve_an_unavailable_connector(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.call("ChangeAvailability", connectorId=1, type="Inoperative")
        await station.status("Unavailable")
        answer = await station.call("ReserveNow", connectorId=1, expiryDate="2099-01-01T00:00:00Z", idTag="A",
                                    reservationId=1)
        assert answer["status"] == "Unavailable"


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
async def test_tc_013_014_reset_without_a_transaction(tmp_path: Path, csms: Csms, kind: str):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("Reset", type=kind))["status"] == "Accepted"
        await wait_file(tmp_path / f"{kind.lower()}-reset")
        assert not csms.messages("StopTransaction")


async def test_get_configuration_with_more_keys_than_allowed(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms):
        keys = [f"Key{n}" for n in range(101)]  # GetConfigurationMaxKeys is 100
        await csms.send_raw("CP1", json.dumps([2, "many", "GetConfiguration", {"key": keys}]))
        reply = await csms.wait_raw_reply("CP1", "many")
        assert reply[0] == 4 and reply[2] == "OccurenceConstraintViolation"
