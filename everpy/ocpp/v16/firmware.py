"""Firmware Management profile: UpdateFirmware, GetDiagnostics and their status notifications,
carried out by the system interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from everpy.ocpp.rpc import Reply

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

# system FirmwareUpdateStatusEnum -> OCPP 1.6 FirmwareStatus (statuses 1.6 has no name for are not sent)
FIRMWARE_STATUS = {
    "Downloaded": "Downloaded", "DownloadFailed": "DownloadFailed", "Downloading": "Downloading", "Idle": "Idle",
    "InstallationFailed": "InstallationFailed", "InstallVerificationFailed": "InstallationFailed",
    "InvalidSignature": "InstallationFailed", "Installing": "Installing", "InstallRebooting": "Installing",
    "Installed": "Installed",
}  # fmt: skip
DIAGNOSTICS_STATUS = {"Uploaded": "Uploaded", "UploadFailure": "UploadFailed", "Uploading": "Uploading",
                      "Idle": "Idle", "BadMessage": "UploadFailed", "PermissionDenied": "UploadFailed",
                      "NotSupportedOperation": "UploadFailed"}  # fmt: skip


class Firmware:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self._waiting_to_install = False
        cp.handle("UpdateFirmware", self.on_update_firmware)
        cp.handle("GetDiagnostics", self.on_get_diagnostics)

    async def on_update_firmware(self, payload: dict[str, Any]) -> Reply:
        async def start() -> None:
            answer = await self.cp.station.update_firmware(
                payload["location"], payload["retrieveDate"], payload.get("retries"), payload.get("retryInterval"))
            if answer != "Accepted":
                self.cp.log.warning("system refused the firmware update: %s", answer)

        return Reply({}, start)

    async def on_get_diagnostics(self, payload: dict[str, Any]) -> Reply:
        file_name = await self.cp.station.upload_logs(
            payload["location"], payload.get("startTime"), payload.get("stopTime"), payload.get("retries"),
            payload.get("retryInterval"))
        return Reply({"fileName": file_name[:255]} if file_name else {})

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None:
        system_status = status["firmware_update_status"]
        if system_status in ("Downloaded", "InstallScheduled"):
            self._waiting_to_install = True
            self.transactions_changed()
        ocpp_status = FIRMWARE_STATUS.get(system_status)
        if ocpp_status is None:
            return
        self.firmware_status = ocpp_status
        await self.send_firmware_status()

    def transactions_changed(self) -> None:
        """Installation waits for running transactions to end (FirmwareManagement 1.6 §5.16)."""
        if self._waiting_to_install and all(c.transaction is None for c in self.cp.core.connectors.values()):
            self._waiting_to_install = False
            self.cp.spawn(self.cp.station.allow_firmware_installation())

    async def on_log_status(self, status: dict[str, Any]) -> None:
        ocpp_status = DIAGNOSTICS_STATUS.get(status["log_status"])
        if ocpp_status is None:
            return
        self.diagnostics_status = ocpp_status
        await self.send_diagnostics_status()

    async def send_firmware_status(self) -> None:
        await self.cp.call_or_log("FirmwareStatusNotification", {"status": self.firmware_status})

    async def send_diagnostics_status(self) -> None:
        await self.cp.call_or_log("DiagnosticsStatusNotification", {"status": self.diagnostics_status})
