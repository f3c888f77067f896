"""Remote control (F) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (real bus,
EvseManager, Auth, simulated car) and the `ocpp` package's 2.0.1 CSMS over a real websocket (every frame
checked against the official schemas): a remote start after the plug-in, TriggerMessage during the
transaction, unlock refused while it runs, remote stop."""

from __future__ import annotations

import pytest
from ocpp.v201 import call

from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config

from .test_availability import status_of
from .test_crash import Received, RecordingCsms, check_transaction, ended_of, started

pytestmark = pytest.mark.slow

VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
TOKEN = {"idToken": "REMOTE-1", "type": "Central"}


def heartbeat(r: Received) -> bool:
    return r.action == "Heartbeat"


def triggered_update(r: Received) -> bool:
    return r.action == "TransactionEvent" and r.payload["triggerReason"] == "Trigger"


async def test_remote_start_trigger_unlock_and_remote_stop(tmp_path):
    """TC_F_01_CS TC_F_08_CS TC_F_09_CS TC_F_05_CS TC_F_10_CS TC_F_13_CS TC_F_20_CS TC_F_24_CS TC_F_26_CS
    TC_F_27_CS: the car is plugged in (Occupied) with no card; RequestStartTransaction: Accepted, the
    transaction starts with the token and the remoteStartId; TriggerMessage StatusNotification (Occupied),
    Heartbeat and TransactionEvent (an Updated, Trigger); BootNotification Rejected once Accepted; a message it
    cannot send NotImplemented; UnlockConnector refused during the transaction, UnknownConnector for no
    connector; RequestStopTransaction of an unknown id Rejected, of the transaction Accepted and it ends
    (Remote)."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, swipe=False, base=SIL_OCPP201,
                             keys=VARIABLES, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        await csms.wait_for(status_of("Occupied"))
        start = await csms.call(call.RequestStartTransaction(id_token=TOKEN, remote_start_id=42, evse_id=1))
        begin = await csms.wait_for(started)
        tx_id = begin.payload["transactionInfo"]["transactionId"]
        mark = len(csms.received)
        status = await csms.call(call.TriggerMessage(requested_message="StatusNotification",
                                                     evse={"id": 1, "connector_id": 1}))
        await csms.wait_for(status_of("Occupied"), after=mark)
        beat = await csms.call(call.TriggerMessage(requested_message="Heartbeat"))
        await csms.wait_for(heartbeat, after=mark)
        event = await csms.call(call.TriggerMessage(requested_message="TransactionEvent", evse={"id": 1}))
        update = await csms.wait_for(triggered_update, after=mark)
        boot = await csms.call(call.TriggerMessage(requested_message="BootNotification"))
        combined = await csms.call(call.TriggerMessage(requested_message="SignCombinedCertificate"))
        unlock = await csms.call(call.UnlockConnector(evse_id=1, connector_id=1))
        no_connector = await csms.call(call.UnlockConnector(evse_id=1, connector_id=2))
        unknown_stop = await csms.call(call.RequestStopTransaction(transaction_id="no-such-transaction"))
        stop = await csms.call(call.RequestStopTransaction(transaction_id=tx_id))
        end = await csms.wait_for(ended_of(tx_id))
    finally:
        station.stop()
        await csms.stop()
    assert start.status == "Accepted", station.log()
    assert begin.payload["idToken"] == TOKEN and begin.payload["transactionInfo"]["remoteStartId"] == 42
    assert [a.status for a in (status, beat, event)] == ["Accepted"] * 3
    assert update.payload["transactionInfo"]["transactionId"] == tx_id
    assert (boot.status, combined.status) == ("Rejected", "NotImplemented")
    assert (unlock.status, no_connector.status) == ("OngoingAuthorizedTransaction", "UnknownConnector")
    assert (unknown_stop.status, stop.status) == ("Rejected", "Accepted")
    assert end.payload["eventType"] == "Ended"
    check_transaction(csms, tx_id)


async def test_a_remote_stop_ends_the_transaction_as_remote_stop(tmp_path):
    """TC_F_08_CS: the Ended of a remotely stopped transaction says RemoteStop / Remote."""
    csms = RecordingCsms()
    await csms.start()
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, base=SIL_OCPP201, keys=VARIABLES,
                             test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        tx_id = (await csms.wait_for(started)).payload["transactionInfo"]["transactionId"]
        stop = await csms.call(call.RequestStopTransaction(transaction_id=tx_id))
        end = await csms.wait_for(ended_of(tx_id))
    finally:
        station.stop()
        await csms.stop()
    assert stop.status == "Accepted", station.log()
    assert (end.payload["triggerReason"], end.payload["transactionInfo"]["stoppedReason"]) == ("RemoteStop", "Remote")


async def test_a_remote_start_nobody_plugs_in_for_ends_at_the_connection_timeout(tmp_path):
    """TC_F_04_CS: TxStartPoint Authorized, EVConnectionTimeOut 10 s (the least Auth takes): the remote
    start's authorization starts the transaction (RemoteStart, remoteStartId); no car comes, and it ends at the
    timeout (EVConnectTimeout, Timeout)."""
    csms = RecordingCsms()
    await csms.start()
    variables = {**VARIABLES, "TxCtrlr.TxStartPoint": "Authorized", "TxCtrlr.EVConnectionTimeOut": "10"}
    config = sil_ocpp_config(tmp_path, csms.url, swipe=False, base=SIL_OCPP201, keys=variables, test_keys={})
    station = StationProcess(config, tmp_path)
    station.start()
    try:
        await csms.wait_for(status_of("Available"))
        start = await csms.call(call.RequestStartTransaction(id_token=TOKEN, remote_start_id=9, evse_id=1))
        begin = await csms.wait_for(started)
        tx_id = begin.payload["transactionInfo"]["transactionId"]
        end = await csms.wait_for(ended_of(tx_id))
    finally:
        station.stop()
        await csms.stop()
    assert start.status == "Accepted", station.log()
    assert (begin.payload["triggerReason"], begin.payload["transactionInfo"]["remoteStartId"]) == ("RemoteStart", 9)
    assert (end.payload["triggerReason"], end.payload["transactionInfo"]["stoppedReason"]) == \
        ("EVConnectTimeout", "Timeout")
