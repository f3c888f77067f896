"""Remote control by the CSMS: RemoteStart/StopTransaction, Reset, UnlockConnector, DataTransfer.

Accepted means done: a command whose effect runs on the charger is answered Accepted only once the
charger took it; if the charger cannot be reached the answer is Rejected and a security event says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.smart_charging import SmartCharging
from everpy.ocpp.v16.transactions import Transactions
from everpy.ocpp.values import EvseRef, IdToken, ResetKind, ResetRequest

SecurityEvent = Callable[[str, str], None]


class RemoteControl:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, transactions: Transactions,
                 smart_charging: SmartCharging, reset_drain_timeout_s: float, security_event: SecurityEvent) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.transactions = transactions
        self.smart_charging = smart_charging
        self._reset_drain_timeout_s = reset_drain_timeout_s
        self._security_event = security_event
        self._reset_pending = False

    def _startable(self, connector_id: int) -> bool:
        c = self.connectors[connector_id]
        return self.connectors.status_of(connector_id)[0] not in ("Unavailable", "Faulted") and c.transaction is None

    @handles("RemoteStartTransaction")
    async def on_remote_start(self, payload: dict[str, Any]) -> Reply:
        if not self.ctx.sender.accepted:  # not allowed before the BootNotification is Accepted (1.6 §4.2)
            return Reply({"status": "Rejected"})
        connector_id = payload.get("connectorId")
        if connector_id is not None:
            if connector_id not in self.connectors or not self._startable(connector_id):
                return Reply({"status": "Rejected"})
        elif not any(self._startable(c) for c in self.connectors.ids()):
            return Reply({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile is not None and not self.smart_charging.accept_remote_start_profile(connector_id, profile):
            return Reply({"status": "Rejected"})
        prevalidated = not self.ctx.config.bool("AuthorizeRemoteTxRequests")
        evse_ids = [connector_id] if connector_id else None

        async def hand_over() -> None:
            self.ctx.station.provide_token(IdToken(payload["idTag"], "Central"), evse_ids, prevalidated)

        return Reply({"status": "Accepted"}, hand_over)

    @handles("RemoteStopTransaction")
    async def on_remote_stop(self, payload: dict[str, Any]) -> Reply:
        c = self.transactions.connector_of(payload["transactionId"])
        if c is None or not self.ctx.sender.accepted:
            return Reply({"status": "Rejected"})
        if not await self.ctx.station.stop_transaction(c.id, "Remote"):
            self._security_event("RemoteStopFailed", f"the EVSE of connector {c.id} did not take the stop")
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"})

    @handles("Reset")
    async def on_reset(self, payload: dict[str, Any]) -> Reply:
        if self._reset_pending:
            return Reply({"status": "Rejected"})
        self._reset_pending = True
        kind = ResetKind(payload["type"])
        return Reply({"status": "Accepted"}, lambda: self._reset(kind))

    async def _reset(self, kind: ResetKind) -> None:
        reason = "HardReset" if kind is ResetKind.HARD else "SoftReset"
        running = [c for c in self.connectors if c.transaction is not None]
        for c in running:
            await self.ctx.station.stop_transaction(c.id, reason)
        deadline = self.ctx.clock.monotonic() + self._reset_drain_timeout_s
        if not await self.transactions.wait_all_ended(running, deadline):
            self.ctx.log.error("transactions did not end before the reset")
        self._security_event("ResetOrReboot", f"{kind.value} reset requested by the CSMS")
        # StopTransaction and the event are in the persistent queue either way; give them a chance first
        await self.ctx.sender.wait_queue_empty(max(0.0, deadline - self.ctx.clock.monotonic()))
        self.ctx.log.warning("%s reset requested by the CSMS", kind.value)
        try:
            await self.ctx.station.reset(ResetRequest(kind))
        finally:
            self._reset_pending = False  # still alive: the system did not restart (or failed to)

    @handles("UnlockConnector")
    async def on_unlock(self, payload: dict[str, Any]) -> Reply:
        c = self.connectors.get(payload["connectorId"])
        if c is None:
            return Reply({"status": "NotSupported"})
        evse = EvseRef(c.id, 1)
        if not await self.ctx.station.has_lock(evse):  # a fixed cable: nothing to unlock (1.6 §5.17)
            return Reply({"status": "NotSupported"})
        if c.transaction is not None:
            await self.ctx.station.stop_transaction(c.id, "UnlockCommand")
        unlocked = await self.ctx.station.unlock(evse)
        return Reply({"status": "Unlocked" if unlocked else "UnlockFailed"})

    @handles("DataTransfer")
    async def on_data_transfer(self, payload: dict[str, Any]) -> Reply:
        answer = await self.ctx.station.data_transfer(payload["vendorId"], payload.get("messageId"),
                                                      payload.get("data"))
        result = {"status": answer["status"] if answer["status"] != "Offline" else "Rejected"}
        if answer.get("data") is not None:
            result["data"] = answer["data"]
        return Reply(result)
