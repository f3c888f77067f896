"""Hundreds of mutated 2.0.1 CSMS requests against the SIL charger (its own process, the development CSMS,
a real websocket): each one gets a CALLRESULT valid for the official response schema or a 2.0.1 CALLERROR,
never InternalError (a handler that crashed on input the schema let through); the link stays up; and the
state all that left in the store does not stop the next start (the station boots and answers)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from everpy.csms import v201
from everpy.ocpp.rpc import OcppCallError
from everpy.ocpp.v201.dialect import DIALECT

from .dev_station import STATION, station_at

pytestmark = pytest.mark.slow

TOKEN = {"idToken": "FUZZ", "type": "ISO14443"}
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
PROFILE = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
           "chargingProfileKind": "Absolute", "chargingSchedule": [{
               "id": 1, "chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 600, "limit": 8.0}]}]}
HASH = {"hashAlgorithm": "SHA256", "issuerNameHash": "ab", "issuerKeyHash": "cd", "serialNumber": "01"}
VALID: dict[str, dict[str, Any]] = {
    "GetVariables": {"getVariableData": [HEARTBEAT]},
    "SetVariables": {"setVariableData": [{**HEARTBEAT, "attributeValue": "120"}]},
    "GetBaseReport": {"requestId": 1, "reportBase": "SummaryInventory"},
    "GetReport": {"requestId": 2, "componentVariable": [{"component": {"name": "OCPPCommCtrlr"}}]},
    "ChangeAvailability": {"operationalStatus": "Inoperative", "evse": {"id": 1}},
    "ClearCache": {},
    "DataTransfer": {"vendorId": "org.example", "messageId": "m", "data": "d"},
    "RequestStartTransaction": {"idToken": TOKEN, "remoteStartId": 3, "evseId": 1},
    "RequestStopTransaction": {"transactionId": "no-such-transaction"},
    "UnlockConnector": {"evseId": 1, "connectorId": 1},
    "TriggerMessage": {"requestedMessage": "Heartbeat"},
    "GetTransactionStatus": {"transactionId": "t"},
    "GetLocalListVersion": {},
    "SendLocalList": {"versionNumber": 3, "updateType": "Differential",
                      "localAuthorizationList": [{"idToken": TOKEN, "idTokenInfo": {"status": "Accepted"}}]},
    "ReserveNow": {"id": 1, "expiryDateTime": "2099-01-01T00:00:00Z", "idToken": TOKEN, "evseId": 1},
    "CancelReservation": {"reservationId": 1},
    "SetChargingProfile": {"evseId": 1, "chargingProfile": PROFILE},
    "GetChargingProfiles": {"requestId": 4, "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"}},
    "ClearChargingProfile": {"chargingProfileId": 1},
    "GetCompositeSchedule": {"duration": 3600, "evseId": 1, "chargingRateUnit": "A"},
    "InstallCertificate": {"certificateType": "CSMSRootCertificate", "certificate": "-----BEGIN CERTIFICATE-----"},
    "GetInstalledCertificateIds": {"certificateType": ["CSMSRootCertificate"]},
    "DeleteCertificate": {"certificateHashData": HASH},
    "CertificateSigned": {"certificateChain": "-----BEGIN CERTIFICATE-----"},
    "SetNetworkProfile": {"configurationSlot": 1, "connectionData": {
        "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": "ws://127.0.0.1:1/ocpp",
        "messageTimeout": 30, "securityProfile": 0, "ocppInterface": "Wired0"}},
    "CustomerInformation": {"requestId": 5, "report": True, "clear": False, "idToken": TOKEN},
    "GetLog": {"logType": "DiagnosticsLog", "requestId": 6, "log": {"remoteLocation": "ftp://127.0.0.1:1/x"}},
    "UpdateFirmware": {"requestId": 7, "retries": 0, "firmware": {
        "location": "http://127.0.0.1:1/fw.bin", "retrieveDateTime": "2099-01-01T00:00:00Z",
        "signingCertificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}},
}
ODD_VALUES: list[Any] = [None, -1, 0, 2**40, -(2**31), 1.5, 1e308, "", "x" * 600, [], [{}], {}, True,
                         "2026-13-45T99:99:99Z", "Accepted", {"a": {"b": {"c": [1, [2, [3]]]}}}]
CODES = {"NotImplemented", "NotSupported", "ProtocolError", "FormatViolation", "PropertyConstraintViolation",
         "OccurrenceConstraintViolation", "TypeConstraintViolation", "GenericError", "SecurityError"}


def mutate(payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One change at a random place of a valid payload: a field set to an odd value, removed, or added."""
    payload = copy.deepcopy(payload)
    objects = [payload]
    for node in objects:
        for value in node.values():
            if isinstance(value, dict):
                objects.append(value)
            elif isinstance(value, list):
                objects += [item for item in value if isinstance(item, dict)]
    target, roll = rng.choice(objects), rng.random()
    if target and roll < 0.5:
        target[rng.choice(list(target))] = rng.choice(ODD_VALUES)
    elif target and roll < 0.7:
        del target[rng.choice(list(target))]
    else:
        target[rng.choice(["customData", "evseId", "id", "limit", "extra"])] = rng.choice(ODD_VALUES)
    return payload


def answer_problem(action: str, reply: list[Any]) -> str | None:
    if reply[0] == 3:
        try:
            DIALECT.check(action, reply[2], response=True, bounds=False)
        except OcppCallError as error:
            return f"the CALLRESULT breaks the {action} response schema: {error}"
        return None
    if reply[0] == 4 and reply[2] in CODES and isinstance(reply[3], str) and isinstance(reply[4], dict):
        return None
    return f"not a well-formed answer: {reply}"


async def test_mutated_requests_get_valid_answers_and_the_station_starts_again(tmp_path: Path):
    rng = random.Random(201)
    async with v201.Csms() as csms:
        async with station_at(tmp_path, csms) as station:
            problems = []
            for n in range(300):
                action = rng.choice(sorted(VALID))
                payload = mutate(VALID[action], rng) if rng.random() < 0.9 else VALID[action]
                unique_id = f"fuzz-{n}"
                await csms.send_raw(STATION, json.dumps([2, unique_id, action, payload]))
                reply = await csms.wait_raw_reply(STATION, unique_id)
                if (problem := answer_problem(action, reply)) is not None:
                    problems.append((action, payload, problem))
            await csms.send_raw(STATION, '[2,"last","ClearCache",{}]')
            assert await csms.wait_raw_reply(STATION, "last") == [3, "last", {"status": "Accepted"}]
            assert csms.connections == 1
        assert problems == [], station.log()
        mark = len(csms.received)
        async with station_at(tmp_path, csms) as again:  # the same store, whatever the fuzz left in it
            boot = await csms.wait_for("BootNotification", after=mark)
            read = await csms.call(STATION, "GetVariables", {"getVariableData": [HEARTBEAT]})
    assert boot.payload["reason"] in ("PowerUp", "RemoteReset", "Unknown"), again.log()
    assert read["getVariableResult"][0]["attributeStatus"] == "Accepted"
