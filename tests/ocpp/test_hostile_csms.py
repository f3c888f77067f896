"""A hostile CSMS over the real websocket: values beyond OCPP's ranges, runaway nesting, non-JSON numbers,
lists longer than the station advertises, absurd dates and absurd answers.

Each request gets the OCPP-J 1.6 CALLERROR (or a Rejected/Failed status), the link stays up (the next
normal call is answered on the same connection, the CSMS saw one connection), and nothing is persisted
that would stop the next start: the station restarts on the same state and answers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from everpy.csms import Csms

from .station import WAIT_S, Station, sil_station

CONNECTED = "CP1"


def profile(limit: str = "16.0", profile_id: str = "1") -> str:
    """A SetChargingProfile payload as JSON text, with the limit and profile id spelled as given."""
    return (
        '{"connectorId":1,"csChargingProfiles":{"chargingProfileId":' + profile_id + ',"stackLevel":0,'
        '"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":'
        '{"chargingRateUnit":"A","startSchedule":"2026-01-01T00:00:00Z","chargingSchedulePeriod":'
        '[{"startPeriod":0,"limit":' + limit + '}]}}}'
    )


async def ask(csms: Csms, unique_id: str, action: str, payload: str) -> list[Any]:
    """Send one CALL as raw text and return the station's answer frame."""
    await csms.send_raw(CONNECTED, f'[2,"{unique_id}","{action}",{payload}]')
    return await csms.wait_raw_reply(CONNECTED, unique_id, WAIT_S)


async def link_is_up(csms: Csms, tag: str, connections: int = 1) -> None:
    """A normal GetConfiguration is answered, and the station never reconnected."""
    reply = await ask(csms, f"alive-{tag}", "GetConfiguration", '{"key":["HeartbeatInterval"]}')
    assert reply[0] == 3, reply
    assert reply[2]["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert csms.connections == connections, "the station reconnected"


def store_intact(station: Station, tmp_path: Path) -> None:
    """What was done left the OCPP store usable: not kept aside, not in memory."""
    assert not list(tmp_path.glob("ocpp.db.damaged-*"))
    assert station.ocpp.active_errors("main") == []


@asynccontextmanager
async def restarted(tmp_path: Path, csms: Csms, **kwargs: Any) -> AsyncIterator[Station]:
    """The station started again on the same state: it boots, reports its connector and answers."""
    mark, connections = len(csms.received), csms.connections
    async with sil_station(tmp_path, csms, wait_boot=False, **kwargs) as station:
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        await link_is_up(csms, f"restart-{mark}", connections + 1)
        store_intact(station, tmp_path)
        yield station


def expect_error(reply: list[Any], unique_id: str, code: str, case: str) -> None:
    assert reply[0] == 4 and reply[1] == unique_id and reply[2] == code, (case, reply)
    assert isinstance(reply[3], str) and isinstance(reply[4], dict), (case, reply)


# -- values beyond the 32-bit integers of OCPP ----------------------------------------------------------
BIG_INTEGERS = [
    ("ChangeAvailability", '{"connectorId":' + str(2**40) + ',"type":"Inoperative"}'),
    ("ReserveNow", '{"connectorId":1,"expiryDate":"2099-01-01T00:00:00Z","idTag":"R","reservationId":'
     + str(2**63) + "}"),
    ("GetCompositeSchedule", '{"connectorId":1,"duration":' + str(2**31) + "}"),
    ("SetChargingProfile", profile(profile_id=str(2**53))),
    ("RemoteStopTransaction", '{"transactionId":' + str(-(2**31) - 1) + "}"),
    # beyond a double: the error's own description must not fail on it
    ("ChangeAvailability", '{"connectorId":' + str(10**400) + ',"type":"Inoperative"}'),
    ("SetChargingProfile", profile(limit=str(10**400))),
]


async def test_integers_beyond_32_bits_are_property_constraint_violations(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        for n, (action, payload) in enumerate(BIG_INTEGERS):
            unique_id = f"big-{n}"
            expect_error(await ask(csms, unique_id, action, payload), unique_id, "PropertyConstraintViolation",
                         f"{action} {payload[:80]}")
            await link_is_up(csms, unique_id)
        store_intact(station, tmp_path)
    async with restarted(tmp_path, csms):
        pass


# -- numbers of any size in a multipleOf field --------------------------------------------------------
PROPERTY, FORMATION = "PropertyConstraintViolation", "FormationViolation"
LIMITS = [
    ("1e400", PROPERTY), ("1e-400", PROPERTY), ("123456789012345678901234567890.1", PROPERTY),
    ("-1e400", PROPERTY), ("9" * 1000 + ".5", PROPERTY), ("0." + "0" * 1000 + "1", PROPERTY),
    # beyond the decimal context: abs() overflows, and multipleOf would call 1E-999999999 a multiple of 0.1
    ("1E+999999999", PROPERTY), ("1E-999999999", PROPERTY),
    ("1" + "0" * 5000, FORMATION),  # more digits than Python parses as an integer: not valid JSON to us
]


async def test_numbers_of_any_size_in_a_multiple_of_field_get_a_callerror(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        for n, (limit, code) in enumerate(LIMITS):
            unique_id = f"limit-{n}"
            reply = await ask(csms, unique_id, "SetChargingProfile", profile(limit=limit))
            expect_error(reply, unique_id, code, limit[:40])
            await link_is_up(csms, unique_id)
        # a sane limit is still accepted on the same link
        reply = await ask(csms, "sane", "SetChargingProfile", profile(limit="16.1"))
        assert reply == [3, "sane", {"status": "Accepted"}]
        store_intact(station, tmp_path)
    async with restarted(tmp_path, csms):
        pass


# -- runaway nesting, non-JSON numbers ----------------------------------------------------------------
async def test_nesting_10000_deep_is_a_formation_violation_with_the_calls_id(tmp_path, csms: Csms):
    deep_list = "[" * 10000 + "]" * 10000
    deep_object = '{"a":' * 10000 + "1" + "}" * 10000
    cases = [
        ("deep-list", "DataTransfer", '{"vendorId":"x","data":' + deep_list + "}"),
        ("deep-object", "DataTransfer", '{"vendorId":"x","data":' + deep_object + "}"),
        ("deep-500", "ChangeConfiguration", '{"key":"K","value":' + "[" * 500 + "]" * 500 + "}"),
        ("deep-profile", "SetChargingProfile", profile(limit="[" * 10000 + "]" * 10000)),
    ]
    async with sil_station(tmp_path, csms) as station:
        for unique_id, action, payload in cases:
            expect_error(await ask(csms, unique_id, action, payload), unique_id, "FormationViolation", unique_id)
            await link_is_up(csms, unique_id)
        store_intact(station, tmp_path)


async def test_nan_and_infinity_literals_get_a_callerror(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms):
        for n, literal in enumerate(("NaN", "Infinity", "-Infinity")):
            unique_id = f"const-{n}"
            reply = await ask(csms, unique_id, "SetChargingProfile", profile(limit=literal))
            expect_error(reply, unique_id, "FormationViolation", literal)
            await link_is_up(csms, unique_id)


async def test_strings_that_are_not_unicode_get_a_callerror_not_an_internal_error(tmp_path, csms: Csms):
    """A lone surrogate is valid JSON syntax but no character: it cannot be stored or compared."""
    cases = [
        ("SendLocalList", '{"listVersion":5,"updateType":"Full","localAuthorizationList":'
         '[{"idTag":"\\ud800","idTagInfo":{"status":"Accepted"}}]}'),
        ("ChangeConfiguration", '{"key":"HeartbeatInterval","value":"\\udfff"}'),
        ("ReserveNow", '{"connectorId":1,"expiryDate":"2099-01-01T00:00:00Z","idTag":"\\ud800","reservationId":7}'),
    ]
    async with sil_station(tmp_path, csms) as station:
        for n, (action, payload) in enumerate(cases):
            unique_id = f"surrogate-{n}"
            reply = await ask(csms, unique_id, action, payload)
            expect_error(reply, unique_id, "TypeConstraintViolation", action)  # never InternalError
            await link_is_up(csms, unique_id)
        store_intact(station, tmp_path)
    async with restarted(tmp_path, csms):
        pass


# -- lists longer than the station advertises ----------------------------------------------------------
async def advertised(station: Station, key: str) -> int:
    answer = await station.call("GetConfiguration", key=[key])
    return int(answer["configurationKey"][0]["value"])


async def test_more_keys_than_get_configuration_max_keys_is_an_occurence_violation(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        most = await advertised(station, "GetConfigurationMaxKeys")
        keys = json.dumps([f"Key{n}" for n in range(most + 1)])
        expect_error(await ask(csms, "keys", "GetConfiguration", '{"key":' + keys + "}"), "keys",
                     "OccurenceConstraintViolation", "GetConfiguration")
        keys = json.dumps(["HeartbeatInterval"] * most)
        reply = await ask(csms, "keys-ok", "GetConfiguration", '{"key":' + keys + "}")
        assert reply[0] == 3, reply
        await link_is_up(csms, "keys")


async def test_send_local_list_longer_than_its_maximum_fails(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        most = await advertised(station, "SendLocalListMaxLength")
        entries = [{"idTag": f"T{n}", "idTagInfo": {"status": "Accepted"}} for n in range(most + 1)]
        payload = json.dumps({"listVersion": 2, "updateType": "Full", "localAuthorizationList": entries})
        assert await ask(csms, "list", "SendLocalList", payload) == [3, "list", {"status": "Failed"}]
        assert await ask(csms, "version", "GetLocalListVersion", "{}") == [3, "version", {"listVersion": 0}]
        await link_is_up(csms, "list")


# -- dates ------------------------------------------------------------------------------------------------
async def test_reservation_until_year_9999_is_accepted_and_survives_a_restart(tmp_path, csms: Csms):
    reserve = '{"connectorId":1,"expiryDate":"9999-12-31T23:59:59Z","idTag":"FAR","reservationId":42}'
    async with sil_station(tmp_path, csms) as station:
        mark = len(csms.received)
        assert await ask(csms, "far", "ReserveNow", reserve) == [3, "far", {"status": "Accepted"}]
        await station.status("Reserved", after=mark)
        await link_is_up(csms, "far")
        store_intact(station, tmp_path)
    async with restarted(tmp_path, csms):
        # the reservation is still known, and can be ended
        assert await ask(csms, "cancel", "CancelReservation", '{"reservationId":42}') == [
            3, "cancel", {"status": "Accepted"}]
    async with restarted(tmp_path, csms):
        pass


async def test_reservation_expiring_in_the_past_is_rejected(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms):
        for n, when in enumerate(("2000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00")):
            payload = '{"connectorId":1,"expiryDate":"' + when + '","idTag":"OLD","reservationId":' + str(n) + "}"
            assert await ask(csms, f"old-{n}", "ReserveNow", payload) == [3, f"old-{n}", {"status": "Rejected"}]
        await link_is_up(csms, "old")


# -- absurd answers of the CSMS ---------------------------------------------------------------------------
async def test_start_transaction_answered_with_a_64_bit_id_is_retried_then_dropped_and_charging_goes_on(
        tmp_path, csms: Csms):
    csms._transaction_ids = itertools.count(2**40)  # every StartTransaction.conf carries transactionId 2**40
    keys = {"TransactionMessageAttempts": "3", "MeterValueSampleInterval": "1"}
    async with sil_station(tmp_path, csms, keys=keys) as station:
        await station.charging()
        await csms.wait_until(lambda: len(csms.messages("StartTransaction")) >= 3, WAIT_S)
        starts = csms.messages("StartTransaction")
        assert len({r.unique_id for r in starts}) == 1  # the same message, attempted three times
        last = csms.received.index(starts[-1])
        # the queue moved on: meter values after the dropped start, for a transaction the CSMS never confirmed
        values = await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == -1, WAIT_S, after=last)
        await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == -1, WAIT_S,
                            after=csms.received.index(values) + 1)
        assert len(csms.messages("StartTransaction")) == 3  # dropped: never sent a fourth time
        events = [e["event"] for e in station.evse_events.values]
        assert "TransactionStarted" in events and "TransactionFinished" not in events
        assert (await station.system.call("evse", "evse", "get_session"))["transaction"]
        await link_is_up(csms, "tx")
        store_intact(station, tmp_path)
    csms._transaction_ids = itertools.count(1)
    async with restarted(tmp_path, csms):
        # the transaction open at the kill is stopped (PowerLoss) with the id the CSMS never confirmed
        stop = await csms.wait_for("StopTransaction", timeout=WAIT_S, after=last)
        assert stop.payload["transactionId"] == -1


async def test_boot_interval_of_2_31_minus_1_caps_the_heartbeat_interval(tmp_path, csms: Csms):
    csms.behaviour.boot_interval = 2**31 - 1
    async with sil_station(tmp_path, csms) as station:
        interval = int(await station.config_key("HeartbeatInterval"))
        assert 0 < interval <= 86400
        answer = await station.call("GetConfiguration", key=["HeartbeatInterval"])
        assert int(answer["configurationKey"][0]["value"]) == interval
        mark = len(csms.received)
        reply = await ask(csms, "beat", "TriggerMessage", '{"requestedMessage":"Heartbeat"}')
        assert reply == [3, "beat", {"status": "Accepted"}]
        await csms.wait_for("Heartbeat", timeout=WAIT_S, after=mark)
        await link_is_up(csms, "beat")
        store_intact(station, tmp_path)
    async with restarted(tmp_path, csms) as station:
        assert 0 < int(await station.config_key("HeartbeatInterval")) <= 86400
