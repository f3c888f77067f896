"""Functional block G (availability) of OCPP 2.0.1: StatusNotification and ChangeAvailability.

StatusNotifications (G01): every connector's ConnectorStatusEnumType, as the one rule of
:meth:`everpy.ocpp.v201.evses.Evse.connector_status` derives it, goes to the CSMS once per change, paced per
connector (:mod:`everpy.ocpp.pacing`: the latest status always goes out); the EVSE and Connector
AvailabilityState variables follow the same status.

Availability (G03/G04): ChangeAvailability of the station, an EVSE or a connector. The wanted state is
persisted and applies at once; an EVSE with a running transaction is told only when the transaction ends
(the answer is Scheduled), so the CSMS's Inoperative never stops a charging car.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.pacing import ChangePacer, PacingSettings
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.device_model import DeviceModel, Ref
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.comm import MESSAGE_TIMEOUT, QUEUE_ALL_MESSAGES, STATION_AVAILABILITY_STATE
from everpy.ocpp.v201.variables.evse import CONNECTOR_AVAILABILITY_STATE, EVSE_AVAILABILITY_STATE
from everpy.ocpp.values import rfc3339

Ctx = BlockContext[DeviceModel]
Connector = tuple[int, int]  # (EVSE id, connector id)
KIND = "availability"
STATION = 0  # the record id and ChangeAvailability evse id of the whole station
CONNECTOR_ID_BASE = 1000  # record id of a connector: EVSE id * base + connector id (an EVSE's own: * base)


@dataclass(frozen=True)
class ConnectorState:
    """What one StatusNotification says; two are the same change when their status is."""

    status: str
    timestamp: float = field(default=0.0, compare=False)  # when the status began (a held one keeps its time)

    def payload(self, connector: Connector) -> dict[str, Any]:
        return {"timestamp": rfc3339(self.timestamp), "connectorStatus": self.status, "evseId": connector[0],
                "connectorId": connector[1]}


class StatusNotifications:
    def __init__(self, ctx: Ctx, evses: Evses, pacing: PacingSettings | None = None) -> None:
        self.ctx, self.evses = ctx, evses
        self.pacer: ChangePacer[Connector, ConnectorState] = ChangePacer(
            ctx.clock, pacing or PacingSettings(), self._deliver, ctx.log, "connector")

    def connectors(self, evse_id: int | None = None) -> list[Connector]:
        """Every connector of the EVSE (of the station with None)."""
        return [(e.id, c) for e in self.evses if evse_id in (None, e.id) for c in range(1, e.connectors + 1)]

    def current(self, connector: Connector) -> ConnectorState:
        return ConnectorState(self.evses.status(*connector), self.ctx.clock.time())

    async def send(self, evse_id: int) -> None:
        """A StatusNotification for each connector of the EVSE whose status changed (paced)."""
        self.update_variables()
        for connector in self.connectors(evse_id):
            await self.pacer.change(connector, self.current(connector))

    async def send_all(self) -> None:
        """Every connector's status now, changed or not (a new connection, an outage longer than
        OCPPCommCtrlr.OfflineThreshold: B04)."""
        self.update_variables()
        for connector in self.connectors():
            await self.pacer.force(connector, self.current(connector))

    async def after_connect(self) -> None:
        await self.send_all()

    def trigger(self, evse_id: int | None, connector_id: int | None) -> str:
        """TriggerMessage StatusNotification: it names one connector (F06.FR.12); the message goes out
        as a job, once the answer is."""
        if evse_id is None or connector_id is None or not self.evses.has_connector(evse_id, connector_id):
            return "Rejected"
        connector = (evse_id, connector_id)
        self.update_variables()
        self.ctx.jobs.spawn(self.pacer.force(connector, self.current(connector)))
        return "Accepted"

    def update_variables(self) -> None:
        """The AvailabilityState variables of the station, each EVSE and each connector, as of now."""
        for evse in self.evses:
            statuses = [self.evses.status(evse.id, c) for c in range(1, evse.connectors + 1)]
            for connector_id, status in enumerate(statuses, start=1):
                self._set(CONNECTOR_AVAILABILITY_STATE, status, evse.id, connector_id)
            self._set(EVSE_AVAILABILITY_STATE, _busiest(statuses), evse.id)
        idle_unavailable = not self.evses.station_operative and not self.evses.any_transaction()
        self._set(STATION_AVAILABILITY_STATE, "Unavailable" if idle_unavailable else "Available")

    def _set(self, ref: Ref, value: str, evse: int | None = None, connector: int | None = None) -> None:
        """Only a change: every set tells the model's change hooks and waiters."""
        if self.ctx.config.value(ref, evse, connector) != value:
            self.ctx.config.set_internal(ref, value, evse, connector)

    def cancel_timers(self) -> None:
        self.pacer.close()

    async def _deliver(self, connector: Connector, state: ConnectorState) -> bool:
        sender = self.ctx.sender
        if not sender.online and self.ctx.config.bool(QUEUE_ALL_MESSAGES):
            sender.queue("StatusNotification", state.payload(connector), None)  # in order, with the transaction's
            return True
        if sender.online and self.ctx.store.queue_length():
            # the queued TransactionEvents first: the CSMS sees the transaction end before the Available after it
            await sender.wait_queue_empty(float(self.ctx.config.int(MESSAGE_TIMEOUT)))
        return await sender.call_or_log("StatusNotification", state.payload(connector)) is not None


# an EVSE of several connectors is as busy as its busiest one
_ORDER = ("Faulted", "Occupied", "Reserved", "Available", "Unavailable")


def _busiest(statuses: list[str]) -> str:
    return min(statuses, key=_ORDER.index)


class Availability:
    def __init__(self, ctx: Ctx, evses: Evses, status: StatusNotifications) -> None:
        self.ctx, self.evses, self.status = ctx, evses, status
        if any(e.id >= CONNECTOR_ID_BASE or e.connectors >= CONNECTOR_ID_BASE for e in evses):
            raise ValueError(f"availability records number EVSEs and connectors below {CONNECTOR_ID_BASE}")
        # what the CSMS wants of each level (record id -> operative); an EVSE is operative when it and all its
        # connectors are
        self._wanted: dict[int, bool] = {}
        self._load()

    def _load(self) -> None:
        store = self.ctx.store
        for record_id, data in store.records(KIND).items():
            operative = data.get("operative")
            if not isinstance(operative, bool) or self._place(record_id) is None:
                store.drop_record(KIND, record_id, data, "not an availability record")
            else:
                self._wanted[record_id] = operative
        self.evses.station_operative = self._wanted.get(STATION, True)
        for evse in self.evses:
            evse.operative = self._evse_wanted(evse.id)

    def _place(self, record_id: int) -> tuple[int, int | None] | None:
        """(EVSE id, connector id or None) of a record id; None for one that names nothing of this station."""
        if record_id == STATION:
            return STATION, None
        evse_id, connector_id = divmod(record_id, CONNECTOR_ID_BASE)
        if connector_id == 0:
            return (evse_id, None) if evse_id in self.evses else None
        return (evse_id, connector_id) if self.evses.has_connector(evse_id, connector_id) else None

    def _evse_wanted(self, evse_id: int) -> bool:
        evse = self.evses[evse_id]
        return all(self._wanted.get(evse_id * CONNECTOR_ID_BASE + c, True) for c in range(0, evse.connectors + 1))

    # -- the charger ---------------------------------------------------------------------------------
    async def restore(self) -> None:
        """At start: tell the charger the persisted availability of every EVSE."""
        for evse in self.evses:
            await self.resync(evse.id)

    async def resync(self, evse_id: int) -> None:
        """Tell one EVSE its availability (at start, and when it came back: a fresh EVSE is enabled, whatever
        the CSMS said). A running transaction is left alone; the EVSE is told when it ends."""
        evse = self.evses[evse_id]
        if evse.transaction_id is not None:
            evse.scheduled_operative = evse.operative
            return
        evse.scheduled_operative = None
        available = evse.operative and self.evses.station_operative
        if not await self.ctx.station.set_available(evse_id, available):
            self.ctx.log.warning("EVSE %d did not take %s; OCPP keeps the CSMS's wish and tells it again when it "
                                 "comes back", evse_id, "enable" if available else "disable")

    def transaction_ended(self, evse_id: int) -> None:
        """A Scheduled change takes effect with the transaction's end (the status computed right after the
        Ended is already the new one)."""
        if self.evses[evse_id].scheduled_operative is not None:
            self.ctx.jobs.spawn(self._tell(evse_id))

    async def _tell(self, evse_id: int) -> None:
        await self.resync(evse_id)
        await self.status.send(evse_id)

    # -- ChangeAvailability --------------------------------------------------------------------------
    @handles("ChangeAvailability")
    async def on_change_availability(self, payload: dict[str, Any]) -> Reply:
        evse = payload.get("evse") or {}
        status, idle = self._change(evse.get("id", STATION), evse.get("connectorId"),
                                    payload["operationalStatus"] == "Operative")
        return Reply({"status": status}, lambda: self._tell_all(idle))  # the StatusNotification after the answer

    async def change(self, evse_id: int, connector_id: int | None, operative: bool) -> str:
        """The module's local command: as ChangeAvailability, done once the EVSEs were told."""
        status, idle = self._change(evse_id, connector_id, operative)
        await self._tell_all(idle)
        return status

    def _change(self, evse_id: int, connector_id: int | None, operative: bool) -> tuple[str, list[int]]:
        """Record the change; the answer (Accepted, Scheduled when a transaction runs on an EVSE it makes
        inoperative, Rejected for no such EVSE or connector) and the idle EVSEs to tell now."""
        if evse_id == STATION:
            if connector_id is not None:
                return "Rejected", []  # a connector of no EVSE
            record_id, targets = STATION, self.evses.ids()
        elif connector_id is None:
            if evse_id not in self.evses:
                return "Rejected", []
            record_id, targets = evse_id * CONNECTOR_ID_BASE, [evse_id]
        else:
            if not self.evses.has_connector(evse_id, connector_id):
                return "Rejected", []
            record_id, targets = evse_id * CONNECTOR_ID_BASE + connector_id, [evse_id]
        self._record(record_id, operative)
        scheduled, idle = False, []
        for target in targets:
            evse = self.evses[target]
            if evse.transaction_id is None:
                idle.append(target)
            else:
                evse.scheduled_operative = evse.operative
                scheduled = scheduled or not (evse.operative and self.evses.station_operative)
        return ("Scheduled" if scheduled else "Accepted"), idle

    async def _tell_all(self, evse_ids: list[int]) -> None:
        for evse_id in evse_ids:
            await self._tell(evse_id)

    def _record(self, record_id: int, operative: bool) -> None:
        """The wanted state, persisted; it is the EVSE's state (what its status shows) from now on."""
        self._wanted[record_id] = operative
        self.ctx.store.put_record(KIND, record_id, {"operative": operative})
        self.evses.station_operative = self._wanted.get(STATION, True)
        for evse in self.evses:
            evse.operative = self._evse_wanted(evse.id)
