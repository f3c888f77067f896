"""StatusNotification: tells the CSMS each status change of the station and its connectors, once, at a
bounded rate per connector (:mod:`everpy.ocpp.pacing`; the latest status always goes out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.pacing import ChangePacer, PacingSettings
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.values import rfc3339


@dataclass(frozen=True)
class ConnectorStatus:
    """What one StatusNotification says; two are the same change when status and errorCode are."""

    status: str
    error_code: str
    info: str | None = field(default=None, compare=False)
    vendor_error_code: str | None = field(default=None, compare=False)
    timestamp: float = field(default=0.0, compare=False)  # when the status began (a held one keeps its time)

    def payload(self, connector_id: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"connectorId": connector_id, "status": self.status, "errorCode": self.error_code,
                                   "timestamp": rfc3339(self.timestamp)}
        if self.info is not None:
            payload["info"] = self.info
        if self.vendor_error_code is not None:
            payload["vendorErrorCode"] = self.vendor_error_code
        return payload


class StatusNotifications:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, response_timeout_s: float,
                 pacing: PacingSettings | None = None) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self._response_timeout_s = response_timeout_s
        self._timers: dict[int, TimerHandle] = {}
        self.pacer: ChangePacer[int, ConnectorStatus] = ChangePacer(
            ctx.clock, pacing or PacingSettings(), self._deliver, ctx.log, "connector")

    async def after_connect(self) -> None:
        """Tell the CSMS the current status of the station and every connector."""
        for connector_id in [0, *self.connectors.ids()]:
            await self.send(connector_id, force=True)

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self.pacer.close()

    async def send(self, connector_id: int, force: bool = False) -> None:
        """StatusNotification if the status changed (paced per connector); with MinimumStatusDuration
        only once the new status has lasted that long (a status that flickers back is never reported).
        ``force`` (a TriggerMessage, a new connection) sends the status now, whatever the pacing."""
        minimum = self.ctx.config.int("MinimumStatusDuration")
        if minimum > 0 and not force and connector_id in self.connectors:
            timer = self._timers.pop(connector_id, None)
            if timer is not None:
                timer.cancel()
            self._timers[connector_id] = self.ctx.clock.call_later(minimum, lambda: self._offer(connector_id))
            return
        if force:
            self._cancel_timer(connector_id)
            await self.pacer.force(connector_id, self.current(connector_id))
        else:
            await self._offer(connector_id)

    def current(self, connector_id: int) -> ConnectorStatus:
        status, code, error = self.connectors.status_of(connector_id)
        info = vendor_code = None
        if error is not None:
            info = str(error.get("message") or error.get("type", ""))[:50]
            if code == "OtherError":
                vendor_code = error.get("type", "").rsplit("/", 1)[-1][:50]
        return ConnectorStatus(status, code, info, vendor_code, self.ctx.clock.time())

    def _cancel_timer(self, connector_id: int) -> None:
        timer = self._timers.pop(connector_id, None)
        if timer is not None:
            timer.cancel()

    async def _offer(self, connector_id: int) -> None:
        self._timers.pop(connector_id, None)
        await self.pacer.change(connector_id, self.current(connector_id))

    async def _deliver(self, connector_id: int, status: ConnectorStatus) -> bool:
        sender = self.ctx.sender
        if sender.online and self.ctx.store.queue_length():
            # transaction messages first, so the CSMS sees StopTransaction before the Available after it
            await sender.wait_queue_empty(self._response_timeout_s)
        return await sender.call_or_log("StatusNotification", status.payload(connector_id)) is not None
