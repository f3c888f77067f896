"""Diagnostics (N) and DataTransfer (P) end to end: the SIL charger of config/sil-ocpp201.yaml as its own
process (its System module packs the log files and uploads them to real FTP and HTTP servers) and the
development CSMS (everpy/csms/v201.py) over a real websocket."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from everpy.csms import v201
from tests.ocpp.sil import SIL_OCPP201, StationProcess, sil_ocpp_config
from tests.system.servers import FtpServer, HttpServer

pytestmark = pytest.mark.slow

STATION = "CP1"
WAIT_S = 20.0
VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
CUSTOM = {"vendorId": "org.openchargealliance.octt", "sessionsToDate": 342}


def log_statuses(csms: v201.Csms, request_id: int) -> list[str]:
    return [r.payload["status"] for r in csms.distinct("LogStatusNotification")
            if r.payload.get("requestId") == request_id]


def config(tmp_path: Path, csms: v201.Csms) -> dict:
    return sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, keys=VARIABLES, test_keys={},
                           system={"default_retry_interval_s": 0})


async def test_get_log_uploads_to_ftp_and_http(tmp_path: Path):
    """TC_N_25_CS TC_N_35_CS TC_N_26_CS: GetLog DiagnosticsLog to an FTP server and SecurityLog to an HTTP
    server: Accepted with the file name, Uploading then Uploaded, and the archive arrives holding the log file;
    to a server that is not there: UploadFailure; TriggerMessage LogStatusNotification then Idle."""
    async with HttpServer(tmp_path / "http") as http, v201.Csms() as csms:
        with FtpServer(tmp_path / "ftp") as ftp:
            station = StationProcess(config(tmp_path, csms), tmp_path)
            station.start()
            try:
                (tmp_path / "logs" / "everpy.log").write_text("a diagnostics line\n")
                await csms.wait_for("StatusNotification", timeout=WAIT_S)
                diagnostics = await csms.call(STATION, "GetLog", {"logType": "DiagnosticsLog", "requestId": 21,
                                                                  "log": {"remoteLocation": ftp.url("/")}})
                uploaded = await ftp.wait_for_file(diagnostics["filename"], WAIT_S)
                await csms.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", WAIT_S)
                security = await csms.call(STATION, "GetLog", {"logType": "SecurityLog", "requestId": 22,
                                                               "log": {"remoteLocation": http.url("/upload")}})
                archive = await http.wait_for_upload(security["filename"], WAIT_S)
                await csms.wait_for("LogStatusNotification",
                                    lambda p: p["status"] == "Uploaded" and p["requestId"] == 22, WAIT_S)
                failed = await csms.call(STATION, "GetLog", {"logType": "DiagnosticsLog", "requestId": 23,
                                                             "retries": 0, "log": {"remoteLocation":
                                                                                   "ftp://127.0.0.1:9/"}})
                await csms.wait_for("LogStatusNotification", lambda p: p["status"] == "UploadFailure", WAIT_S)
                mark = len(csms.received)
                trigger = await csms.call(STATION, "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
                idle = await csms.wait_for("LogStatusNotification", timeout=WAIT_S, after=mark)
            finally:
                station.stop()
    assert diagnostics["status"] == "Accepted" and "DiagnosticsLog" in diagnostics["filename"], station.log()
    assert log_statuses(csms, 21) == ["Uploading", "Uploaded"]
    with tarfile.open(uploaded) as packed:
        assert any(name.endswith("everpy.log") for name in packed.getnames())
    assert security["status"] == "Accepted" and "SecurityLog" in security["filename"]
    assert log_statuses(csms, 22) == ["Uploading", "Uploaded"]
    with tarfile.open(fileobj=io.BytesIO(archive)) as packed:
        assert packed.getnames()
    assert failed["status"] == "Accepted" and log_statuses(csms, 23) == ["Uploading", "UploadFailure"]
    assert trigger == {"status": "Accepted"} and idle.payload == {"status": "Idle"}


async def test_customer_information_data_transfer_and_custom_data(tmp_path: Path):
    """TC_N_32_CS TC_N_28_CS TC_N_31_CS TC_N_62_CS TC_P_01_CS TC_P_03_CS: CustomerInformation clear without
    report: Accepted and one NotifyCustomerInformation saying it was cleared; report of a token the station
    holds nothing of, and clear and report of a customerIdentifier: Accepted, a part saying no data was found;
    neither report nor clear: Rejected. A DataTransfer of a vendor nobody handles: UnknownVendorId. SetVariables
    and GetVariables of OCPPCommCtrlr.OfflineThreshold carrying customData: Accepted, 200."""
    token = {"idToken": "CUSTOMER-1", "type": "ISO14443"}
    async with v201.Csms() as csms:
        station = StationProcess(config(tmp_path, csms), tmp_path)
        station.start()
        try:
            await csms.wait_for("StatusNotification", timeout=WAIT_S)
            cleared = await csms.call(STATION, "CustomerInformation", {"requestId": 31, "report": False,
                                                                       "clear": True, "idToken": token})
            await csms.wait_report(31, "NotifyCustomerInformation", timeout=WAIT_S)
            reported = await csms.call(STATION, "CustomerInformation", {"requestId": 32, "report": True,
                                                                        "clear": True, "idToken": token})
            await csms.wait_report(32, "NotifyCustomerInformation", timeout=WAIT_S)
            by_identifier = await csms.call(STATION, "CustomerInformation", {
                "requestId": 33, "report": True, "clear": True, "customerIdentifier": "OpenChargeAlliance"})
            await csms.wait_report(33, "NotifyCustomerInformation", timeout=WAIT_S)
            neither = await csms.call(STATION, "CustomerInformation", {"requestId": 34, "report": False,
                                                                       "clear": False, "idToken": token})
            # the dev CSMS's call() is for requests only; DataTransfer goes both ways
            transfer = await csms.call_action(STATION, "DataTransfer", {
                "vendorId": "org.openchargealliance.octt", "messageId": "unknown", "customData": CUSTOM})
            variable = {"component": {"name": "OCPPCommCtrlr", "customData": CUSTOM},
                        "variable": {"name": "OfflineThreshold", "customData": CUSTOM}}
            set_answer = await csms.call(STATION, "SetVariables", {"customData": CUSTOM, "setVariableData": [
                {**variable, "attributeValue": "200", "attributeType": "Actual", "customData": CUSTOM}]})
            get_answer = await csms.call(STATION, "GetVariables", {"customData": CUSTOM, "getVariableData": [
                {**variable, "attributeType": "Actual", "customData": CUSTOM}]})
        finally:
            station.stop()
    assert cleared == {"status": "Accepted"}, station.log()
    parts = {request_id: csms.reports[(STATION, "NotifyCustomerInformation", request_id)].parts
             for request_id in (31, 32, 33)}
    assert [p["data"] for p in parts[31]] == ["cleared: no customer information was stored"]
    assert reported == by_identifier == {"status": "Accepted"}
    assert [p["data"] for p in parts[32]] == [p["data"] for p in parts[33]] == ["No customer information found"]
    assert neither["status"] == "Rejected"
    assert transfer.status == "UnknownVendorId"
    assert set_answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
    result = get_answer["getVariableResult"][0]
    assert (result["attributeStatus"], result["attributeValue"]) == ("Accepted", "200")
    assert result.get("attributeType", "Actual") == "Actual"
