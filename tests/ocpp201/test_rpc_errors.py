"""Replies to malformed and unexpected CSMS frames follow OCPP-J 2.0.1 §4.2-4.3 (its error codes, with 2.0.1's
spellings FormatViolation and OccurrenceConstraintViolation, RpcFrameworkError and MessageTypeNotSupported);
the link stays up. The SIL charger of config/sil-ocpp201.yaml as its own process, the development CSMS
sending raw frames over a real websocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from everpy.csms import v201

from .dev_station import STATION, station_at

pytestmark = pytest.mark.slow

VARIABLE = '{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}'

CASES = [
    ('[2,"e1","FlyToTheMoon",{}]', "NotImplemented"),  # not an OCPP 2.0.1 action
    ('[2,"e2","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m","vendorName":"v"}}]',
     "NotSupported"),  # an action of the other direction
    ('[2,"e3","Reset",{}]', "ProtocolError"),  # type missing
    ('[2,"e4","Reset",{"type":"Medium"}]', "PropertyConstraintViolation"),  # not in the enum
    ('[2,"e5","Reset",{"type":"OnIdle","force":true}]', "FormatViolation"),  # extra property
    ('[2,"e6","GetVariables",[]]', "FormatViolation"),  # payload not an object
    ('[2,"e7","UnlockConnector",{"evseId":"one","connectorId":1}]', "TypeConstraintViolation"),
    ('[2,"e8","GetVariables",{"getVariableData":[]}]', "OccurrenceConstraintViolation"),  # minItems 1
    ('[2,"e9","ReserveNow",{"id":1,"expiryDateTime":"tomorrow","idToken":{"idToken":"A","type":"ISO14443"}}]',
     "TypeConstraintViolation"),  # not a dateTime
    ('[2,"e10","SetVariables",{"setVariableData":[{"attributeValue":"' + "9" * 1001 + '",'
     '"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}]}]',
     "TypeConstraintViolation"),  # attributeValue longer than 1000
    ('[2,"e11","GetVariables",{"getVariableData":[' + VARIABLE + '],"customData":{"vendorId":"x","extra":1}}]',
     None),  # customData may carry anything beside its vendorId: answered
    ('[7,"e12",{}]', "MessageTypeNotSupported"),  # a message type 2.0.1 does not know, its id readable
]


@pytest.fixture
async def csms_and_station(tmp_path: Path) -> AsyncIterator[v201.Csms]:
    async with v201.Csms() as csms, station_at(tmp_path, csms):
        yield csms


async def test_error_codes_follow_ocpp_j_201(csms_and_station: v201.Csms):
    csms = csms_and_station
    for frame, code in CASES:
        unique_id = frame.split('"')[1]
        await csms.send_raw(STATION, frame)
        reply = await csms.wait_raw_reply(STATION, unique_id)
        if code is None:
            assert reply[0] == 3, (frame, reply)
            continue
        assert reply[0] == 4 and reply[2] == code, (frame, reply)
        assert isinstance(reply[3], str) and isinstance(reply[4], dict)


async def test_frames_that_are_no_rpc_are_answered_rpc_framework_error_and_the_link_stays_up(
        csms_and_station: v201.Csms):
    """OCPP-J 2.0.1 §4.2.3: a frame that is no valid RPC message gets RpcFrameworkError; when its message id
    cannot be read, with the id "-1". A CALLRESULT nobody asked for is ignored."""
    csms = csms_and_station
    connections = csms.connections
    await csms.send_raw(STATION, "not json {")
    reply = await csms.wait_raw_reply(STATION, "-1")
    assert reply[0] == 4 and reply[2] == "RpcFrameworkError", reply
    for garbage in ('{"an": "object"}', "[]", '[3,"nobody-asked",{}]', "\xff\xfe"):
        await csms.send_raw(STATION, garbage)
    await csms.send_raw(STATION, '[2,"after","ClearCache",{}]')
    assert await csms.wait_raw_reply(STATION, "after") == [3, "after", {"status": "Accepted"}]
    assert csms.connections == connections  # never reconnected
