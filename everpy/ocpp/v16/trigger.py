"""Remote Trigger profile: TriggerMessage (and the same messages for ExtendedTriggerMessage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.session import TRIGGERED
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.firmware import Firmware
from everpy.ocpp.v16.status import StatusNotifications
from everpy.ocpp.v16.transactions import Transactions

Sender = Callable[[], Awaitable[Any]]


def triggered(sender: Sender) -> Callable[[], Awaitable[None]]:
    """Follow-up work that sends a triggered message: allowed even while the boot is Pending."""

    async def send() -> None:
        TRIGGERED.set(True)  # this task only
        await sender()

    return send


class Trigger:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, status: StatusNotifications,
                 transactions: Transactions, firmware: Firmware, boot_payload: Callable[[], dict[str, Any]]) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.status = status
        self.transactions = transactions
        self.firmware = firmware
        self._boot_payload = boot_payload

    def senders(self, connector_id: int | None) -> dict[str, Sender]:
        return {
            "BootNotification": self._boot_notification,
            "Heartbeat": lambda: self.ctx.sender.call_or_log("Heartbeat", {}),
            "StatusNotification": lambda: self._status(connector_id),
            "MeterValues": lambda: self.transactions.send_meter_values_now(connector_id or 0),
            "FirmwareStatusNotification": self.firmware.send_firmware_status,
            "DiagnosticsStatusNotification": self.firmware.send_diagnostics_status,
        }

    @handles("TriggerMessage")
    async def on_trigger_message(self, payload: dict[str, Any]) -> Reply:
        requested, connector_id = payload["requestedMessage"], payload.get("connectorId")
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return Reply({"status": "Rejected"})
        sender = self.senders(connector_id).get(requested)
        if sender is None:
            return Reply({"status": "NotImplemented"})
        return Reply({"status": "Accepted"}, triggered(sender))

    async def _status(self, connector_id: int | None) -> None:
        targets = [connector_id] if connector_id is not None else [0, *self.connectors.ids()]
        for target in targets:
            await self.status.send(target, force=True)

    async def _boot_notification(self) -> None:
        if self.ctx.sender.request_boot_notification():
            return  # still Pending: the boot loop sends it, and an Accepted answer registers the station
        result = await self.ctx.sender.call_or_log("BootNotification", self._boot_payload())
        if result is not None and result["status"] == "Accepted" and result["interval"] > 0:
            self.ctx.config.set("HeartbeatInterval", str(result["interval"]))
