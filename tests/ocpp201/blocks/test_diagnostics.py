"""Functional blocks N (diagnostics) and P (DataTransfer) of OCPP 2.0.1 against a fake context: GetLog becomes
the system's upload request and each status a LogStatusNotification after the answer; CustomerInformation
reports and clears what the authorization cache holds of a token; DataTransfer goes to the local consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.ocpp.v201.authorization import Authorization
from everpy.ocpp.v201.diagnostics import NO_DATA, DataTransfers, Diagnostics
from everpy.ocpp.v201.dialect import DIALECT

from .fakes import block_context, handle

TOKEN = {"idToken": "CUSTOMER-1", "type": "ISO14443"}


class N:
    def __init__(self, tmp_path: Path) -> None:
        self.f = block_context(tmp_path, [1])
        self.authorization = Authorization(self.f.ctx, self.f.evses)
        self.diagnostics = Diagnostics(self.f.ctx, None, self.authorization)  # type: ignore[arg-type]  # no events used
        self.data_transfers = DataTransfers(self.f.ctx)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await handle(self.f, action, payload, self.diagnostics, self.data_transfers)

    async def get_log(self, request_id: int = 4, log_type: str = "DiagnosticsLog", **more: Any) -> dict[str, Any]:
        return await self.call("GetLog", {"logType": log_type, "requestId": request_id, "retries": 1,
                                          "retryInterval": 3, "log": {"remoteLocation": "ftp://logs.example/"},
                                          **more})

    async def system(self, *statuses: str, request_id: int = 4) -> None:
        for status in statuses:
            await self.diagnostics.on_log_status({"log_status": status, "request_id": request_id})

    def log_statuses(self) -> list[tuple[str, int | None]]:
        found = self.f.sender.of("LogStatusNotification")
        for payload in found:
            DIALECT.check("LogStatusNotification", payload, response=False)
        return [(p["status"], p.get("requestId")) for p in found]

    def notified(self) -> list[dict[str, Any]]:
        found = self.f.sender.of("NotifyCustomerInformation")
        for payload in found:
            DIALECT.check("NotifyCustomerInformation", payload, response=False)
        return found

    async def trigger(self) -> dict[str, Any]:
        mark = len(self.f.sender.sent)
        assert await self.diagnostics.trigger_status() == "Accepted"
        await self.f.ctx.jobs.wait_idle()
        (payload,) = [p for a, p in self.f.sender.sent[mark:] if a == "LogStatusNotification"]
        return payload


async def test_get_log_uploads_and_reports_each_status(tmp_path):
    """TC_N_25_CS TC_N_35_CS: GetLog of the diagnostics or the security log: Accepted with the system's file
    name; the system gets the location, type, window and retries + 1 attempts; Uploading and Uploaded go out
    with the requestId; a trigger says Uploading during the upload, Idle after (TC_F_16_CS, TC_F_15_CS)."""
    block = N(tmp_path)
    block.f.station.answers["upload_logs"] = ("Accepted", "cp1-SecurityLog.tar.gz")
    answer = await block.get_log(log_type="SecurityLog", log={
        "remoteLocation": "ftp://logs.example/", "oldestTimestamp": "2026-01-01T00:00:00Z"})
    assert answer == {"status": "Accepted", "filename": "cp1-SecurityLog.tar.gz"}
    (request,), = block.f.station.called("upload_logs")
    assert request == {"location": "ftp://logs.example/", "request_id": 4, "type": "SecurityLog", "retries": 2,
                       "retry_interval_s": 3, "oldest_timestamp": "2026-01-01T00:00:00Z"}
    await block.system("Uploading")
    assert await block.trigger() == {"status": "Uploading", "requestId": 4}
    await block.system("Uploaded")
    assert block.log_statuses() == [("Uploading", 4), ("Uploading", 4), ("Uploaded", 4)]
    assert await block.trigger() == {"status": "Idle"}


async def test_a_failed_upload_and_a_second_request(tmp_path):
    """TC_N_26_CS TC_N_36_CS: UploadFailure goes out; a request while one runs is the system's
    AcceptedCanceled; a refused one Rejected without a file name; statuses published while GetLog is
    answered follow the answer."""
    block = N(tmp_path)
    await block.get_log()
    await block.system("Uploading", "UploadFailure")
    block.f.station.answers["upload_logs"] = ("AcceptedCanceled", "second.tar.gz")
    assert await block.get_log(request_id=5) == {"status": "AcceptedCanceled", "filename": "second.tar.gz"}
    block.f.station.answers["upload_logs"] = ("Rejected", None)
    assert await block.get_log(request_id=6) == {"status": "Rejected"}

    async def answer(request: dict[str, Any]) -> tuple[str, str | None]:
        await block.diagnostics.on_log_status({"log_status": "Uploading", "request_id": 7})
        assert ("Uploading", 7) not in block.log_statuses()
        return "Accepted", "third.tar.gz"

    block.f.station.upload_logs = answer
    await block.get_log(request_id=7)
    assert block.log_statuses() == [("Uploading", 4), ("UploadFailure", 4), ("Uploading", 7)]


async def test_hostile_get_log_values(tmp_path):
    """Negative retries: Rejected, nothing asked of the system; a status the system should not publish is
    ignored."""
    block = N(tmp_path)
    assert (await block.get_log(retries=-1))["status"] == "Rejected"
    assert block.f.station.called("upload_logs") == []
    await block.diagnostics.on_log_status({"log_status": "Exploded", "request_id": 1})
    assert block.log_statuses() == []


def _cache(block: N) -> None:
    block.authorization.repository.put_cache(TOKEN["idToken"], TOKEN["type"], {"status": "Accepted"},
                                             block.f.clock.time())


async def test_customer_information_report(tmp_path):
    """TC_N_27_CS TC_N_28_CS: a report of a cached token: Accepted, its data in NotifyCustomerInformation
    (seqNo 0, tbc false, the requestId); of an unknown token: a part saying no data was found."""
    block = N(tmp_path)
    _cache(block)
    answer = await block.call("CustomerInformation", {"requestId": 1, "report": True, "clear": False,
                                                      "idToken": TOKEN})
    assert answer == {"status": "Accepted"}
    (part,) = block.notified()
    assert (part["requestId"], part["seqNo"], part["tbc"]) == (1, 0, False)
    assert "CUSTOMER-1" in part["data"] and "authorization cache" in part["data"]
    assert block.authorization.repository.cache_entry("CUSTOMER-1", "ISO14443") is not None  # kept
    await block.call("CustomerInformation", {"requestId": 2, "report": True, "clear": False,
                                             "idToken": {"idToken": "NOBODY", "type": "ISO14443"}})
    assert block.notified()[-1]["data"] == NO_DATA


async def test_customer_information_clear(tmp_path):
    """TC_N_30_CS TC_N_31_CS TC_N_32_CS TC_N_62_CS: clear and report of a cached token: the data, then gone
    from the cache; clear without report: one part saying it was cleared; clear of nothing stored, and of a
    customerIdentifier the station holds nothing for: Accepted, a part saying so."""
    block = N(tmp_path)
    _cache(block)
    assert (await block.call("CustomerInformation", {"requestId": 3, "report": True, "clear": True,
                                                     "idToken": TOKEN}))["status"] == "Accepted"
    assert "CUSTOMER-1" in block.notified()[-1]["data"]
    assert block.authorization.repository.cache_entry("CUSTOMER-1", "ISO14443") is None
    _cache(block)
    await block.call("CustomerInformation", {"requestId": 4, "report": False, "clear": True, "idToken": TOKEN})
    assert block.notified()[-1]["data"] == "customer information cleared"
    assert block.authorization.repository.cache_entry("CUSTOMER-1", "ISO14443") is None
    await block.call("CustomerInformation", {"requestId": 5, "report": True, "clear": True, "idToken": TOKEN})
    assert block.notified()[-1]["data"] == NO_DATA
    await block.call("CustomerInformation", {"requestId": 6, "report": True, "clear": True,
                                             "customerIdentifier": "OpenChargeAlliance"})
    assert (block.notified()[-1]["requestId"], block.notified()[-1]["data"]) == (6, NO_DATA)


async def test_customer_information_refusals_and_long_reports(tmp_path):
    """Neither report nor clear: Rejected; no identifier: Invalid; nothing is sent for either. A report longer
    than 512 characters goes in parts (seqNo counting, tbc on all but the last)."""
    block = N(tmp_path)
    assert (await block.call("CustomerInformation", {"requestId": 1, "report": False, "clear": False,
                                                     "idToken": TOKEN}))["status"] == "Rejected"
    assert (await block.call("CustomerInformation", {"requestId": 2, "report": True, "clear": False}))[
        "status"] == "Invalid"
    assert block.notified() == []
    block.authorization.repository.put_cache(TOKEN["idToken"], TOKEN["type"], {
        "status": "Accepted", "personalMessage": {"format": "UTF8", "content": "x" * 400}}, block.f.clock.time())
    block.authorization.repository.put_list(TOKEN["idToken"], TOKEN["type"], {
        "status": "Accepted", "personalMessage": {"format": "UTF8", "content": "y" * 400}})
    await block.call("CustomerInformation", {"requestId": 3, "report": True, "clear": False, "idToken": TOKEN})
    parts = block.notified()
    assert [(p["seqNo"], p["tbc"]) for p in parts] == [(n, n < len(parts) - 1) for n in range(len(parts))]
    assert len(parts) > 1 and all(len(p["data"]) <= 512 for p in parts)
    assert "x" * 400 in "".join(p["data"] for p in parts)


async def test_data_transfer_goes_to_the_local_consumer(tmp_path):
    """TC_P_01_CS: the vendorId, messageId and data go to the station's consumer; its UnknownVendorId,
    UnknownMessageId or Rejected is the answer, an Accepted carries its data; an answer outside the enum is
    Rejected; JSON data other than a string travels as its JSON text; customData is accepted and ignored."""
    block = N(tmp_path)
    block.f.station.answers["data_transfer"] = {"status": "UnknownVendorId"}
    payload = {"vendorId": "org.openchargealliance.octt", "messageId": "m1",
               "customData": {"vendorId": "org.example", "extra": 1}}
    assert await block.call("DataTransfer", payload) == {"status": "UnknownVendorId"}
    block.f.station.answers["data_transfer"] = {"status": "UnknownMessageId"}
    assert await block.call("DataTransfer", payload) == {"status": "UnknownMessageId"}
    block.f.station.answers["data_transfer"] = {"status": "Accepted", "data": "pong"}
    assert await block.call("DataTransfer", {"vendorId": "v", "data": {"ping": [1, 2]}}) == {
        "status": "Accepted", "data": "pong"}
    block.f.station.answers["data_transfer"] = {"status": "Offline"}
    assert await block.call("DataTransfer", {"vendorId": "v"}) == {"status": "Rejected"}
    assert block.f.station.called("data_transfer")[:3] == [
        ("org.openchargealliance.octt", "m1", None), ("org.openchargealliance.octt", "m1", None),
        ("v", None, '{"ping": [1, 2]}')]
