"""The 1.6 blocks of status, availability, reservation, local list and configuration alone, on the fakes
(real store, FakeStation, FakeSender, FakeClock): the rules behind the end-to-end behaviours of
tests/ocpp/test_v16_behaviours.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import everpy
from everpy.ocpp.v16.availability import Availability
from everpy.ocpp.v16.config_keys import (
    BY_NAME,
    KEYS,
    SUPPORTED_FILE_TRANSFER_PROTOCOLS,
    Access,
    KeyType,
    allowed_values,
)
from everpy.ocpp.v16.configuration_messages import ConfigurationMessages
from everpy.ocpp.v16.connectors import KEEP, SESSION_STATUS, Connectors, Transaction
from everpy.ocpp.v16.local_auth import LocalAuth
from everpy.ocpp.v16.reservation import Reservations
from everpy.ocpp.v16.status import StatusNotifications

from .fakes import FakeSender, block_context

TYPES = Path(everpy.__file__).parent / "definitions" / "types" / "evse_manager.yaml"
FAR = "2099-01-01T00:00:00Z"
STATUSES_1_6 = {"Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved",
                "Unavailable", "Faulted"}


def session_events() -> list[str]:
    return list(yaml.safe_load(TYPES.read_text())["types"]["SessionEventEnum"]["enum"])


class GatedSender(FakeSender):
    """A sender whose StatusNotifications wait at a gate: two senders can be in flight at once."""

    def __init__(self, base: FakeSender) -> None:
        super().__init__(base.store)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        await self.gate.wait()
        return await super().call(action, payload)


def blocks(tmp_path: Path, ids: list[int] | None = None, keys: dict[str, str] | None = None) -> SimpleNamespace:
    ctx, station, sender, clock, _ = block_context(tmp_path, ids, keys)
    connectors = Connectors(station.evse_ids())
    status = StatusNotifications(ctx, connectors, 5.0)
    return SimpleNamespace(ctx=ctx, station=station, sender=sender, clock=clock, connectors=connectors,
                           status=status, reservations=Reservations(ctx, connectors, status),
                           availability=Availability(ctx, connectors, status))


def statuses(sender: FakeSender, connector_id: int = 1) -> list[str]:
    return [p["status"] for p in sender.of("StatusNotification") if p["connectorId"] == connector_id]


def running(connector_id: int = 1) -> Transaction:
    return Transaction(f"tx-{connector_id}", "TAG", 0.0, 0)


# -- item 1: every session event of the evse_manager interface has its status ---------------------------
@pytest.mark.parametrize("event", session_events())
def test_every_session_event_of_the_interface_has_a_status_rule(event: str):
    assert event in SESSION_STATUS, f"{event} (evse_manager SessionEventEnum) has no OCPP 1.6 status rule"
    assert SESSION_STATUS[event] in STATUSES_1_6 | {None, KEEP}


def test_no_status_rule_for_an_event_the_interface_does_not_have():
    assert set(SESSION_STATUS) == set(session_events())


@pytest.mark.parametrize(("event", "status"), [
    ("ChargingStarted", "Charging"), ("ChargingResumed", "Charging"), ("SessionResumed", "Charging"),
    ("ChargingPausedEV", "SuspendedEV"), ("ChargingPausedEVSE", "SuspendedEVSE"), ("SessionStarted", "Preparing"),
    ("StoppingCharging", "Finishing"), ("TransactionFinished", "Finishing"), ("SessionFinished", None),
    ("PluginTimeout", None), ("Disabled", KEEP), ("ReservationEnd", KEEP),
])  # fmt: skip
def test_session_event_status_table(event: str, status: str | None):
    assert SESSION_STATUS[event] == status


# -- the status rule -------------------------------------------------------------------------------------
def test_inoperative_shows_once_no_transaction_runs_even_with_a_car_plugged_in():
    connectors = Connectors([1])
    c = connectors[1]
    c.transaction, c.session_status, c.operative = running(), "Charging", False  # Scheduled: still charging
    assert connectors.status_of(1)[0] == "Charging"
    c.transaction, c.session_status = None, "Finishing"  # the transaction ended, the car is still there
    assert connectors.status_of(1)[0] == "Unavailable"
    c.operative, c.session_status = True, "Preparing"
    connectors.station_operative = False
    assert connectors.status_of(1)[0] == "Unavailable"


def test_a_car_at_a_reserved_connector_leaves_it_reserved():
    connectors = Connectors([1])
    c = connectors[1]
    c.reservation_id, c.session_status = 3, "Preparing"
    assert connectors.status_of(1)[0] == "Reserved"
    c.transaction = running()  # the reservation's id tag started
    assert connectors.status_of(1)[0] == "Preparing"


# -- item 2: one StatusNotification per change, whoever sends -------------------------------------------
async def test_two_concurrent_senders_of_one_change_send_it_once(tmp_path):
    b = blocks(tmp_path)
    b.ctx.sender = gated = GatedSender(b.sender)
    b.connectors[1].operative = False
    first = asyncio.ensure_future(b.status.send(1))
    await gated.entered.wait()  # the first is in flight: the second must not pass the "changed?" check
    second = asyncio.ensure_future(b.status.send(1))
    gated.gate.set()
    await asyncio.gather(first, second)
    assert statuses(gated) == ["Unavailable"]


async def test_accepted_change_availability_reports_once(tmp_path):
    b = blocks(tmp_path)
    assert await b.availability.change(1, False) == {"status": "Accepted"}
    await asyncio.gather(b.status.send(1), b.status.send(1))  # e.g. the EVSE's Disabled event meanwhile
    await b.clock.advance(0)
    assert statuses(b.sender) == ["Unavailable"]
    assert b.station.called("set_available") == [(1, False)]


# -- item 4: Scheduled Inoperative applies at the transaction's end ---------------------------------------
async def test_scheduled_inoperative_applies_when_the_transaction_ends(tmp_path):
    b = blocks(tmp_path)
    c = b.connectors[1]
    c.transaction, c.session_status = running(), "Charging"
    assert await b.availability.change(1, False) == {"status": "Scheduled"}
    assert b.connectors.status_of(1)[0] == "Charging" and not b.station.called("set_available")
    c.transaction, c.session_status = None, "Finishing"
    b.availability.transaction_ended(1)
    assert b.connectors.status_of(1)[0] == "Unavailable"  # at once: the car is still plugged in
    await b.clock.advance(0)
    assert statuses(b.sender) == ["Unavailable"]
    assert b.station.called("set_available") == [(1, False)]
    assert b.ctx.store.records("availability")[1] == {"operative": False}


# -- item 3: CancelReservation's answer comes before the status it causes ---------------------------------
async def test_cancel_reservation_answers_before_the_status_it_causes(tmp_path):
    b = blocks(tmp_path)
    reply = await b.reservations.on_reserve_now({"connectorId": 1, "reservationId": 5, "expiryDate": FAR,
                                                 "idTag": "A"})
    assert reply.payload == {"status": "Accepted"} and not statuses(b.sender)  # Reserved only after the answer
    await reply.after()
    assert statuses(b.sender) == ["Reserved"]

    async def evse_cancels(evse_id: int) -> None:  # the EVSE reports ReservationEnd before it answers
        b.reservations.ended(evse_id, 5)
        await b.status.send(evse_id)

    b.station.cancel_reservation = evse_cancels  # type: ignore[method-assign]
    reply = await b.reservations.on_cancel_reservation({"reservationId": 5})
    assert reply.payload == {"status": "Accepted"}
    assert statuses(b.sender) == ["Reserved"]  # nothing before the answer
    assert b.connectors.status_of(1)[0] == "Available"
    await reply.after()
    await b.status.send(1)  # a late ReservationEnd of the EVSE changes nothing more
    assert statuses(b.sender) == ["Reserved", "Available"]
    assert (await b.reservations.on_cancel_reservation({"reservationId": 5})).payload == {"status": "Rejected"}


# -- item 10: reservations of connector 0 ---------------------------------------------------------------
def accepted() -> dict[str, Any]:
    return {"authorization_status": "Accepted"}


async def test_connector_zero_reservation_keeps_one_connector_for_its_id_tag(tmp_path):
    b = blocks(tmp_path, [1, 2])
    assert b.ctx.config.bool("ReserveConnectorZeroSupported")  # the default
    reply = await b.reservations.on_reserve_now({"connectorId": 0, "reservationId": 9, "expiryDate": FAR,
                                                 "idTag": "HOLDER"})
    assert reply.payload == {"status": "Accepted"}
    assert not b.station.called("reserve")  # no EVSE is reserved: any connector will do
    assert {c: b.connectors.status_of(c)[0] for c in (1, 2)} == {1: "Available", 2: "Available"}
    other = b.reservations.restrict(accepted(), "OTHER", None)
    assert other == {"authorization_status": "Accepted", "evse_ids": [1, 2]}  # two free, one kept
    b.connectors[1].session_status = "Preparing"  # OTHER's car waits at connector 1: it takes no free one
    assert b.reservations.restrict(accepted(), "OTHER", None) == {"authorization_status": "Accepted",
                                                                   "evse_ids": [1]}
    b.connectors[1].transaction, b.connectors[1].session_status = running(1), "Charging"
    assert b.reservations.restrict(accepted(), "OTHER", None)["authorization_status"] == "NotAtThisTime"
    assert b.reservations.restrict(accepted(), "holder", None) == {
        "authorization_status": "Accepted", "evse_ids": [1, 2], "reservation_id": 9}
    again = await b.reservations.on_reserve_now({"connectorId": 0, "reservationId": 10, "expiryDate": FAR,
                                                 "idTag": "THIRD"})
    assert again.payload == {"status": "Occupied"}  # one free connector is already kept for HOLDER
    assert b.reservations.used_by(2, "HOLDER") == 9
    b.reservations.ended(2, 9)  # HOLDER started on connector 2
    assert not b.ctx.store.records("reservation")


async def test_connector_zero_reservation_refused_when_not_supported_or_none_free(tmp_path):
    b = blocks(tmp_path, [1], keys={"ReserveConnectorZeroSupported": "false"})
    payload = {"connectorId": 0, "reservationId": 1, "expiryDate": FAR, "idTag": "A"}
    assert (await b.reservations.on_reserve_now(payload)).payload == {"status": "Rejected"}
    b = blocks(tmp_path / "busy", [1])
    b.connectors[1].transaction, b.connectors[1].session_status = running(), "Charging"
    assert (await b.reservations.on_reserve_now(payload)).payload == {"status": "Occupied"}


# -- item 8: an empty full list is version 0 ------------------------------------------------------------
async def test_full_empty_local_list_reads_as_version_zero(tmp_path):
    ctx, _, _, _, repository = block_context(tmp_path)
    local = LocalAuth(ctx, repository)
    answer = await local.on_send_local_list({"listVersion": 1, "updateType": "Full", "localAuthorizationList": []})
    assert answer.payload == {"status": "Accepted"}
    assert (await local.on_get_local_list_version({})).payload == {"listVersion": 0}
    await local.on_send_local_list({"listVersion": 2, "updateType": "Full",
                                    "localAuthorizationList": [{"idTag": "T", "idTagInfo": {"status": "Accepted"}}]})
    assert (await local.on_get_local_list_version({})).payload == {"listVersion": 2}
    await local.on_send_local_list({"listVersion": 3, "updateType": "Full"})  # no list at all: emptied
    assert (await local.on_get_local_list_version({})).payload == {"listVersion": 0}


# -- item 7: configuration keys are CiString -------------------------------------------------------------
def messages(tmp_path: Path, profile: int = 0) -> tuple[ConfigurationMessages, Any, FakeSender]:
    ctx, _, sender, clock, _ = block_context(tmp_path)
    security = SimpleNamespace(settings=SimpleNamespace(profile=lambda: profile), raise_profile=lambda p: False)
    return ConfigurationMessages(ctx, security), clock, sender  # type: ignore[arg-type]


@pytest.mark.parametrize("spelling", ["connectiontimeout", "ConnectionTimeout", "CONNECTIONTIMEOUT"])
async def test_keys_are_matched_without_case_and_answered_in_the_tables_spelling(tmp_path, spelling: str):
    block, _, _ = messages(tmp_path)
    changed: list[tuple[str, str]] = []
    block.ctx.config.on_change(lambda name, value: changed.append((name, value)))
    reply = await block.on_change_configuration({"key": spelling, "value": "30"})
    assert reply.payload == {"status": "Accepted"}
    assert changed == [("ConnectionTimeOut", "30")]  # the hook that tells Auth sees the real name
    answer = (await block.on_get_configuration({"key": [spelling]})).payload
    assert answer == {"configurationKey": [{"key": "ConnectionTimeOut", "readonly": False, "value": "30"}]}
    assert block.ctx.store.config_values()["ConnectionTimeOut"] == "30"


# -- item 9: a new AuthorizationKey under profile 1 reconnects ----------------------------------------------
async def test_authorization_key_under_basic_auth_reconnects_with_it(tmp_path):
    block, clock, sender = messages(tmp_path, profile=1)
    sender.accepted = False  # even while the boot is Pending
    reply = await block.on_change_configuration({"key": "authorizationkey", "value": "0123456789abcdefNEW"})
    assert reply.payload == {"status": "Accepted"}
    assert block.ctx.config.str("AuthorizationKey") == "0123456789abcdefNEW"
    await clock.advance(1)
    assert sender.reconnects == 1
    assert (await block.on_get_configuration({"key": ["AuthorizationKey"]})).payload == {
        "configurationKey": [], "unknownKey": ["AuthorizationKey"]}  # write-only


# -- item 13: SupportedFileTransferProtocols is what the System module transfers with ----------------------
def test_supported_file_transfer_protocols_are_the_system_modules_schemes():
    from everpy_modules.System import transfer

    key = BY_NAME["SupportedFileTransferProtocols"]
    assert key.access is Access.READ_ONLY and key.type is KeyType.CSL and key.validate(key.default)
    schemes = {s.upper() for s in transfer.HTTP_SCHEMES + transfer.FTP_SCHEMES}
    assert set(key.default.split(",")) == schemes == set(SUPPORTED_FILE_TRANSFER_PROTOCOLS)
    assert not key.validate("GOPHER")


async def test_get_configuration_answers_supported_file_transfer_protocols(tmp_path):
    block, _, _ = messages(tmp_path)
    answer = (await block.on_get_configuration({"key": ["SupportedFileTransferProtocols"]})).payload
    assert answer == {"configurationKey": [{"key": "SupportedFileTransferProtocols", "readonly": True,
                                            "value": "FTP,FTPS,HTTP,HTTPS"}]}
    assert (await block.on_change_configuration({"key": "SupportedFileTransferProtocols", "value": "FTP"})
            ).payload == {"status": "Rejected"}


# -- item 14: every integer key has bounds the station acts on ----------------------------------------------
INT_KEYS = [key for key in KEYS if key.type is KeyType.INT]


@pytest.mark.parametrize("key", INT_KEYS, ids=[key.name for key in INT_KEYS])
def test_every_integer_key_has_both_bounds_around_its_default(key):
    assert key.minimum is not None and key.maximum is not None, key.name
    assert key.minimum <= int(key.default) <= key.maximum
    assert key.validate(str(key.minimum)) and key.validate(str(key.maximum))
    assert not key.validate(str(key.minimum - 1)) and not key.validate(str(key.maximum + 1))


@pytest.mark.parametrize(("name", "low", "high"), [
    ("HeartbeatInterval", 1, 86400), ("MeterValueSampleInterval", 0, 86400), ("ClockAlignedDataInterval", 0, 86400),
    ("MinimumStatusDuration", 0, 3600), ("TransactionMessageRetryInterval", 0, 86400),
    ("WebSocketPingInterval", 0, 3600), ("ConnectionTimeOut", 10, 300),
])  # fmt: skip
async def test_change_configuration_beyond_the_bounds_is_rejected(tmp_path, name: str, low: int, high: int):
    block, _, _ = messages(tmp_path)
    assert (BY_NAME[name].minimum, BY_NAME[name].maximum) == (low, high)
    for value in (low - 1, high + 1):
        reply = await block.on_change_configuration({"key": name, "value": str(value)})
        assert reply.payload == {"status": "Rejected"}, (name, value)
    for value in (low, high):
        assert (await block.on_change_configuration({"key": name, "value": str(value)})).payload == {
            "status": "Accepted"}
    assert block.ctx.config.int(name) == high


DOC = Path(__file__).resolve().parents[3] / "docs" / "ocpp16-configuration.md"


@pytest.mark.parametrize("key", KEYS, ids=[key.name for key in KEYS])
def test_the_configuration_doc_states_every_keys_bounds(key):
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in DOC.read_text().splitlines()
            if line.startswith("| ")}
    row = rows[key.name]
    assert row[5] == allowed_values(key)
    if key.type is KeyType.INT:
        assert row[5] == f"{key.minimum}..{key.maximum}"
    if key.type is not KeyType.STRING or key.check is not None:
        assert row[5], f"{key.name}: the doc says nothing of its values"


def test_initial_values_beyond_the_bounds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="MinimumStatusDuration"):
        block_context(tmp_path, keys={"MinimumStatusDuration": "3601"})
