"""Remote Trigger profile: TriggerMessage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.chargepoint import TRIGGERED

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16


class Trigger:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        cp.handle("TriggerMessage", self.on_trigger_message)

    async def on_trigger_message(self, payload: dict[str, Any]) -> Reply:
        requested, connector_id = payload["requestedMessage"], payload.get("connectorId")
        if connector_id is not None and connector_id != 0 and connector_id not in self.cp.core.connectors:
            return Reply({"status": "Rejected"})
        senders: dict[str, Callable[[], Awaitable[Any]]] = {
            "BootNotification": self._boot_notification,
            "Heartbeat": lambda: self.cp.call_or_log("Heartbeat", {}),
            "StatusNotification": lambda: self._status(connector_id),
            "MeterValues": lambda: self.cp.core.send_meter_values_now(connector_id or 0),
            "FirmwareStatusNotification": self.cp.firmware.send_firmware_status,
            "DiagnosticsStatusNotification": self.cp.firmware.send_diagnostics_status,
        }
        sender = senders.get(requested)
        if sender is None:
            return Reply({"status": "NotImplemented"})

        async def send() -> None:
            TRIGGERED.set(True)  # this task only: allowed even while the boot is Pending
            await sender()

        return Reply({"status": "Accepted"}, send)

    async def _status(self, connector_id: int | None) -> None:
        targets = [connector_id] if connector_id is not None else [0, *self.cp.core.connectors]
        for target in targets:
            await self.cp.core.send_status(target, force=True)

    async def _boot_notification(self) -> None:
        if self.cp.request_boot_notification():
            return  # still Pending: the boot loop sends it, and an Accepted answer registers the station
        settings = self.cp.settings
        payload = {"chargePointVendor": settings.vendor, "chargePointModel": settings.model}
        if settings.serial_number:
            payload["chargePointSerialNumber"] = settings.serial_number
        if settings.firmware_version:
            payload["firmwareVersion"] = settings.firmware_version
        result = await self.cp.call_or_log("BootNotification", payload)
        if result is not None and result["status"] == "Accepted" and result["interval"] > 0:
            self.cp.config.set("HeartbeatInterval", str(result["interval"]))
