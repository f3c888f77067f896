"""Transactions (E) and meter values (J) end to end: the SIL charger of config/sil-ocpp201.yaml as its own
process (real bus, EvseManager, simulated car, meter and RFID reader) and the `ocpp` package's 2.0.1 CSMS
over a real websocket (every frame checked against the official schemas)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v201 import call, call_result

from tests.ocpp.sil import SIL_OCPP201, StationProcess, sil_ocpp_config

from .test_crash import RecordingCsms, _Peer, check_transaction, ended_of, periodic_of, started

pytestmark = pytest.mark.slow

CHARGE_THEN_UNPLUG = "iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 4;unplug"
VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0",
             "SampledDataCtrlr.TxUpdatedInterval": "1",
             "SampledDataCtrlr.TxUpdatedMeasurands": "Energy.Active.Import.Register,Power.Active.Import,Voltage"}


async def status_once_delivered(csms: RecordingCsms, tx_id: str) -> Any:
    """GetTransactionStatus once the station has taken the Ended event off its queue: it does so when our
    CALLRESULT arrives, which may be a moment after we received the event (bounded: 5 s)."""
    async def delivered() -> Any:
        while (status := await csms.call(call.GetTransactionStatus(transaction_id=tx_id))).messages_in_queue:
            await asyncio.sleep(0.05)
        return status
    return await asyncio.wait_for(delivered(), 5)


def contexts(payload: dict[str, Any]) -> list[str]:
    return [value["sampledValue"][0]["context"] for value in payload.get("meterValue", [])]


async def test_a_charging_session_as_transaction_events(tmp_path):
    """TC_E_01_CS, TC_E_03_CS, TC_E_20_CS, TC_J_07_CS, TC_J_09_CS, TC_J_10_CS, TC_E_30_CS, TC_E_32_CS: cable
    first, the RFID token, charging, unplugging: Started at the power path closing (the token, the EVSE,
    Transaction.Begin), periodic Updated with the sampled measurands, Ended at the unplug (EVCommunicationLost,
    EVDisconnected, Transaction.End); seqNo 0..n; GetTransactionStatus during and after the transaction."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_THEN_UNPLUG, base=SIL_OCPP201,
                             keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        start = await csms.wait_for(started)
        tx_id = start.payload["transactionInfo"]["transactionId"]
        periodic = await csms.wait_for(periodic_of(tx_id))
        ongoing = await csms.call(call.GetTransactionStatus(transaction_id=tx_id))
        ended = await csms.wait_for(ended_of(tx_id))
        after = await status_once_delivered(csms, tx_id)
        unknown = await csms.call(call.GetTransactionStatus(transaction_id="no-such-transaction"))
    finally:
        station.stop()
        await csms.stop()
    begin = start.payload
    assert begin["evse"] == {"id": 1, "connectorId": 1}, station.log()
    assert begin["idToken"]["idToken"] == "DEADBEEF"
    assert begin["triggerReason"] == "ChargingStateChanged" and begin["transactionInfo"]["chargingState"] == "Charging"
    assert contexts(begin) == ["Transaction.Begin"]
    measurands = {value["measurand"] for value in periodic.payload["meterValue"][0]["sampledValue"]}
    assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import", "Voltage"}
    assert ended.payload["triggerReason"] == "EVCommunicationLost"
    assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert contexts(ended.payload)[-1] == "Transaction.End"
    energies = [value["sampledValue"][0]["value"] for value in ended.payload["meterValue"]]
    assert energies[-1] > energies[0]  # the car drew energy
    check_transaction(csms, tx_id)
    assert ongoing.ongoing_indicator is True
    assert (after.ongoing_indicator, after.messages_in_queue) == (False, False)
    assert (unknown.ongoing_indicator, unknown.messages_in_queue) == (False, False)


class HoldingPeer(_Peer):
    """Answers a TransactionEvent of a held eventType only once the test releases it: until then the event
    is still in the station's queue (sent, not acknowledged)."""

    csms: HoldingCsms

    async def route_message(self, raw_msg: str) -> None:
        # the ocpp package reads the next frame only once a handler returned: a held answer would also hold
        # the answers to our own calls, so every frame is handled in a task of its own
        task = asyncio.ensure_future(super().route_message(raw_msg))
        self.csms.tasks.add(task)
        task.add_done_callback(self.csms.tasks.discard)

    @on("TransactionEvent")
    async def transaction_event(self, event_type: str, id_token: Any = None, **_: Any) -> call_result.TransactionEvent:
        released = self.csms.released.get(event_type)
        if released is not None:
            await released.wait()  # the CSMS's behaviour under test: it takes its time to answer
        return call_result.TransactionEvent(id_token_info={"status": "Accepted"} if id_token else None)


class HoldingCsms(RecordingCsms):
    def __init__(self) -> None:
        super().__init__()
        self.released: dict[str, asyncio.Event] = {"Updated": asyncio.Event(), "Ended": asyncio.Event()}
        self.tasks: set[asyncio.Task[None]] = set()

    def _peer(self, connection: Any) -> _Peer:
        return HoldingPeer("CP1", connection, self)


async def test_transaction_status_with_messages_in_the_queue(tmp_path):
    """TC_E_29_CS TC_E_33_CS TC_E_31_CS: while an Updated of the running transaction is unanswered,
    GetTransactionStatus says messagesInQueue true (with the id: ongoing; without one: any transaction); while
    its Ended is unanswered: ended, still in the queue; once answered: nothing in the queue."""
    csms = HoldingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_THEN_UNPLUG, base=SIL_OCPP201,
                             keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        tx_id = (await csms.wait_for(started)).payload["transactionInfo"]["transactionId"]
        await csms.wait_for(periodic_of(tx_id))
        ongoing = await csms.call(call.GetTransactionStatus(transaction_id=tx_id))
        any_transaction = await csms.call(call.GetTransactionStatus())
        csms.released["Updated"].set()
        await csms.wait_for(ended_of(tx_id))
        ended = await csms.call(call.GetTransactionStatus(transaction_id=tx_id))
        csms.released["Ended"].set()
        after = await status_once_delivered(csms, tx_id)
    finally:
        station.stop()
        await csms.stop()
    assert (ongoing.ongoing_indicator, ongoing.messages_in_queue) == (True, True), station.log()
    assert any_transaction.messages_in_queue is True and any_transaction.ongoing_indicator is None
    assert (ended.ongoing_indicator, ended.messages_in_queue) == (False, True)
    assert (after.ongoing_indicator, after.messages_in_queue) == (False, False)
