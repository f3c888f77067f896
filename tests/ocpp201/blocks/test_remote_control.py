"""Functional block F (remote control) of OCPP 2.0.1 against a fake context, with the real transactions,
authorization and status blocks: RequestStart/StopTransaction, UnlockConnector and TriggerMessage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.rpc import Reply
from everpy.ocpp.session import TRIGGERED
from everpy.ocpp.v201.authorization import Authorization
from everpy.ocpp.v201.availability import StatusNotifications
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.remote_control import RemoteControl, Trigger
from everpy.ocpp.values import EvseRef, IdToken

from .test_availability import sent, statuses
from .test_transactions import AUTH, CHARGING, PLUG, START, TOKEN, TX_STARTED, Station201, event, provided


class Profiles:
    """The smart charging block's one method remote start calls: installs or refuses (with a reason)."""

    def __init__(self, refusal: str | None = None) -> None:
        self.refusal = refusal
        self.calls: list[tuple[int | None, dict[str, Any]]] = []

    def accept_remote_start_profile(self, evse_id: int | None, profile: dict[str, Any]) -> str | None:
        self.calls.append((evse_id, profile))
        return self.refusal


class Triggered:
    """A block's trigger method: answers `status` and schedules its message as a job, which records whether
    it ran as a triggered send."""

    def __init__(self, f: Any, status: str = "Accepted") -> None:
        self.f, self.status = f, status
        self.calls: list[tuple[Any, ...]] = []
        self.triggered: list[bool] = []

    async def _send(self) -> None:
        self.triggered.append(TRIGGERED.get())

    async def trigger(self, *args: Any) -> str:
        self.calls.append(args)
        self.f.ctx.jobs.spawn(self._send())
        return self.status

    trigger_status = trigger
    trigger_sign_certificate = trigger


class F:
    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, refusal: str | None = None) -> None:
        self.s = Station201(tmp_path, variables, evse_ids=[1, 2])
        self.f = self.s.f
        self.profiles = Profiles(refusal)
        self.authorization = Authorization(self.f.ctx, self.f.evses)
        self.remote = RemoteControl(self.f.ctx, self.f.evses, self.s.tx, self.authorization, self.profiles)
        self.status = StatusNotifications(self.f.ctx, self.f.evses)
        self.firmware, self.logs, self.certificates = Triggered(self.f), Triggered(self.f), Triggered(self.f)
        self.trigger = Trigger(self.f.ctx, self.f.evses, self.status, self.s.tx, self.firmware, self.logs,
                               self.certificates, lambda: {"reason": "Triggered"})

    def close(self) -> None:
        self.s.tx.cancel_timers()
        self.status.cancel_timers()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A CSMS request through its handler: the answer, once the work after it and the jobs are done."""
        DIALECT.check(action, payload, response=False)
        handler = {"RequestStartTransaction": self.remote.on_request_start,
                   "RequestStopTransaction": self.remote.on_request_stop, "UnlockConnector": self.remote.on_unlock,
                   "TriggerMessage": self.trigger.on_trigger_message}[action]
        reply: Reply = await handler(payload)
        DIALECT.check(action, reply.payload, response=True)
        if reply.after is not None:
            await reply.after()
        await self.f.clock.advance(0)  # the jobs it spawned (a transaction's meter loops run forever: no wait_idle)
        return reply.payload

    async def start(self, evse_id: int | None = 1, **more: Any) -> dict[str, Any]:
        payload = {"remoteStartId": 7, "idToken": TOKEN, **more}
        if evse_id is not None:
            payload["evseId"] = evse_id
        return await self.call("RequestStartTransaction", payload)

    async def charging(self, evse_id: int = 1) -> str:
        """A transaction started by a card on the EVSE; its id."""
        await self.s.send(PLUG, AUTH, TX_STARTED, CHARGING, evse_id=evse_id)
        tx_id = self.f.evses[evse_id].transaction_id
        assert tx_id is not None
        return tx_id


@pytest.fixture
def make(tmp_path: Path) -> Any:
    made: list[F] = []

    def build(variables: dict[str, str] | None = None, refusal: str | None = None) -> F:
        made.append(F(tmp_path / str(len(made)), variables, refusal))
        return made[-1]

    yield build
    for f in made:
        f.close()


# -- RequestStartTransaction -----------------------------------------------------------------------------
async def test_remote_start_hands_the_token_to_the_charger_and_the_transaction_names_the_request(make: Any):
    """TC_F_03_CS: AuthorizeRemoteStart false: Accepted, the token goes to Auth as prevalidated for the EVSE,
    no Authorize; the transaction it starts is Started (RemoteStart) with the remoteStartId."""
    r = make({START: "Authorized"})
    assert await r.start() == {"status": "Accepted"}
    assert r.f.station.called("provide_token") == [(IdToken("TAG1", "ISO14443"), [1], True)]
    assert sent(r.f, "Authorize") == []
    await r.s.send(event("SessionStarted", session_started={"reason": "Authorized", "id_tag": provided()}))
    [started] = sent(r.f, "TransactionEvent")
    assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 7


async def test_remote_start_authorizes_first_when_asked_to(make: Any):
    """TC_F_02_CS: AuthorizeRemoteStart true: the answer, then an Authorize; only an Accepted token goes to
    the charger."""
    r = make({"AuthCtrlr.AuthorizeRemoteStart": "true"})
    r.f.sender.answers["Authorize"] = {"idTokenInfo": {"status": "Accepted"}}
    assert (await r.start(None))["status"] == "Accepted"
    assert sent(r.f, "Authorize") == [{"idToken": TOKEN}]
    assert r.f.station.called("provide_token") == [(IdToken("TAG1", "ISO14443"), None, True)]
    r.f.sender.answers["Authorize"] = {"idTokenInfo": {"status": "Blocked"}}
    assert (await r.start(2))["status"] == "Accepted"
    assert len(r.f.station.called("provide_token")) == 1


async def test_remote_start_after_the_plug_in_names_the_transaction_already_running(make: Any):
    """TC_F_01_CS: TxStartPoint EVConnected: the car was plugged in first, its transaction runs without a
    token; the answer names it and the token's authorization is an Updated (RemoteStart)."""
    r = make({START: "EVConnected"})
    await r.s.send(PLUG)
    tx_id = r.f.evses[1].transaction_id
    assert await r.start() == {"status": "Accepted", "transactionId": tx_id}
    await r.s.send(AUTH)
    updated = sent(r.f, "TransactionEvent")[-1]
    assert (updated["triggerReason"], updated["transactionInfo"]["remoteStartId"]) == ("RemoteStart", 7)


async def test_remote_start_is_rejected_where_no_transaction_can_start(make: Any):
    """TC_F_04_CS (the station's part before the plug-in timeout): an EVSE that is unknown, inoperative,
    faulted or already in an authorized transaction is Rejected, and so is any EVSE when none is free or
    the station is not registered."""
    r = make()
    assert (await r.start(3))["status"] == "Rejected"
    r.f.evses[2].operative = False
    assert (await r.start(2))["status"] == "Rejected"
    await r.charging(1)
    assert (await r.start(1))["status"] == "Rejected"
    assert (await r.start(None))["status"] == "Rejected"
    r.f.evses[2].operative = True
    r.f.evses.error(2, {"type": "evse_board_support/MREC1", "state": "Active"})
    assert (await r.start(2))["statusInfo"]["reasonCode"] == "NotAvailable"
    r.f.evses.error(2, {"type": "evse_board_support/MREC1", "state": "Cleared"})
    r.f.sender.accepted = False
    assert (await r.start(2))["status"] == "Rejected"
    assert r.f.station.called("provide_token") == []


SCHEDULE = [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}]


def profile(purpose: str = "TxProfile") -> dict[str, Any]:
    return {"id": 3, "stackLevel": 0, "chargingProfilePurpose": purpose, "chargingProfileKind": "Relative",
            "chargingSchedule": SCHEDULE}


async def test_a_remote_start_profile_goes_to_smart_charging_and_its_refusal_rejects_the_start(make: Any):
    r = make()
    assert (await r.start(1, chargingProfile=profile()))["status"] == "Accepted"
    assert r.profiles.calls == [(1, profile())]
    refused = make(refusal="no such limit")
    answer = await refused.start(1, chargingProfile=profile())
    assert answer["status"] == "Rejected" and answer["statusInfo"]["additionalInfo"] == "no such limit"
    assert (await refused.start(1, chargingProfile=profile("TxDefaultProfile")))["status"] == "Rejected"
    assert refused.f.station.called("provide_token") == []


# -- RequestStopTransaction ------------------------------------------------------------------------------
async def test_remote_stop_stops_the_transaction_with_reason_remote(make: Any):
    """TC_F_08_CS: RequestStopTransaction of the running transaction: Accepted once the EVSE took the stop
    (reason Remote)."""
    r = make()
    tx_id = await r.charging(2)
    assert await r.call("RequestStopTransaction", {"transactionId": tx_id}) == {"status": "Accepted"}
    assert r.f.station.called("stop_transaction") == [(2, "Remote")]


async def test_remote_stop_of_an_unknown_transaction_is_rejected(make: Any):
    """TC_F_09_CS: a transactionId no transaction has: Rejected, nothing stopped; a stop the EVSE refuses is
    Rejected too."""
    r = make()
    assert (await r.call("RequestStopTransaction", {"transactionId": "nope"}))["status"] == "Rejected"
    assert r.f.station.called("stop_transaction") == []
    tx_id = await r.charging(1)
    r.f.station.answers["stop_transaction"] = False
    assert (await r.call("RequestStopTransaction", {"transactionId": tx_id}))["status"] == "Rejected"


# -- UnlockConnector ---------------------------------------------------------------------------------------
async def unlock(r: F, evse_id: int = 1, connector_id: int = 1) -> str:
    return str((await r.call("UnlockConnector", {"evseId": evse_id, "connectorId": connector_id}))["status"])


async def test_unlock_without_a_transaction_unlocks(make: Any):
    """TC_F_06_CS TC_F_07_CS: no transaction (a cable plugged or not): Unlocked once the EVSE unlocked."""
    r = make()
    assert await unlock(r) == "Unlocked"
    await r.s.send(PLUG, evse_id=2)
    assert await unlock(r, 2) == "Unlocked"
    assert r.f.station.called("unlock") == [(EvseRef(1, 1),), (EvseRef(2, 1),)]


async def test_unlock_during_an_authorized_transaction_is_refused(make: Any):
    """TC_F_05_CS: an authorized transaction on the connector: OngoingAuthorizedTransaction, nothing
    unlocked or stopped."""
    r = make()
    await r.charging(1)
    assert await unlock(r) == "OngoingAuthorizedTransaction"
    assert r.f.station.called("unlock") == [] and r.f.station.called("stop_transaction") == []


async def test_unlock_of_an_unknown_connector(make: Any):
    """TC_F_10_CS: an EVSE or connector the station does not have: UnknownConnector."""
    r = make()
    assert [await unlock(r, *place) for place in ((3, 1), (1, 2))] == ["UnknownConnector"] * 2
    assert r.f.station.called("unlock") == []


async def test_unlock_that_fails_or_has_nothing_to_unlock(make: Any):
    r = make()
    r.f.station.answers["unlock"] = False
    assert await unlock(r) == "UnlockFailed"
    r.f.station.locks = False
    assert (await r.call("UnlockConnector", {"evseId": 1, "connectorId": 1}))["statusInfo"] == \
        {"reasonCode": "FixedCable"}


async def test_unlock_ends_a_transaction_no_token_authorized(make: Any):
    r = make({START: "EVConnected"})
    await r.s.send(PLUG)
    assert await unlock(r) == "Unlocked"
    assert r.f.station.called("stop_transaction") == [(1, "UnlockCommand")]


# -- TriggerMessage --------------------------------------------------------------------------------------
async def trigger(r: F, message: str, evse: dict[str, int] | None = None) -> str:
    payload: dict[str, Any] = {"requestedMessage": message}
    if evse is not None:
        payload["evse"] = evse
    return str((await r.call("TriggerMessage", payload))["status"])


async def test_trigger_heartbeat(make: Any):
    """TC_F_20_CS: Accepted, then a Heartbeat."""
    r = make()
    assert await trigger(r, "Heartbeat") == "Accepted"
    assert sent(r.f, "Heartbeat") == [{}]


async def test_trigger_boot_notification_only_before_the_station_is_accepted(make: Any):
    """TC_F_26_CS: once Accepted a BootNotification trigger is Rejected (F06.FR.17); while Pending the boot
    loop is asked to send it now."""
    r = make()
    assert await trigger(r, "BootNotification") == "Rejected"
    assert r.f.sender.boot_requests == 0
    r.f.sender.accepted = False
    assert await trigger(r, "BootNotification") == "Accepted"
    assert r.f.sender.boot_requests == 1


async def test_trigger_of_a_message_the_station_cannot_send(make: Any):
    """TC_F_27_CS: NotImplemented."""
    r = make()
    for message in ("SignCombinedCertificate", "PublishFirmwareStatusNotification"):
        assert await trigger(r, message) == "NotImplemented"


async def test_trigger_status_notification_of_one_connector(make: Any):
    """TC_F_23_CS TC_F_24_CS: StatusNotification of EVSE 1 connector 1: Available, then Occupied with a car
    plugged in; sent though nothing changed; an unknown EVSE or no connector is Rejected."""
    r = make()
    assert await trigger(r, "StatusNotification", {"id": 1, "connectorId": 1}) == "Accepted"
    await r.s.send(PLUG, evse_id=1)
    assert await trigger(r, "StatusNotification", {"id": 1, "connectorId": 1}) == "Accepted"
    assert await trigger(r, "StatusNotification", {"id": 1, "connectorId": 1}) == "Accepted"
    assert statuses(r.f) == [(1, 1, "Available"), (1, 1, "Occupied"), (1, 1, "Occupied")]
    assert await trigger(r, "StatusNotification", {"id": 1}) == "Rejected"
    assert await trigger(r, "StatusNotification", {"id": 4, "connectorId": 1}) == "Rejected"


async def test_trigger_meter_values_of_one_or_every_evse(make: Any):
    """TC_F_11_CS TC_F_12_CS: MeterValues (context Trigger) of the EVSE named, or of every EVSE."""
    r = make()
    r.s.meter(1000, evse_id=1)
    r.s.meter(2000, evse_id=2)
    assert await trigger(r, "MeterValues", {"id": 2}) == "Accepted"
    assert [p["evseId"] for p in sent(r.f, "MeterValues")] == [2]
    assert await trigger(r, "MeterValues") == "Accepted"
    values = sent(r.f, "MeterValues")
    assert [p["evseId"] for p in values] == [2, 1, 2]
    assert {v["context"] for p in values for v in p["meterValue"][0]["sampledValue"]} == {"Trigger"}


async def test_trigger_transaction_event_of_one_or_every_evse(make: Any):
    """TC_F_13_CS TC_F_14_CS: an Updated (triggerReason Trigger) for the transaction on the EVSE named, or
    for every transaction; Rejected for an EVSE without one."""
    r = make()
    await r.charging(1)
    await r.charging(2)
    before = len(sent(r.f, "TransactionEvent"))
    assert await trigger(r, "TransactionEvent", {"id": 2}) == "Accepted"
    assert await trigger(r, "TransactionEvent") == "Accepted"
    triggered = sent(r.f, "TransactionEvent")[before:]
    assert [(p["eventType"], p["triggerReason"]) for p in triggered] == [("Updated", "Trigger")] * 3
    assert [p["transactionInfo"]["transactionId"] for p in triggered] == [
        r.f.evses[2].transaction_id, r.f.evses[1].transaction_id, r.f.evses[2].transaction_id]


async def test_trigger_delegates_firmware_log_and_certificate_messages_and_sends_them_as_triggered(make: Any):
    """The trigger's part of TC_F_15..19 (what is sent is the diagnostics and firmware blocks'):
    LogStatusNotification and FirmwareStatusNotification (an EVSE named is not relevant to them) go to their
    blocks, which send them as triggered messages (allowed while Pending); so do the certificate signing
    requests."""
    r = make()
    assert await trigger(r, "LogStatusNotification") == "Accepted"
    assert await trigger(r, "FirmwareStatusNotification", {"id": 1}) == "Accepted"
    assert await trigger(r, "FirmwareStatusNotification") == "Accepted"
    assert await trigger(r, "SignChargingStationCertificate") == "Accepted"
    r.certificates.status = "Rejected"
    assert await trigger(r, "SignV2GCertificate") == "Rejected"
    assert (r.logs.calls, r.firmware.calls) == ([()], [(), ()])
    assert r.certificates.calls == [("ChargingStationCertificate",), ("V2GCertificate",)]
    assert r.logs.triggered + r.firmware.triggered + r.certificates.triggered == [True] * 5
    assert TRIGGERED.get() is False  # the handler's own context is left as it was


async def test_trigger_for_an_evse_the_station_does_not_have_is_rejected(make: Any):
    r = make()
    for message in ("MeterValues", "FirmwareStatusNotification", "Heartbeat"):
        assert await trigger(r, message, {"id": 9}) == "Rejected"
    assert await trigger(r, "MeterValues", {"id": 1, "connectorId": 3}) == "Rejected"
    assert r.firmware.calls == [] and sent(r.f, "Heartbeat") == []
