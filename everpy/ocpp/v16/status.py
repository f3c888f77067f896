"""StatusNotification: tells the CSMS each status change of the station and its connectors, once."""

from __future__ import annotations

import asyncio
from typing import Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.values import rfc3339


class StatusNotifications:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, response_timeout_s: float) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self._response_timeout_s = response_timeout_s
        self._timers: dict[int, TimerHandle] = {}
        self._station_sent: tuple[str, str] | None = None
        # One sender at a time per connector: the "changed?" check and the record of what was sent must
        # not interleave, or two concurrent changes both pass the check and the CSMS gets duplicates.
        self._locks: dict[int, asyncio.Lock] = {}

    async def after_connect(self) -> None:
        """Tell the CSMS the current status of the station and every connector."""
        for connector_id in [0, *self.connectors.ids()]:
            await self.send(connector_id, force=True)

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()

    async def send(self, connector_id: int, force: bool = False) -> None:
        """StatusNotification if the status changed; with MinimumStatusDuration only once the new
        status has lasted that long (a status that flickers back is never reported)."""
        minimum = self.ctx.config.int("MinimumStatusDuration")
        if minimum > 0 and not force and connector_id in self.connectors:
            timer = self._timers.pop(connector_id, None)
            if timer is not None:
                timer.cancel()
            self._timers[connector_id] = self.ctx.clock.call_later(minimum, lambda: self._send_now(connector_id, False))
            return
        await self._send_now(connector_id, force)

    async def _send_now(self, connector_id: int, force: bool) -> None:
        self._timers.pop(connector_id, None)
        lock = self._locks.setdefault(connector_id, asyncio.Lock())
        async with lock:
            await self._send_locked(connector_id, force)

    async def _send_locked(self, connector_id: int, force: bool) -> None:
        sender = self.ctx.sender
        if sender.online and self.ctx.store.queue_length():
            # transaction messages first, so the CSMS sees StopTransaction before the Available after it
            await sender.wait_queue_empty(self._response_timeout_s)
        status, code, error = self.connectors.status_of(connector_id)
        c = self.connectors.get(connector_id)
        sent = c.sent_status if c is not None else self._station_sent
        if not force and sent == (status, code):
            return
        payload: dict[str, Any] = {"connectorId": connector_id, "status": status, "errorCode": code,
                                   "timestamp": rfc3339(self.ctx.clock.time())}
        if error is not None:
            payload["info"] = str(error.get("message") or error.get("type", ""))[:50]
            if code == "OtherError":
                payload["vendorErrorCode"] = error.get("type", "").rsplit("/", 1)[-1][:50]
        if await sender.call_or_log("StatusNotification", payload) is not None:
            if c is not None:
                c.sent_status = (status, code)
            else:
                self._station_sent = (status, code)
