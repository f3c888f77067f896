"""Hundreds of mutated CSMS requests: every one gets a well-formed answer, none an InternalError (which
would mean a handler crashed on input the schema let through), and the link stays up."""

from __future__ import annotations

import copy
import json
import random

from everpy.csms import Csms

from .station import sil_station

VALID = {
    "ChangeAvailability": {"connectorId": 1, "type": "Inoperative"},
    "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "120"},
    "ClearCache": {},
    "DataTransfer": {"vendorId": "org.example", "messageId": "m", "data": "d"},
    "GetConfiguration": {"key": ["HeartbeatInterval"]},
    "RemoteStartTransaction": {"idTag": "FUZZ", "connectorId": 1},
    "RemoteStopTransaction": {"transactionId": 1},
    "UnlockConnector": {"connectorId": 1},
    "GetLocalListVersion": {},
    "SendLocalList": {"listVersion": 3, "updateType": "Differential",
                      "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}]},
    "CancelReservation": {"reservationId": 1},
    "ReserveNow": {"connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z", "idTag": "R", "reservationId": 1},
    "TriggerMessage": {"requestedMessage": "Heartbeat"},
    "ClearChargingProfile": {"id": 1},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 3600},
    "SetChargingProfile": {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Recurring", "recurrencyKind": "Daily", "chargingSchedule": {
            "chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 3600, "limit": 8.0}]}}},
}
ODD_VALUES = [None, -1, 0, 2**40, 1.5, "", "x" * 300, [], {}, True, "2026-13-45T99:99:99Z", "Accepted"]
CODES = {"NotImplemented", "NotSupported", "ProtocolError", "FormationViolation", "PropertyConstraintViolation",
         "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError"}


def mutate(payload: dict, rng: random.Random) -> dict:
    payload = copy.deepcopy(payload)
    nodes = [payload]
    for node in nodes:  # collect nested objects
        for value in node.values():
            if isinstance(value, dict):
                nodes.append(value)
            elif isinstance(value, list):
                nodes += [v for v in value if isinstance(v, dict)]
    target = rng.choice(nodes)
    choice = rng.random()
    if target and choice < 0.4:
        target[rng.choice(list(target))] = rng.choice(ODD_VALUES)
    elif target and choice < 0.6:
        del target[rng.choice(list(target))]
    elif choice < 0.8:
        target[rng.choice(["extra", "connectorId", "idTag", "limit"])] = rng.choice(ODD_VALUES)
    return payload


async def test_mutated_requests_get_well_formed_answers_and_no_internal_error(tmp_path, csms: Csms):
    rng = random.Random(1234)
    async with sil_station(tmp_path, csms):
        for n in range(300):
            action = rng.choice(list(VALID))
            payload = mutate(VALID[action], rng) if rng.random() < 0.9 else VALID[action]
            unique_id = f"fuzz-{n}"
            await csms.send_raw("CP1", json.dumps([2, unique_id, action, payload]))
            reply = await csms.wait_raw_reply("CP1", unique_id)
            assert reply[0] in (3, 4), reply
            if reply[0] == 3:
                assert isinstance(reply[2], dict)
            else:
                assert reply[2] in CODES, (action, payload, reply)
        await csms.send_raw("CP1", '[2,"last","ClearCache",{}]')
        assert await csms.wait_raw_reply("CP1", "last") == [3, "last", {"status": "Accepted"}]
        assert csms.connections == 1
