"""Firmware Management profile: UpdateFirmware, GetDiagnostics and their status notifications,
carried out by the system interface."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.firmware_requests import firmware_request, log_request
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors

# system FirmwareUpdateStatusEnum -> OCPP 1.6 FirmwareStatus (statuses 1.6 has no name for are not sent)
FIRMWARE_STATUS = {
    "Downloaded": "Downloaded", "DownloadFailed": "DownloadFailed", "Downloading": "Downloading", "Idle": "Idle",
    "InstallationFailed": "InstallationFailed", "InstallVerificationFailed": "InstallationFailed",
    "InvalidSignature": "InstallationFailed", "Installing": "Installing", "InstallRebooting": "Installing",
    "Installed": "Installed",
}  # fmt: skip
LOG_STATUSES = {"BadMessage", "Idle", "NotSupportedOperation", "PermissionDenied", "Uploaded", "UploadFailure",
                "Uploading"}  # the security extension's UploadLogStatus (the system's AcceptedCanceled is not one)
DIAGNOSTICS_STATUS = {"Uploaded": "Uploaded", "UploadFailure": "UploadFailed", "Uploading": "Uploading",
                      "Idle": "Idle", "BadMessage": "UploadFailed", "PermissionDenied": "UploadFailed",
                      "NotSupportedOperation": "UploadFailed"}  # fmt: skip


class Firmware:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.signed_firmware_status: tuple[str, int | None] = ("Idle", None)
        self.log_status: tuple[str, int | None] = ("Idle", None)
        self._waiting_to_install = False

    @handles("UpdateFirmware")
    async def on_update_firmware(self, payload: dict[str, Any]) -> Reply:
        request = firmware_request(-1, payload["location"], payload["retrieveDate"], payload.get("retries"),
                                   payload.get("retryInterval"))

        async def start() -> None:
            answer = await self.ctx.station.update_firmware(request)
            if answer not in ("Accepted", "AcceptedCanceled"):
                self.ctx.log.warning("system refused the firmware update: %s", answer)

        return Reply({}, start)

    @handles("GetDiagnostics")
    async def on_get_diagnostics(self, payload: dict[str, Any]) -> Reply:
        request = log_request(-1, payload["location"], payload.get("startTime"), payload.get("stopTime"),
                              payload.get("retries"), payload.get("retryInterval"))
        status, file_name = await self.ctx.station.upload_logs(request)
        if status not in ("Accepted", "AcceptedCanceled") or not file_name:
            return Reply({})
        return Reply({"fileName": file_name[:255]})

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None:
        system_status = status["firmware_update_status"]
        if system_status in ("Downloaded", "InstallScheduled"):
            self._waiting_to_install = True
            self.transactions_changed()
        if status["request_id"] >= 0:  # a SignedUpdateFirmware (security extension): its own notification
            self.signed_firmware_status = (system_status, status["request_id"])
            await self.send_signed_firmware_status()
            return
        ocpp_status = FIRMWARE_STATUS.get(system_status)
        if ocpp_status is None:
            return
        self.firmware_status = ocpp_status
        await self.send_firmware_status()

    def transaction_ended(self, connector_id: int) -> None:
        self.transactions_changed()

    def transactions_changed(self) -> None:
        """Installation waits for running transactions to end (FirmwareManagement 1.6 §5.16)."""
        if self._waiting_to_install and not self.connectors.any_transaction():
            self._waiting_to_install = False
            self.ctx.jobs.spawn(self.ctx.station.allow_firmware_installation())

    async def on_log_status(self, status: dict[str, Any]) -> None:
        if status["request_id"] >= 0:  # a GetLog (security extension)
            if status["log_status"] in LOG_STATUSES:
                self.log_status = (status["log_status"], status["request_id"])
                await self.send_log_status()
            return
        ocpp_status = DIAGNOSTICS_STATUS.get(status["log_status"])
        if ocpp_status is None:
            return
        self.diagnostics_status = ocpp_status
        await self.send_diagnostics_status()

    async def send_firmware_status(self) -> None:
        await self.ctx.sender.call_or_log("FirmwareStatusNotification", {"status": self.firmware_status})

    async def send_diagnostics_status(self) -> None:
        await self.ctx.sender.call_or_log("DiagnosticsStatusNotification", {"status": self.diagnostics_status})

    async def send_signed_firmware_status(self) -> None:
        status, request_id = self.signed_firmware_status
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        await self.ctx.sender.call_or_log("SignedFirmwareStatusNotification", payload)

    async def send_log_status(self) -> None:
        status, request_id = self.log_status
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        await self.ctx.sender.call_or_log("LogStatusNotification", payload)

