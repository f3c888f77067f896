"""Replies to malformed and unexpected CSMS frames follow OCPP-J 1.6 §4.2.3; the link stays up."""

from __future__ import annotations

import pytest

from everpy.csms import Csms

from .station import sil_station

CASES = [
    ('[2,"e1","FlyToTheMoon",{}]', "NotImplemented"),  # not an OCPP action
    ('[2,"e2","BootNotification",{"chargePointVendor":"x","chargePointModel":"y"}]', "NotSupported"),
    ('[2,"e3","ChangeConfiguration",{"key":"HeartbeatInterval"}]', "ProtocolError"),  # value missing
    ('[2,"e4","Reset",{"type":"Medium"}]', "PropertyConstraintViolation"),  # not in the enum
    ('[2,"e5","Reset",{"type":"Soft","force":true}]', "FormationViolation"),  # extra property
    ('[2,"e6","UnlockConnector",{"connectorId":"one"}]', "TypeConstraintViolation"),
    ('[2,"e7","GetConfiguration",[]]', "FormationViolation"),  # payload not an object
    ('[2,"e8","ChangeConfiguration",{"key":"' + "K" * 51 + '","value":"1"}]', "TypeConstraintViolation"),
    ('[2,"e9","ReserveNow",{"connectorId":1,"expiryDate":"tomorrow","idTag":"A","reservationId":1}]',
     "TypeConstraintViolation"),
    ('[2,"e10","SendLocalList",{"listVersion":1,"updateType":"Full","localAuthorizationList":"x"}]',
     "TypeConstraintViolation"),
]


@pytest.fixture
async def station(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as running:
        yield running


async def test_error_codes_follow_ocpp_j_16(station, csms: Csms):
    for frame, code in CASES:
        unique_id = frame.split('"')[1]
        await csms.send_raw("CP1", frame)
        reply = await csms.wait_raw_reply("CP1", unique_id)
        assert reply[0] == 4 and reply[2] == code, (frame, reply)
        assert isinstance(reply[3], str) and isinstance(reply[4], dict)


async def test_garbage_is_survived_and_the_link_stays_up(station, csms: Csms):
    connections = csms.connections
    for garbage in ("not json {", '{"an": "object"}', "[]", '[9,"u9",{}]', '[3,"nobody-asked",{}]', "\xff\xfe"):
        await csms.send_raw("CP1", garbage)
    await csms.send_raw("CP1", '[2,"after","ClearCache",{}]')
    assert await csms.wait_raw_reply("CP1", "after") == [3, "after", {"status": "Accepted"}]
    assert csms.connections == connections  # never reconnected
