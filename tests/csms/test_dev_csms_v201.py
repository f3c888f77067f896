"""The OCPP 2.0.1 development CSMS against a real station peer: an ``ocpp.v201.ChargePoint`` over a real
websocket, in-process, and ``everpy csms --ocpp 2.0.1`` as its own process."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from ocpp.charge_point import camel_to_snake_case
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from everpy.csms import common, v201
from everpy.ocpp import transport

WAIT_S = 20.0  # generous: other suites share the two cores
STATION = "CP201"
CHARGING_STATION = {"vendor_name": "everpy", "model": "TestStation"}
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


class StationPeer(ChargePoint):
    """A station peer: answers GetVariables from a dict and RequestStartTransaction with Accepted."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=WAIT_S)
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "60"}
        self.asked: list[tuple[str, dict[str, Any]]] = []

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.asked.append(("GetVariables", {"get_variable_data": get_variable_data}))
        results = []
        for data in get_variable_data:
            key = (data["component"]["name"], data["variable"]["name"])
            known = key in self.variables
            results.append({"attribute_status": "Accepted" if known else "UnknownVariable",
                            "component": data["component"], "variable": data["variable"],
                            **({"attribute_value": self.variables[key]} if known else {})})
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, **kwargs: Any) -> Any:
        self.asked.append(("RequestStartTransaction", {"id_token": id_token, "remote_start_id": remote_start_id}))
        return call_result.RequestStartTransaction(status="Accepted")

    async def boot(self) -> Any:
        return await self.call(call.BootNotification(charging_station=CHARGING_STATION, reason="PowerUp"),
                               suppress=False)

    async def transaction_event(self, event_type: str, seq_no: int, transaction_id: str = "T1",
                                unique_id: str | None = None, **fields: Any) -> Any:
        request = call.TransactionEvent(event_type=event_type, timestamp=common.now(), seq_no=seq_no,
                                        trigger_reason=fields.pop("trigger_reason", "Authorized"),
                                        transaction_info={"transaction_id": transaction_id}, **fields)
        return await self.call(request, suppress=False, unique_id=unique_id)


@asynccontextmanager
async def connected_station(url: str, station_id: str = STATION) -> AsyncIterator[StationPeer]:
    connection = await transport.connect(f"{url}/{station_id}", subprotocols=["ocpp2.0.1"])
    station = StationPeer(station_id, connection)
    listening = asyncio.ensure_future(station.start())
    try:
        yield station
    finally:
        listening.cancel()
        await connection.close()


@pytest.fixture
async def csms() -> AsyncIterator[v201.Csms]:
    async with v201.Csms() as server:
        yield server


async def test_a_pending_boot_is_followed_by_an_accepted_one(csms: v201.Csms) -> None:
    csms.behaviour.boot_statuses = ["Pending", "Accepted"]
    csms.behaviour.boot_interval = 7
    async with connected_station(csms.url) as station:
        first, second = await station.boot(), await station.boot()
    assert (first.status, first.interval) == ("Pending", 7)
    assert second.status == "Accepted"
    boots = csms.messages("BootNotification", STATION)
    assert [b.payload["chargingStation"]["model"] for b in boots] == ["TestStation", "TestStation"]
    assert [(csms.answer_to(b) or {}).get("status") for b in boots] == ["Pending", "Accepted"]


async def test_transaction_events_are_recorded_by_transaction_id_and_seq_no(csms: v201.Csms) -> None:
    csms.behaviour.id_tokens = {"STOLEN": "Blocked"}
    csms.behaviour.group_id_tokens = {"ABC": "FLEET"}
    async with connected_station(csms.url) as station:
        await station.boot()
        started = await station.transaction_event("Started", 0, id_token={"id_token": "ABC", "type": "ISO14443"},
                                                  evse={"id": 1, "connector_id": 1})
        energy = {"value": 1234.0, "measurand": "Energy.Active.Import.Register"}
        updated = await station.transaction_event("Updated", 1, trigger_reason="MeterValuePeriodic", unique_id="u1",
                                                  meter_value=[{"timestamp": common.now(), "sampled_value": [energy]}])
        resent = await station.transaction_event("Updated", 1, trigger_reason="MeterValuePeriodic", unique_id="u1")
        blocked = await station.transaction_event("Updated", 2, id_token={"id_token": "STOLEN", "type": "ISO14443"})
        await station.transaction_event("Ended", 3, trigger_reason="StopAuthorized")
        await station.transaction_event("Started", 0, transaction_id="T2")
        await station.transaction_event("Ended", 2, transaction_id="T2")

    assert started.id_token_info == {"status": "Accepted", "group_id_token": {"id_token": "FLEET", "type": "Central"}}
    assert updated.id_token_info is None and resent.id_token_info is None
    assert blocked.id_token_info == {"status": "Blocked"}
    first = csms.transaction("T1")
    assert first.seq_nos == [0, 1, 1, 2, 3]
    assert first.event_types == ["Started", "Updated", "Updated", "Updated", "Ended"] and first.ended
    assert first.repeated_seq_nos() == [1] and first.missing_seq_nos() == []
    assert [r.unique_id for r in csms.duplicates()] == ["u1"]
    assert csms.transaction("T2", STATION).missing_seq_nos() == [1]
    assert (await csms.wait_transaction("T2", "Ended", timeout=WAIT_S)).seq_nos == [0, 2]
    with pytest.raises(KeyError):
        csms.transaction("T3")


async def test_an_injected_failure_makes_the_station_resend_the_same_seq_no(csms: v201.Csms) -> None:
    csms.behaviour.fail["TransactionEvent"] = 1
    async with connected_station(csms.url) as station:
        with pytest.raises(Exception, match="injected failure"):
            await station.transaction_event("Started", 0, id_token={"id_token": "ABC", "type": "ISO14443"})
        again = await station.transaction_event("Started", 0, id_token={"id_token": "ABC", "type": "ISO14443"})
    assert again.id_token_info == {"status": "Accepted"}
    assert csms.transaction("T1").repeated_seq_nos() == [0]
    assert csms.duplicates() == []  # a resend after a CALLERROR is a new message, not the same unique id again


async def test_a_silenced_message_is_recorded_but_not_answered(csms: v201.Csms) -> None:
    csms.behaviour.silent["Heartbeat"] = 1
    async with connected_station(csms.url) as station:
        station._response_timeout = 0.3  # the silence is the point: a short bound on an answer that must not come
        with pytest.raises(TimeoutError):
            await station.call(call.Heartbeat(), suppress=False)
        station._response_timeout = WAIT_S
        assert (await station.call(call.Heartbeat(), suppress=False)).current_time
    silenced, answered = csms.messages("Heartbeat")
    assert csms.answer_to(silenced) is None and csms.answer_to(answered) is not None


NOW = "2026-01-01T00:00:00Z"
COMPONENT = {"component": {"name": "EVSE"}, "variable": {"name": "Power"}}
SCHEDULE = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}]}
# A schema-valid request of every station message the CSMS does not get elsewhere in this file.
STATION_MESSAGES: dict[str, dict[str, Any]] = {
    "Heartbeat": {},
    "StatusNotification": {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    "Authorize": {"idToken": {"idToken": "ABC", "type": "ISO14443"}},
    "MeterValues": {"evseId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [
        {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}]}]},
    "NotifyEvent": {"generatedAt": NOW, "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": NOW, "trigger": "Delta", "actualValue": "7400", "eventNotificationType":
        "HardWiredNotification", **COMPONENT}]},
    "NotifyMonitoringReport": {"requestId": 3, "seqNo": 0, "generatedAt": NOW, "monitor": [{**COMPONENT,
        "variableMonitoring": [{"id": 1, "transaction": False, "value": 1.0, "type": "Delta", "severity": 5}]}]},
    "NotifyCustomerInformation": {"data": "none", "seqNo": 0, "generatedAt": NOW, "requestId": 4},
    "ReportChargingProfiles": {"requestId": 5, "chargingLimitSource": "CSO", "evseId": 1, "chargingProfile": [{
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [SCHEDULE]}]},
    "SecurityEventNotification": {"type": "SettingSystemTime", "timestamp": NOW},
    "SignCertificate": {"csr": "-----BEGIN CERTIFICATE REQUEST-----"},
    "FirmwareStatusNotification": {"status": "Installed", "requestId": 1},
    "PublishFirmwareStatusNotification": {"status": "Published", "location": ["http://x/f"], "requestId": 2},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 6},
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1},
    "ClearedChargingLimit": {"chargingLimitSource": "EMS", "evseId": 1},
    "NotifyEVChargingNeeds": {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"}},
    "NotifyEVChargingSchedule": {"timeBase": NOW, "evseId": 1, "chargingSchedule": SCHEDULE},
    "NotifyDisplayMessages": {"requestId": 7},
    "ReservationStatusUpdate": {"reservationId": 9, "reservationUpdateStatus": "Expired"},
    "DataTransfer": {"vendorId": "everpy", "messageId": "echo", "data": "ping"},
    "Get15118EVCertificate": {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                              "exiRequest": "AA=="},
    "GetCertificateStatus": {"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "a",
                                                 "issuerKeyHash": "b", "serialNumber": "1", "responderURL": "http://o"}},
}


async def test_every_station_message_gets_a_schema_valid_answer(csms: v201.Csms) -> None:
    answers: dict[str, Any] = {}
    async with connected_station(csms.url) as station:
        handled = set((await csms.wait_connected(STATION, WAIT_S)).route_map)
        for action, payload in STATION_MESSAGES.items():
            # suppress=False raises on a CALLERROR; the library checks the answer against its schema
            await station.call(getattr(call, action)(**camel_to_snake_case(payload)), suppress=False)
            answers[action] = csms.answer_to(csms.messages(action)[-1])
    assert handled == set(STATION_MESSAGES) | {"BootNotification", "TransactionEvent", "NotifyReport"}
    assert answers["DataTransfer"] == {"status": "Accepted", "data": "ping"}
    assert answers["SignCertificate"] == {"status": "Accepted"}
    assert answers["Authorize"] == {"idTokenInfo": {"status": "Accepted"}}
    # No PKI, no OCSP responder, no schedule computed: said plainly rather than made up.
    assert answers["Get15118EVCertificate"]["status"] == "Failed"
    assert answers["GetCertificateStatus"]["status"] == "Failed"
    assert answers["NotifyEVChargingNeeds"] == {"status": "Rejected"}
    assert (await csms.wait_report(3, "NotifyMonitoringReport", timeout=WAIT_S)).items("monitor")[0]["component"] \
        == {"name": "EVSE"}


async def test_a_report_in_parts_is_collected_by_request_id(csms: v201.Csms) -> None:
    def part(seq_no: int, tbc: bool, name: str) -> Any:
        return call.NotifyReport(request_id=42, generated_at=common.now(), seq_no=seq_no, tbc=tbc, report_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name},
             "variable_attribute": [{"value": "1"}]}])

    async with connected_station(csms.url) as station:
        await station.call(part(0, True, "HeartbeatInterval"), suppress=False)
        with pytest.raises(TimeoutError):  # tbc: not complete yet
            await csms.wait_report(42, timeout=0.2)
        await station.call(part(1, False, "MessageTimeout"), suppress=False)
        report = await csms.wait_report(42, timeout=WAIT_S)
    assert report.seq_nos == [0, 1]
    assert [item["variable"]["name"] for item in report.items("reportData")] == ["HeartbeatInterval", "MessageTimeout"]


async def test_a_csms_call_round_trips_and_its_errors_say_what_went_wrong(csms: v201.Csms) -> None:
    async with connected_station(csms.url) as station:
        answer = await csms.call(STATION, "GetVariables", {"getVariableData": [HEARTBEAT]})
        assert answer["getVariableResult"] == [{"attributeStatus": "Accepted", "attributeValue": "60", **HEARTBEAT}]
        started = await csms.call(STATION, "RequestStartTransaction", {
            "idToken": {"idToken": "ABC", "type": "ISO14443"}, "remoteStartId": 5, "evseId": 1})
        assert started == {"status": "Accepted"}
        assert station.asked[1] == ("RequestStartTransaction",
                                    {"id_token": {"id_token": "ABC", "type": "ISO14443"}, "remote_start_id": 5})
        with pytest.raises(common.StationCallError) as refused:
            await csms.call(STATION, "Reset", {"type": "Immediate"})  # the test station has no handler
        assert refused.value.code == "NotImplemented"
        with pytest.raises(common.RequestError, match="remoteStartId"):
            await csms.call(STATION, "RequestStartTransaction", {"idToken": {"idToken": "ABC", "type": "ISO14443"}})
        assert len(station.asked) == 2  # the payload broke the schema: nothing was sent
        assert csms.last_answer(STATION, "GetVariables")["getVariableResult"][0]["attributeValue"] == "60"


async def test_the_http_api_sends_get_variables_to_the_connected_station(csms: v201.Csms) -> None:
    runner = await common.http_api(csms, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with connected_station(csms.url), aiohttp.ClientSession() as http:
            await csms.wait_connected(STATION, WAIT_S)

            async def post(path: str, body: str) -> tuple[int, Any]:
                async with http.post(f"{base}/stations/{path}", data=body) as response:
                    return response.status, await response.json()

            async with http.get(f"{base}/stations") as response:
                assert await response.json() == [STATION]
            ok = await post(f"{STATION}/GetVariables", json.dumps({"getVariableData": [HEARTBEAT]}))
            assert ok == (200, {"result": {"getVariableResult": [
                {"attributeStatus": "Accepted", "attributeValue": "60", **HEARTBEAT}]}})
            assert await post(f"{STATION}/Unknown", "{}") == (404, {"error": "OCPP 2.0.1 has no request Unknown"})
            assert await post("CP9/GetVariables", "{}") == (404, {"error": "CP9 is not connected"})
            status, bad = await post(f"{STATION}/GetVariables", json.dumps({"getVariableData": [{"bogus": 1}]}))
            assert status == 400 and bad["error"].startswith("GetVariables does not fit the OCPP 2.0.1 schema: ")
            assert (await post(f"{STATION}/GetVariables", "{not json"))[0] == 400
            assert (await post(f"{STATION}/GetVariables", "[1]")) == (
                400, {"error": "the payload of GetVariables must be a JSON object"})
            assert (await post(f"{STATION}/BootNotification", "{}")) == (
                400, {"error": "BootNotification is a message stations send, not a request to them"})
            status, refused = await post(f"{STATION}/Reset", json.dumps({"type": "Immediate"}))
            assert status == 502 and "CALLERROR NotImplemented" in refused["error"]
    finally:
        await runner.cleanup()


async def test_everpy_csms_ocpp_2_0_1_accepts_a_boot_and_takes_http_commands() -> None:
    """With --insecure-local the HTTP API takes commands without a token (and says so in its log)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from everpy.cli import main; sys.exit(main(['csms', *sys.argv[1:]]))",
        "--ocpp", "2.0.1", "--port", "0", "--http-port", "0", "--insecure-local", stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []

    async def read_until(pattern: str) -> re.Match[str]:
        async with asyncio.timeout(WAIT_S):
            while True:
                for line in lines:
                    if found := re.search(pattern, line):
                        return found
                raw = await process.stderr.readline()  # type: ignore[union-attr]
                assert raw, "".join(lines)
                lines.append(raw.decode())

    try:
        ws_url = (await read_until(r"CSMS listening on (ws://\S+) \(OCPP 2\.0\.1\)")).group(1)
        http_port = int((await read_until(r"POST http://127\.0\.0\.1:(\d+)/")).group(1))
        assert any("without a token (--insecure-local)" in line for line in lines)
        async with connected_station(ws_url) as station:
            assert (await station.boot()).status == "Accepted"
            await read_until(r"CP201 boot \(PowerUp\): everpy TestStation -> Accepted")
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{http_port}/stations/{STATION}/GetVariables"
                async with http.post(url, data=json.dumps({"getVariableData": [HEARTBEAT]})) as response:
                    assert (await response.json())["result"]["getVariableResult"][0]["attributeValue"] == "60"
    finally:
        process.terminate()
        await process.wait()


async def test_everpy_csms_help_names_the_version_option_and_the_http_api() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from everpy.cli import main; sys.exit(main(['csms', '--help']))",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), WAIT_S)
    text = out.decode()
    assert "--ocpp {1.6,2.0.1}" in text
    assert "POST /stations/<id>/<Action>" in text and "GET  /stations" in text
