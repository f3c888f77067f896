"""Local Auth List Management (TC_008, TC_042, TC_043), Reservation (TC_046-TC_053) and Remote Trigger
(TC_054, TC_055) on the SIL charger against the in-repo CSMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from everpy.csms import Csms

from .station import WAIT_S, sil_station


def _token(tag: str) -> dict:
    return {"id_token": {"value": tag, "type": "ISO14443"}, "authorization_type": "RFID"}


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def test_tc_042_043_send_local_list_full_and_differential(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 0
        full = [{"idTag": "LOCAL1", "idTagInfo": {"status": "Accepted"}},
                {"idTag": "LOCAL2", "idTagInfo": {"status": "Blocked"}}]
        answer = await station.call("SendLocalList", listVersion=5, updateType="Full", localAuthorizationList=full)
        assert answer["status"] == "Accepted"
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 5
        answer = await station.call("SendLocalList", listVersion=5, updateType="Differential",
                                    localAuthorizationList=[{"idTag": "LOCAL3", "idTagInfo": {"status": "Accepted"}}])
        assert answer["status"] == "VersionMismatch"
        answer = await station.call("SendLocalList", listVersion=6, updateType="Differential",
                                    localAuthorizationList=[{"idTag": "LOCAL3", "idTagInfo": {"status": "Accepted"}},
                                                            {"idTag": "LOCAL1"}])  # no idTagInfo: remove
        assert answer["status"] == "Accepted"
        await station.csms.stop()
        await station.system.watch("ocpp", "main", "connection_status").wait_for(lambda s: not s["connected"])
        verdicts = {}
        for tag in ("LOCAL1", "LOCAL2", "LOCAL3"):
            result = await station.system.call("ocpp", "auth_validator", "validate_token", provided_token=_token(tag))
            verdicts[tag] = result["authorization_status"]
        assert verdicts == {"LOCAL1": "Invalid", "LOCAL2": "Blocked", "LOCAL3": "Accepted"}


async def test_tc_008_local_list_pre_authorizes_without_authorize(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, keys={"LocalPreAuthorize": "true"}) as station:
        await station.call("SendLocalList", listVersion=1, updateType="Full",
                           localAuthorizationList=[{"idTag": "LISTED", "idTagInfo": {"status": "Accepted"}}])
        await station.charging("LISTED")
        assert not csms.messages("Authorize")
        assert csms.messages("StartTransaction")[0].payload["idTag"] == "LISTED"


async def test_local_list_disabled_is_not_supported(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, keys={"LocalAuthListEnabled": "false"}) as station:
        answer = await station.call("SendLocalList", listVersion=1, updateType="Full", localAuthorizationList=[])
        assert answer["status"] == "NotSupported"


async def test_tc_046_reservation_used_by_its_id_tag(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="RESERVER",
                                    reservationId=7)
        assert answer["status"] == "Accepted"
        await station.status("Reserved")
        other = await station.system.call("ocpp", "auth_validator", "validate_token", provided_token=_token("OTHER"))
        assert other["authorization_status"] != "Accepted"  # the only connector is reserved for someone else
        await station.plug_in()
        await station.swipe("RESERVER")
        start = await csms.wait_for("StartTransaction", timeout=WAIT_S)
        assert start.payload["reservationId"] == 7 and start.payload["idTag"] == "RESERVER"
        assert not station.ocpp.store.records("reservation")


async def test_tc_048_049_reserve_occupied_and_cancel(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms, keys={"ReserveConnectorZeroSupported": "false"}) as station:
        assert (await station.call("ReserveNow", connectorId=0, expiryDate=_in(600), idTag="A",
                                   reservationId=1))["status"] == "Rejected"  # connector 0 not supported
        assert (await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="A",
                                   reservationId=2))["status"] == "Accepted"
        mark = len(csms.received)
        assert (await station.call("CancelReservation", reservationId=2))["status"] == "Accepted"
        assert (await station.call("CancelReservation", reservationId=2))["status"] == "Rejected"
        await station.status("Available", after=mark)
        await station.charging()
        assert (await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="A",
                                   reservationId=3))["status"] == "Occupied"


async def test_tc_047_reservation_expires(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        assert (await station.call("ReserveNow", connectorId=1, expiryDate=_in(1.5), idTag="A",
                                   reservationId=4))["status"] == "Accepted"
        mark = len(csms.received)
        await station.status("Reserved")
        await station.status("Available", after=mark)
        assert not station.ocpp.store.records("reservation")


async def test_tc_054_055_trigger_message(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        for message in ("Heartbeat", "StatusNotification", "BootNotification", "FirmwareStatusNotification",
                        "DiagnosticsStatusNotification"):
            mark = len(csms.received)
            assert (await station.call("TriggerMessage", requestedMessage=message))["status"] == "Accepted"
            await csms.wait_for(message, after=mark)
        assert (await station.call("TriggerMessage", requestedMessage="StatusNotification",
                                   connectorId=9))["status"] == "Rejected"
        await station.charging()
        mark = len(csms.received)
        assert (await station.call("TriggerMessage", requestedMessage="MeterValues", connectorId=1))["status"] \
            == "Accepted"
        triggered = await csms.wait_for("MeterValues", after=mark)
        assert triggered.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
        assert triggered.payload["transactionId"] == 1


async def test_tc_053_reservation_used_by_a_tag_of_the_same_group(tmp_path, csms: Csms):
    csms.behaviour.parents["MEMBER"] = "GROUP"
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="OWNER",
                                    parentIdTag="GROUP", reservationId=8)
        assert answer["status"] == "Accepted"
        result = await station.system.call("ocpp", "auth_validator", "validate_token", provided_token=_token("MEMBER"))
        assert result["authorization_status"] == "Accepted" and result["reservation_id"] == 8
        assert result["parent_id_token"]["value"] == "GROUP"


async def test_lists_longer_than_allowed_fail_and_leave_the_old_list(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.call("SendLocalList", listVersion=1, updateType="Full",
                           localAuthorizationList=[{"idTag": "KEEP", "idTagInfo": {"status": "Accepted"}}])
        too_many = [{"idTag": f"T{n}", "idTagInfo": {"status": "Accepted"}} for n in range(101)]  # max 100
        answer = await station.call("SendLocalList", listVersion=2, updateType="Full", localAuthorizationList=too_many)
        assert answer["status"] == "Failed"
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 1
        assert station.ocpp.cp.local_auth.info("KEEP") == {"status": "Accepted"}
