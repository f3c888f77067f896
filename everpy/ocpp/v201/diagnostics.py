"""Functional blocks N (diagnostics) and P (DataTransfer) of OCPP 2.0.1.

N01 GetLog: the System module packs and uploads the logs (DiagnosticsLog or SecurityLog) and publishes each
status with the request id; every status goes to the CSMS as a LogStatusNotification, after the GetLog
answer. TriggerMessage LogStatusNotification: Uploading while an upload runs, else Idle.

N09/N10 CustomerInformation: the customer data this station holds is what the authorization cache and the
local list keep of an idToken (no customer certificates, no data under a customerIdentifier). A report goes
out as NotifyCustomerInformation parts of at most 512 characters; a clear removes the token from the cache
(the local list is the CSMS's to change, N10.FR.06) and says so in a NotifyCustomerInformation.

P01 DataTransfer: handed to the station's local consumer; nobody there is UnknownVendorId. The customData
any message may carry is allowed by the schemas and ignored by every block (TC_P_03).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.firmware_requests import log_request
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.auth_repository import AuthRepository, id_token_problem
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.values import rfc3339

Ctx = BlockContext[DeviceModel]
LOG_ANSWERS = frozenset({"Accepted", "Rejected", "AcceptedCanceled"})
# UploadLogStatusEnumType of 2.0.1: the System module publishes these
LOG_STATUSES = frozenset({"BadMessage", "Idle", "NotSupportedOperation", "PermissionDenied", "Uploaded",
                          "UploadFailure", "Uploading", "AcceptedCanceled"})
MAX_INT32 = 2**31 - 1
MAX_PART = 512  # NotifyCustomerInformationRequest.data
MAX_PARTS = 100  # a report never floods the link
DATA_TRANSFER_ANSWERS = frozenset({"Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"})
NO_DATA = "No customer information found"


class SecurityEventLog(Protocol):
    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None: ...


class TokenStore(Protocol):
    """What the authorization block keeps of tokens."""

    repository: AuthRepository

    def forget(self, id_token: dict[str, Any]) -> bool: ...


def _rejected(reason_code: str, info: str) -> dict[str, Any]:
    return {"status": "Rejected", "statusInfo": {"reasonCode": reason_code, "additionalInfo": info[:512]}}


class Diagnostics:
    def __init__(self, ctx: Ctx, events: SecurityEventLog, authorization: TokenStore) -> None:
        self.ctx, self.events, self.authorization = ctx, events, authorization
        self.last_log_status: tuple[str, int] | None = None
        # statuses published while GetLog is being answered go out after the answer
        self._held: list[dict[str, Any]] | None = None

    # -- N01 GetLog ------------------------------------------------------------------------------------
    @handles("GetLog")
    async def on_get_log(self, payload: dict[str, Any]) -> Reply:
        log, request_id = payload["log"], payload["requestId"]
        retries, interval = payload.get("retries"), payload.get("retryInterval")
        if (retries is not None and not 0 <= retries < MAX_INT32) or (
                interval is not None and not 0 <= interval < MAX_INT32):
            return Reply(_rejected("InvalidValue", "retries and retryInterval must not be negative"))
        # 2.0.1 retries are retries; the system counts attempts
        request = log_request(request_id, log["remoteLocation"], log.get("oldestTimestamp"),
                              log.get("latestTimestamp"), None if retries is None else retries + 1, interval,
                              payload["logType"])
        if self._held is None:
            self._held = []
        status, file_name = await self.ctx.station.upload_logs(request)
        answer: dict[str, Any] = {"status": status if status in LOG_ANSWERS else "Rejected"}
        if answer["status"] == "Rejected":
            self.ctx.log.warning("log upload %d not started: the system answered %s", request_id, status)
        elif file_name:
            answer["filename"] = file_name[:255]
        return Reply(answer, self._answered)

    async def _answered(self) -> None:
        held, self._held = self._held or [], None
        for notification in held:
            self._send(notification)

    def _send(self, notification: dict[str, Any]) -> None:
        with self.ctx.store.atomic():  # queued: an Uploaded or UploadFailure is not lost to an outage
            self.ctx.sender.queue("LogStatusNotification", notification, None)

    async def on_log_status(self, status: dict[str, Any]) -> None:
        kind, request_id = status.get("log_status"), status.get("request_id")
        if kind not in LOG_STATUSES or not isinstance(request_id, int) or isinstance(request_id, bool):
            self.ctx.log.warning("ignoring a log status the system should not publish: %r", status)
            return
        self.last_log_status = (kind, request_id)
        notification: dict[str, Any] = {"status": kind}
        if request_id >= 0:  # the system's -1: a request without an id
            notification["requestId"] = request_id
        if self._held is not None:
            self._held.append(notification)
        else:
            self._send(notification)

    async def trigger_status(self) -> str:
        """LogStatusNotification: Uploading (with the requestId) while an upload runs, else Idle (N01)."""
        payload: dict[str, Any] = {"status": "Idle"}
        if self.last_log_status is not None and self.last_log_status[0] == "Uploading":
            payload = {"status": "Uploading", "requestId": self.last_log_status[1]}
        self.ctx.jobs.spawn(self.ctx.sender.call_or_log("LogStatusNotification", payload))
        return "Accepted"

    # -- N09/N10 CustomerInformation ---------------------------------------------------------------------
    @handles("CustomerInformation")
    async def on_customer_information(self, payload: dict[str, Any]) -> Reply:
        report, clear, request_id = payload["report"], payload["clear"], payload["requestId"]
        token = payload.get("idToken")
        if not report and not clear:
            return Reply(_rejected("InvalidValue", "neither report nor clear is asked for"))
        if token is None and "customerIdentifier" not in payload and "customerCertificate" not in payload:
            return Reply({"status": "Invalid", "statusInfo": {
                "reasonCode": "MissingParam",
                "additionalInfo": "no customerIdentifier, idToken or customerCertificate"}})
        if token is not None and (reason := id_token_problem(token)) is not None:
            return Reply({"status": "Invalid", "statusInfo": {"reasonCode": "InvalidIdToken",
                                                                "additionalInfo": reason[:512]}})
        found = self._customer_data(token) if report else []
        if clear and token is not None and self.authorization.forget(token):
            found.append("removed from the authorization cache")
        if not found:
            found = [NO_DATA] if report else ["cleared: no customer information was stored"]
        elif clear and not report:
            found = ["customer information cleared"]
        return Reply({"status": "Accepted"}, lambda: self._notify(request_id, "; ".join(found)))

    def _customer_data(self, token: dict[str, Any] | None) -> list[str]:
        """What this station holds of the customer: only tokens (cache and local list)."""
        if token is None:
            return []
        value, kind = token["idToken"], token["type"]
        repository, found = self.authorization.repository, []
        cached = repository.cache_entry(value, kind)
        if cached is not None:
            found.append(f"authorization cache {kind} {value}: {json.dumps(cached.info, sort_keys=True)}, "
                         f"last used {rfc3339(cached.used_at)}")
        listed = repository.list_info(value, kind)
        if listed is not None:
            found.append(f"local authorization list {kind} {value}: {json.dumps(listed, sort_keys=True)}")
        return found

    async def _notify(self, request_id: int, data: str) -> None:
        parts = [data[i:i + MAX_PART] for i in range(0, len(data), MAX_PART)][:MAX_PARTS] or [""]
        generated_at = rfc3339(self.ctx.clock.time())
        for seq_no, part in enumerate(parts):
            sent = await self.ctx.sender.call_or_log("NotifyCustomerInformation", {
                "data": part, "tbc": seq_no < len(parts) - 1, "seqNo": seq_no, "generatedAt": generated_at,
                "requestId": request_id})
            if sent is None:
                self.ctx.log.warning("customer information report %d stopped at part %d", request_id, seq_no)
                return


class DataTransfers:
    """P01: a DataTransfer of the CSMS goes to the station's local consumer of its vendorId."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    @handles("DataTransfer")
    async def on_data_transfer(self, payload: dict[str, Any]) -> Reply:
        data = payload.get("data")
        # the local interface carries a string; any other JSON value travels as its JSON text
        text = data if isinstance(data, str) or data is None else json.dumps(data)
        answer = await self.ctx.station.data_transfer(payload["vendorId"], payload.get("messageId"), text)
        status = answer.get("status")
        result: dict[str, Any] = {"status": status if status in DATA_TRANSFER_ANSWERS else "Rejected"}
        if answer.get("data") is not None and result["status"] == "Accepted":
            result["data"] = answer["data"]
        return Reply(result)
