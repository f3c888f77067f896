"""Functional blocks E (transactions) and J (meter values) of OCPP 2.0.1 against a fake context: the
TransactionEvents the session events produce, their seqNo across restarts, the queue policy, GetTransactionStatus
and the meter values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.store import QueuedMessage
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.repository import TABLE
from everpy.ocpp.v201.transactions import TransactionQueue, Transactions

from .fakes import Fixture, block_context

TOKEN = {"idToken": "TAG1", "type": "ISO14443"}
START = "TxCtrlr.TxStartPoint"
STOP = "TxCtrlr.TxStopPoint"


class TokenInfos:
    """The authorization block's one method the transactions call."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def token_info(self, id_token: dict[str, Any], info: dict[str, Any]) -> None:
        self.calls.append((id_token, info))


def event(kind: str, evse_session: str = "s-1", **details: Any) -> dict[str, Any]:
    return {"uuid": evse_session, "event": kind, "timestamp": "2026-01-01T00:00:00Z", "connector_id": 1, **details}


def provided(value: str = "TAG1", **more: Any) -> dict[str, Any]:
    return {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": "RFID", **more}


PLUG = event("SessionStarted", session_started={"reason": "EVConnected"})
AUTH = event("Authorized", authorization=provided())
TX_STARTED = event("TransactionStarted", transaction_started={"id_tag": provided()})
CHARGING = event("ChargingStarted")
UNPLUG = event("SessionFinished")


def finished(reason: str, **more: Any) -> dict[str, Any]:
    return event("TransactionFinished", transaction_finished={"reason": reason, **more})


def reading(wh: float, at: str = "2026-01-01T00:00:00Z", power: float = 7000.0) -> dict[str, Any]:
    return {"timestamp": at, "energy_Wh_import": {"total": wh}, "power_W": {"total": power},
            "voltage_V": {"L1": 230.0, "L2": 231.0, "L3": 229.5}}


class Station201:
    """A fixture, its Transactions and its queue policy; `restart()` is a new OCPP process on the same store."""

    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, fixture: Fixture | None = None,
                 evse_ids: list[int] | None = None) -> None:
        self.tmp_path, self.variables = tmp_path, variables or {}
        self.f = block_context(tmp_path, evse_ids, variables=self.variables,
                               store=None if fixture is None else fixture.store)
        if fixture is not None:
            self.f.station.sessions = fixture.station.sessions
        self.auth = TokenInfos()
        self.tx = Transactions(self.f.ctx, self.f.evses, self.auth)
        self.queue = TransactionQueue(self.f.ctx, self.tx)
        self.started: list[int] = []
        self.ended: list[int] = []
        self.tx.started.subscribe(self.started.append)
        self.tx.ended.subscribe(self.ended.append)

    def restart(self) -> Station201:
        self.tx.cancel_timers()
        return Station201(self.tmp_path, self.variables, self.f)

    async def send(self, *events: dict[str, Any], evse_id: int = 1) -> None:
        for e in events:
            self.f.evses.session_event(evse_id, e)  # what ChargePoint201 does before the block hears it
            await self.tx.on_session_event(evse_id, e)

    def meter(self, wh: float, evse_id: int = 1, at: str = "2026-01-01T00:00:00Z") -> None:
        self.tx.on_powermeter(evse_id, reading(wh, at))

    def events(self) -> list[dict[str, Any]]:
        found = self.f.sender.of("TransactionEvent")
        for payload in found:
            DIALECT.check("TransactionEvent", payload, response=False)
        return found

    def deliver(self, answer: dict[str, Any] | None = None) -> QueuedMessage:
        """The session delivering the head of the queue and the CSMS answering it."""
        message = self.f.store.queue_head()
        assert message is not None
        with self.f.store.atomic():
            self.f.store.dequeue(message.seq)
            self.queue.delivered(message, answer or {})
        return message


@pytest.fixture
def cleanup() -> Any:
    made: list[Station201] = []
    yield made.append
    for s in made:
        s.tx.cancel_timers()


async def make(tmp_path: Path, cleanup: Any, variables: dict[str, str] | None = None) -> Station201:
    s = Station201(tmp_path, variables)
    cleanup(s)
    await s.tx.recover()
    return s


async def test_cable_first_starts_at_power_path_closed(tmp_path, cleanup):
    """TC_E_01_CS, TC_E_03_CS, TC_J_07_CS: the default TxStartPoint PowerPathClosed: nothing is sent for the
    plug-in and the authorization; the Started at the start of charging carries the EVSE, the token, the
    charging state and the Transaction.Begin meter value; seqNo 0."""
    s = await make(tmp_path, cleanup)
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED)
    assert s.events() == [] and s.f.evses[1].transaction_id is None
    await s.send(CHARGING)
    [started] = s.events()
    assert started["eventType"] == "Started" and started["seqNo"] == 0
    assert started["triggerReason"] == "ChargingStateChanged"
    assert started["evse"] == {"id": 1, "connectorId": 1} and started["idToken"] == TOKEN
    info = started["transactionInfo"]
    assert info["chargingState"] == "Charging" and 1 <= len(info["transactionId"]) <= 36
    [value] = started["meterValue"]
    assert value["sampledValue"] == [{"value": 1000.0, "context": "Transaction.Begin",
                                      "measurand": "Energy.Active.Import.Register", "location": "Outlet",
                                      "unitOfMeasure": {"unit": "Wh"}}]
    assert "offline" not in started
    assert s.f.evses[1].transaction_id == info["transactionId"] and s.started == [1]


async def test_ev_connected_start_point_and_authorization_in_the_transaction(tmp_path, cleanup):
    """TC_E_09_CS: TxStartPoint EVConnected: Started (CablePluggedIn, EVConnected) at the plug-in, without a
    token and with the EVSE; the authorization follows as Updated (Authorized) with the token, the start of
    charging as Updated (ChargingStateChanged); seqNo 0, 1, 2 and the EVSE only in the first event."""
    s = await make(tmp_path, cleanup, {START: "EVConnected"})
    await s.send(PLUG)
    await s.send(AUTH, TX_STARTED, CHARGING)
    started, authorized, charging = s.events()
    assert (started["eventType"], started["triggerReason"]) == ("Started", "CablePluggedIn")
    assert started["transactionInfo"]["chargingState"] == "EVConnected" and "idToken" not in started
    assert (authorized["eventType"], authorized["triggerReason"], authorized["idToken"]) == \
        ("Updated", "Authorized", TOKEN)
    assert (charging["triggerReason"], charging["transactionInfo"]["chargingState"]) == \
        ("ChargingStateChanged", "Charging")
    assert [e["seqNo"] for e in s.events()] == [0, 1, 2]
    assert "evse" not in authorized and "evse" not in charging


async def test_authorization_first_start_point(tmp_path, cleanup):
    """TC_E_10_CS, TC_E_04_CS: TxStartPoint Authorized with the token presented before the car: Started
    (Authorized) with the token; the plug-in is an Updated (CablePluggedIn)."""
    s = await make(tmp_path, cleanup, {START: "Authorized"})
    await s.send(event("SessionStarted", session_started={"reason": "Authorized", "id_tag": provided()}))
    await s.send(TX_STARTED)
    started, plugged = s.events()
    assert (started["triggerReason"], started["idToken"]) == ("Authorized", TOKEN)
    assert (plugged["triggerReason"], plugged["transactionInfo"]["chargingState"]) == \
        ("CablePluggedIn", "EVConnected")


async def test_authorization_first_then_plugin_timeout(tmp_path, cleanup):
    """TC_E_05_CS, TC_E_39_CS: started at the authorization, the car never comes: Ended (EVConnectTimeout,
    stoppedReason Timeout)."""
    s = await make(tmp_path, cleanup, {START: "Authorized"})
    await s.send(event("SessionStarted", session_started={"reason": "Authorized", "id_tag": provided()}))
    await s.send(event("PluginTimeout"))
    started, ended = s.events()
    assert (ended["eventType"], ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == \
        ("Ended", "EVConnectTimeout", "Timeout")
    assert s.ended == [1] and s.f.evses[1].transaction_id is None


async def test_energy_transfer_start_point(tmp_path, cleanup):
    """TC_E_02_CS: TxStartPoint EnergyTransfer: no Started before energy flows."""
    s = await make(tmp_path, cleanup, {START: "EnergyTransfer"})
    await s.send(PLUG, AUTH, TX_STARTED, event("ChargingPausedEV"))
    assert s.events() == []
    await s.send(event("ChargingResumed"))
    [started] = s.events()
    assert started["triggerReason"] == "ChargingStateChanged"
    assert started["transactionInfo"]["chargingState"] == "Charging"


@pytest.mark.parametrize(("reason", "stop_token", "trigger", "stopped"), [
    ("Local", True, "StopAuthorized", "Local"),
    ("Remote", False, "RemoteStop", "Remote"),
    ("DeAuthorized", False, "Deauthorized", "DeAuthorized"),
    ("EnergyLimitReached", False, "EnergyLimitReached", "EnergyLimitReached"),
])
async def test_stop_at_the_end_of_the_authorization(tmp_path, cleanup, reason, stop_token, trigger, stopped):
    """TC_E_15_CS, TC_E_21_CS, TC_E_06_CS, TC_E_07_CS, TC_E_35_CS, TC_J_10_CS: TxStopPoint
    EVConnected,Authorized: the EvseManager's TransactionFinished ends the transaction, with the
    triggerReason and stoppedReason of its reason, the stop token, and the Transaction.End meter value read
    at the stop."""
    s = await make(tmp_path, cleanup)
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.f.station.meter[1] = reading(1500, "2026-01-01T01:00:00Z")
    details = {"id_tag": provided()} if stop_token else {}
    await s.send(finished(reason, **details))
    ended = s.events()[-1]
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", trigger)
    assert ended["transactionInfo"]["stoppedReason"] == stopped
    assert ended["transactionInfo"]["chargingState"] == "EVConnected"
    assert (ended.get("idToken") == TOKEN) is stop_token
    contexts = [(v["sampledValue"][0]["context"], v["sampledValue"][0]["value"]) for v in ended["meterValue"]]
    assert contexts == [("Transaction.Begin", 1000.0), ("Transaction.End", 1500.0)]
    assert s.ended == [1] and s.f.evses[1].transaction_id is None
    await s.send(UNPLUG)
    assert len(s.events()) == 2  # nothing after the Ended


async def test_ev_connected_stop_point_ends_at_the_unplug(tmp_path, cleanup):
    """TC_E_14_CS, TC_E_17_CS, TC_E_37_CS: TxStopPoint EVConnected: a remote stop is an Updated (RemoteStop,
    EVConnected); the transaction ends when the cable is unplugged (EVCommunicationLost), stoppedReason still
    Remote."""
    s = await make(tmp_path, cleanup, {STOP: "EVConnected"})
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, finished("Remote"))
    stopping = s.events()[-1]
    assert (stopping["eventType"], stopping["triggerReason"]) == ("Updated", "RemoteStop")
    assert stopping["transactionInfo"]["chargingState"] == "EVConnected"
    await s.send(UNPLUG)
    ended = s.events()[-1]
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "EVCommunicationLost")
    assert ended["transactionInfo"] == {"transactionId": stopping["transactionInfo"]["transactionId"],
                                        "stoppedReason": "Remote", "chargingState": "Idle"}
    # an unplug without any stop first: EVDisconnected
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, UNPLUG)
    assert s.events()[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_energy_transfer_stop_point_ends_when_the_ev_suspends(tmp_path, cleanup):
    """TC_E_22_CS, TC_E_08_CS: TxStopPoint EnergyTransfer: the EV suspending ends the transaction."""
    s = await make(tmp_path, cleanup, {STOP: "EnergyTransfer"})
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, event("ChargingPausedEV"))
    ended = s.events()[-1]
    assert ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    assert ended["transactionInfo"]["chargingState"] == "SuspendedEV"


async def test_offline_events_are_marked_and_seq_no_is_continuous(tmp_path, cleanup):
    """TC_E_40_CS, TC_E_43_CS, TC_E_44_CS: events generated while offline carry offline: true; seqNo counts
    on over the connection loss."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.f.sender.online = False
    await s.send(event("ChargingPausedEV"), finished("Local", id_tag=provided()))
    started, paused, ended = s.events()
    assert "offline" not in started and paused["offline"] is True and ended["offline"] is True
    assert [e["seqNo"] for e in (started, paused, ended)] == [0, 1, 2]


async def test_restart_continues_the_transaction_the_evse_still_runs(tmp_path, cleanup):
    """TC_E_40_CS (restart variant): a new OCPP process finds the transaction open and its session still
    running: no Ended, the next event has the next seqNo and the EVSE shows the transaction again."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, event("ChargingPausedEV"))
    tx_id = s.events()[0]["transactionInfo"]["transactionId"]
    s.f.station.sessions[1] = {"session_id": "s-1", "transaction": {"uuid": "s-1"}}
    again = s.restart()
    cleanup(again)
    await again.tx.recover()
    assert again.events() == [] and again.f.evses[1].transaction_id == tx_id and again.started == [1]
    await again.send(event("ChargingResumed"), finished("Remote"))
    resumed, ended = again.events()
    assert (resumed["seqNo"], ended["seqNo"]) == (2, 3)
    assert resumed["transactionInfo"]["chargingState"] == "Charging"
    assert ended["transactionInfo"]["transactionId"] == tx_id


async def test_restart_after_power_loss_ends_with_the_last_reading(tmp_path, cleanup):
    """The EVSE no longer runs the session after a restart: Ended (PowerLoss) with the next seqNo and the
    last reading kept, at the reading's time."""
    s = await make(tmp_path, cleanup)
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.meter(1750, at="2026-01-01T00:30:00Z")
    s.f.station.sessions[1] = {"session_id": ""}
    again = s.restart()
    cleanup(again)
    await again.tx.recover()
    [ended] = again.events()
    assert (ended["eventType"], ended["seqNo"], ended["transactionInfo"]["stoppedReason"]) == ("Ended", 1, "PowerLoss")
    assert ended["timestamp"] == "2026-01-01T00:30:00Z"
    assert ended["meterValue"][-1]["sampledValue"][0]["value"] == 1750.0
    assert again.ended == [1] and again.f.evses[1].transaction_id is None
    assert again.tx.repository.open_transactions() == []


async def test_evse_returning_without_the_session_ends_the_transaction(tmp_path, cleanup):
    """resync: an EVSE that restarted and lost the session: the transaction ends (PowerLoss) at once."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.tx.resync(1, {"session_id": "s-1"})
    assert len(s.events()) == 1
    s.tx.resync(1, {"session_id": ""})
    assert s.events()[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss" and s.ended == [1]


async def test_queue_policy_and_the_end_of_a_transaction_row(tmp_path, cleanup):
    """TC_E_41_CS, TC_E_42_CS, TC_E_50_CS, TC_E_51_CS: MessageAttempts and MessageAttemptInterval of
    TransactionEvent rule the retries; the delivered Ended removes the transaction's row."""
    s = await make(tmp_path, cleanup, {"OCPPCommCtrlr.MessageAttempts[TransactionEvent]": "5",
                                       "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]": "7"})
    assert (s.queue.attempts(), s.queue.retry_interval()) == (5, 7.0)
    assert s.queue.knows("TransactionEvent") and s.queue.knows("SecurityEventNotification")
    assert not s.queue.knows("StartTransaction")
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, finished("Local"))
    tx_id = s.events()[0]["transactionInfo"]["transactionId"]
    s.deliver()
    assert s.tx.repository.get(tx_id) is not None
    s.deliver()
    assert s.tx.repository.get(tx_id) is None and s.f.store.queue_length() == 0
    published = [v for k, v in s.f.station.published if k == "ocpp_transaction_event_response"]
    assert published[0]["transaction_id"] == tx_id


async def test_a_dropped_ended_removes_the_row(tmp_path, cleanup):
    """TC_E_41_CS: an Ended given up after its attempts leaves no transaction behind."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, finished("Local"))
    tx_id = s.events()[0]["transactionInfo"]["transactionId"]
    for message in (s.f.store.queue_head(), None):
        head = message or s.f.store.queue_head()
        assert head is not None
        with s.f.store.atomic():
            s.f.store.dequeue(head.seq)
            s.queue.dropped(head)
    assert s.tx.repository.get(tx_id) is None


async def test_get_transaction_status(tmp_path, cleanup):
    """TC_E_28_CS TC_E_29_CS TC_E_30_CS TC_E_31_CS TC_E_32_CS TC_E_33_CS TC_E_34_CS: messagesInQueue and
    ongoingIndicator for an unknown, an ongoing and an
    ended transaction, and without transactionId."""
    s = await make(tmp_path, cleanup)

    async def status(payload: dict) -> dict:
        return (await s.tx.on_get_transaction_status(payload)).payload
    assert await status({}) == {"messagesInQueue": False}
    assert await status({"transactionId": "nope"}) == {"messagesInQueue": False, "ongoingIndicator": False}
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    tx_id = s.events()[0]["transactionInfo"]["transactionId"]
    assert await status({"transactionId": tx_id}) == {"messagesInQueue": True, "ongoingIndicator": True}
    assert await status({}) == {"messagesInQueue": True}
    s.deliver()
    assert await status({"transactionId": tx_id}) == {"messagesInQueue": False, "ongoingIndicator": True}
    await s.send(finished("Local"))
    assert await status({"transactionId": tx_id}) == {"messagesInQueue": True, "ongoingIndicator": False}
    s.deliver()
    assert await status({"transactionId": tx_id}) == {"messagesInQueue": False, "ongoingIndicator": False}
    for payload in ({}, {"transactionId": tx_id}):
        DIALECT.check("GetTransactionStatus", await status(payload), response=True)


async def test_id_token_info_updates_the_cache_and_an_invalid_token_stops(tmp_path, cleanup):
    """TC_E_16_CS (StopTxOnInvalidId true): the answer's idTokenInfo goes to the authorization cache; a token
    answered Invalid stops the transaction (DeAuthorized)."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.deliver({"idTokenInfo": {"status": "Invalid"}})
    await s.f.clock.advance(0)
    assert s.auth.calls == [(TOKEN, {"status": "Invalid"})]
    assert s.f.station.called("stop_transaction") == [(1, "DeAuthorized")]


async def test_stop_tx_on_invalid_id_false_suspends(tmp_path, cleanup):
    """StopTxOnInvalidId false: the transaction goes on, without energy."""
    s = await make(tmp_path, cleanup, {"TxCtrlr.StopTxOnInvalidId": "false"})
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.deliver({"idTokenInfo": {"status": "Blocked"}})
    await s.f.clock.advance(0)
    assert s.f.station.called("pause_charging") == [(1,)] and not s.f.station.called("stop_transaction")


async def test_max_energy_on_invalid_id(tmp_path, cleanup):
    """MaxEnergyOnInvalidId: after an Invalid answer the transaction may still charge that many Wh; only then
    it is stopped."""
    s = await make(tmp_path, cleanup, {"TxCtrlr.MaxEnergyOnInvalidId": "500"})
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.deliver({"idTokenInfo": {"status": "Invalid"}})
    s.meter(1499)
    await s.f.clock.advance(0)
    assert not s.f.station.called("stop_transaction")
    s.meter(1500)
    s.meter(1600)
    await s.f.clock.advance(0)
    assert s.f.station.called("stop_transaction") == [(1, "DeAuthorized")]


async def test_an_unusable_id_token_info_is_not_cached(tmp_path, cleanup):
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.deliver({"idTokenInfo": {"status": "Accepted", "evseId": [0]}})
    await s.f.clock.advance(0)
    assert s.auth.calls == [] and not s.f.station.called("stop_transaction")


async def test_remote_start(tmp_path, cleanup):
    """TC_E_13_CS (F01): RequestStartTransaction's remoteStartId goes in the next Started, triggerReason
    RemoteStart."""
    s = await make(tmp_path, cleanup, {START: "Authorized"})
    s.tx.expect_remote_start(1, 77)
    await s.send(event("SessionStarted", session_started={"reason": "Authorized", "id_tag": provided(
        request_id=77)}))
    [started] = s.events()
    assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 77


async def test_remote_start_into_a_running_transaction(tmp_path, cleanup):
    """TC_E_13_CS with TxStartPoint EVConnected: the remote start after the plug-in is an Updated
    (RemoteStart) with the token and remoteStartId."""
    s = await make(tmp_path, cleanup, {START: "EVConnected"})
    await s.send(PLUG)
    s.tx.expect_remote_start(None, 5)
    await s.send(AUTH)
    updated = s.events()[-1]
    assert (updated["triggerReason"], updated["idToken"], updated["transactionInfo"]["remoteStartId"]) == \
        ("RemoteStart", TOKEN, 5)


async def test_sampled_meter_values(tmp_path, cleanup):
    """TC_J_09_CS, TC_J_10_CS: TxUpdatedInterval: Updated (MeterValuePeriodic) with the TxUpdatedMeasurands
    (Sample.Periodic); TxEndedInterval: the TxEndedMeasurands samples kept for the Ended."""
    s = await make(tmp_path, cleanup, {"SampledDataCtrlr.TxUpdatedInterval": "60",
                                       "SampledDataCtrlr.TxEndedInterval": "120",
                                       "SampledDataCtrlr.TxUpdatedMeasurands":
                                           "Energy.Active.Import.Register,Power.Active.Import,Voltage"})
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.meter(1100)
    await s.f.clock.advance(60)
    periodic = s.events()[-1]
    assert (periodic["eventType"], periodic["triggerReason"]) == ("Updated", "MeterValuePeriodic")
    values = periodic["meterValue"][0]["sampledValue"]
    assert {(v["measurand"], v.get("phase")) for v in values} == {
        ("Energy.Active.Import.Register", None), ("Power.Active.Import", None), ("Voltage", "L1-N"),
        ("Voltage", "L2-N"), ("Voltage", "L3-N")}
    assert {v["context"] for v in values} == {"Sample.Periodic"}
    assert next(v for v in values if v["measurand"] == "Power.Active.Import")["unitOfMeasure"] == {"unit": "W"}
    await s.f.clock.advance(60)
    assert len([e for e in s.events() if e["triggerReason"] == "MeterValuePeriodic"]) == 2
    await s.send(finished("Local"))
    ended = s.events()[-1]
    contexts = [v["sampledValue"][0]["context"] for v in ended["meterValue"]]
    assert contexts == ["Transaction.Begin", "Sample.Periodic", "Transaction.End"]
    await s.f.clock.advance(600)
    assert s.events()[-1] == ended  # no sampling after the end


async def test_clock_aligned_meter_values(tmp_path, cleanup):
    """TC_J_01_CS, TC_J_02_CS, TC_J_03_CS: AlignedDataCtrlr.Interval: MeterValues (Sample.Clock) at the aligned
    times while idle, Updated (MeterValueClock) during a transaction, the aligned TxEnded samples in Ended."""
    s = await make(tmp_path, cleanup, {"AlignedDataCtrlr.Interval": "900", "SampledDataCtrlr.TxUpdatedInterval": "0",
                                       "AlignedDataCtrlr.TxEndedInterval": "900"})
    s.meter(1000)
    await s.f.clock.advance(900)
    [idle] = s.f.sender.of("MeterValues")
    DIALECT.check("MeterValues", idle, response=False)
    assert idle["evseId"] == 1 and idle["meterValue"][0]["timestamp"] == "2026-01-01T00:15:00.000Z"
    assert idle["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    await s.f.clock.advance(900)
    clock_event = s.events()[-1]
    assert (clock_event["triggerReason"], clock_event["meterValue"][0]["timestamp"]) == \
        ("MeterValueClock", "2026-01-01T00:30:00.000Z")
    assert len(s.f.sender.of("MeterValues")) == 1
    await s.send(finished("Local"))
    contexts = [v["sampledValue"][0]["context"] for v in s.events()[-1]["meterValue"]]
    assert contexts == ["Transaction.Begin", "Sample.Clock", "Transaction.End"]


async def test_send_during_idle_sends_no_aligned_values_in_transactions(tmp_path, cleanup):
    """TC_J_06_CS: SendDuringIdle: no clock-aligned values during a transaction, MeterValues while idle."""
    s = await make(tmp_path, cleanup, {"AlignedDataCtrlr.Interval": "60", "AlignedDataCtrlr.SendDuringIdle": "true",
                                       "SampledDataCtrlr.TxUpdatedInterval": "0"})
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    await s.f.clock.advance(120)
    assert [e["triggerReason"] for e in s.events()] == ["ChargingStateChanged"]
    assert s.f.sender.of("MeterValues") == []


async def test_trigger_messages(tmp_path, cleanup):
    """TC_F_20-style TriggerMessage: TransactionEvent (Updated, Trigger) for the running transaction, Rejected
    without one; MeterValues (Trigger) of the EVSEs with a reading."""
    s = await make(tmp_path, cleanup)
    assert await s.tx.trigger_transaction_event(None) == "Rejected"
    assert await s.tx.trigger_meter_values(1) == "Rejected"
    s.meter(1000)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    assert await s.tx.trigger_transaction_event(1) == "Accepted"
    triggered = s.events()[-1]
    assert triggered["triggerReason"] == "Trigger"
    assert triggered["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    assert await s.tx.trigger_meter_values(None) == "Accepted"
    await s.f.clock.advance(0)  # the send runs as a job after the answer
    [values] = s.f.sender.of("MeterValues")
    assert values["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


async def test_two_evses_are_independent(tmp_path, cleanup):
    s = Station201(tmp_path, evse_ids=[1, 2])
    cleanup(s)
    await s.tx.recover()
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING, evse_id=2)
    await s.send(event("SessionStarted", "s-9", session_started={"reason": "EVConnected"}), evse_id=1)
    [started] = s.events()
    assert started["evse"]["id"] == 2 and s.f.evses[1].transaction_id is None


async def test_a_bad_transaction_row_is_quarantined(tmp_path, cleanup):
    """A stored transaction that no longer fits is put aside, the others are recovered."""
    s = await make(tmp_path, cleanup)
    await s.send(PLUG, AUTH, TX_STARTED, CHARGING)
    s.f.store.write(f"UPDATE {TABLE} SET state = ?", ('{"start_time": "yesterday"}',))
    again = s.restart()
    cleanup(again)
    await again.tx.recover()
    assert again.events() == [] and again.tx.repository.open_transactions() == []
    assert any(row.kind == "transaction" for row in again.f.store.quarantined())

