"""ChangeAvailability: Operative/Inoperative for the station (connector 0) or one connector, persisted.

A connector with a running transaction becomes Inoperative when that transaction ends (Scheduled).
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connector, Connectors
from everpy.ocpp.v16.status import StatusNotifications

KIND = "availability"


class Availability:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, status: StatusNotifications) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.status = status
        for connector_id, data in ctx.store.records(KIND).items():
            operative = data.get("operative") if isinstance(data, dict) else None
            if not isinstance(operative, bool) or (connector_id != 0 and connector_id not in connectors):
                ctx.store.drop_record(KIND, connector_id, data, "not an availability record")
            elif connector_id == 0:
                connectors.station_operative = operative
            else:
                connectors[connector_id].operative = operative

    async def restore(self) -> None:
        """Tell the charger the persisted availability of every EVSE."""
        for c in self.connectors:
            await self.resync(c.id)

    async def resync(self, connector_id: int) -> None:
        """Tell one EVSE its availability (at start, and when it came back after a restart or a lost
        link: a fresh EVSE is enabled, whatever the CSMS said). A running transaction is left alone: an
        Inoperative for it is Scheduled and applies when it ends."""
        c = self.connectors[connector_id]
        if c.transaction is None:
            await self.ctx.station.set_available(c.id, c.operative and self.connectors.station_operative)

    def transaction_ended(self, connector_id: int) -> None:
        """A Scheduled change takes effect now, with the transaction's end (not when the car leaves): the
        status computed right after the StopTransaction is already the new one."""
        c = self.connectors[connector_id]
        if c.scheduled_operative is not None:
            self._record(connector_id, c.scheduled_operative)
            self.ctx.jobs.spawn(self._tell(connector_id))

    @handles("ChangeAvailability")
    async def on_change_availability(self, payload: dict[str, Any]) -> Reply:
        return Reply(await self.change(payload["connectorId"], payload["type"] == "Operative"))

    async def change(self, connector_id: int, operative: bool) -> dict[str, str]:
        if connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}
        affected = list(self.connectors) if connector_id == 0 else [self.connectors[connector_id]]
        busy = [c for c in affected if c.transaction is not None]
        if busy and not operative:
            for c in busy:
                c.scheduled_operative = False
            for c in affected:
                if c.transaction is None:
                    self.ctx.jobs.spawn(self.apply(c.id, operative))
            if connector_id == 0:  # the station as a whole is out of service from now on
                self.connectors.station_operative = False
                self.ctx.store.put_record(KIND, 0, {"operative": False})
                self.ctx.jobs.spawn(self.status.send(0))
            return {"status": "Scheduled"}
        self.ctx.jobs.spawn(self.apply(connector_id, operative))
        return {"status": "Accepted"}

    async def apply(self, connector_id: int, operative: bool) -> None:
        """Connector 0 means the station and every connector (persisted, survives restarts)."""
        self._record(connector_id, operative)
        await self._tell(connector_id)

    def _targets(self, connector_id: int) -> list[Connector]:
        return list(self.connectors) if connector_id == 0 else [self.connectors[connector_id]]

    def _record(self, connector_id: int, operative: bool) -> None:
        with self.ctx.store.atomic():
            if connector_id == 0:
                self.connectors.station_operative = operative
                self.ctx.store.put_record(KIND, 0, {"operative": operative})
            for c in self._targets(connector_id):
                c.operative = operative
                c.scheduled_operative = None
                self.ctx.store.put_record(KIND, c.id, {"operative": operative})

    async def _tell(self, connector_id: int) -> None:
        """The charger and the CSMS learn the recorded availability."""
        targets = self._targets(connector_id)
        if connector_id == 0:
            await self.status.send(0)
        for c in targets:
            if c.transaction is None:
                await self.ctx.station.set_available(c.id, c.operative and self.connectors.station_operative)
            await self.status.send(c.id)
