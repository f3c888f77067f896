"""Reservation profile: ReserveNow, CancelReservation, expiry, and which id tags may use a reserved
connector (applied to validation results).

A reservation of connector 0 (ReserveConnectorZeroSupported) reserves "any connector": no EVSE is
reserved, but other id tags are refused while the free connectors are only as many as such
reservations (1.6 §5.13).
"""

from __future__ import annotations

from typing import Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.status import StatusNotifications
from everpy.ocpp.values import parse_time

KIND = "reservation"
_FIELDS = ("connectorId", "expiryDate", "idTag", "parentIdTag")


class Reservations:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, status: StatusNotifications) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.status = status
        self._timers: dict[int, TimerHandle] = {}
        # reservations being ended by us: the EVSE's ReservationEnd for them changes nothing (the connector
        # shows Reserved until the EVSE let go, so no Available can reach the CSMS before our answer)
        self._ending: set[int] = set()

    def _reservations(self) -> dict[int, dict[str, Any]]:
        return self.ctx.store.records(KIND)

    def _valid(self, data: Any) -> bool:
        if not isinstance(data, dict) or not isinstance(data.get("idTag"), str):
            return False
        connector_id = data.get("connectorId")
        if connector_id != 0 and connector_id not in self.connectors:
            return False
        try:
            parse_time(str(data.get("expiryDate")))
        except (ValueError, OverflowError):
            return False
        return True

    async def restore(self) -> None:
        """After a restart: quarantine what cannot apply, expire what expired meanwhile, re-arm the rest."""
        store = self.ctx.store
        for reservation_id, data in self._reservations().items():
            if not self._valid(data):
                store.drop_record(KIND, reservation_id, data, "not a usable reservation")
            elif parse_time(data["expiryDate"]) <= self.ctx.clock.time():
                await self._end(reservation_id, data, cancel_on_evse=True)
            else:
                self._arm(reservation_id, data)
                if data["connectorId"] != 0:
                    self.connectors[data["connectorId"]].reservation_id = reservation_id

    async def resync(self, connector_id: int) -> None:
        """The EVSE came back (restarted, reconnected): it is told the reservation it holds again."""
        reservation_id = self.connectors[connector_id].reservation_id
        if reservation_id is not None and not await self.ctx.station.reserve(connector_id, reservation_id):
            self.ctx.log.warning("connector %d came back and refused reservation %d again; it stays reserved for "
                                 "the CSMS until it expires or is cancelled", connector_id, reservation_id)

    def _arm(self, reservation_id: int, data: dict[str, Any]) -> None:
        delay = parse_time(data["expiryDate"]) - self.ctx.clock.time()
        self._timers[reservation_id] = self.ctx.clock.call_later(delay, lambda: self._expire(reservation_id))

    async def _expire(self, reservation_id: int) -> None:
        data = self._reservations().get(reservation_id)
        if data is not None:
            await self._end(reservation_id, data, cancel_on_evse=True)

    def _free_connectors(self) -> list[int]:
        return [c.id for c in self.connectors if self.connectors.status_of(c.id)[0] == "Available"]

    @handles("ReserveNow")
    async def on_reserve_now(self, payload: dict[str, Any]) -> Reply:
        connector_id, reservation_id = payload["connectorId"], payload["reservationId"]
        if parse_time(payload["expiryDate"]) <= self.ctx.clock.time():
            return Reply({"status": "Rejected"})
        known = self._reservations().get(reservation_id)
        if known is not None:  # ReserveNow with a known id replaces that reservation
            await self._end(reservation_id, known, cancel_on_evse=True, report=False)
        if connector_id == 0:
            return Reply({"status": self._reserve_any(reservation_id, payload)})
        if connector_id not in self.connectors:
            return Reply({"status": "Rejected"})
        status = self.connectors.status_of(connector_id)[0]
        if status in ("Faulted", "Unavailable"):
            return Reply({"status": status})
        if status != "Available":
            return Reply({"status": "Occupied"})
        if not await self.ctx.station.reserve(connector_id, reservation_id):
            return Reply({"status": "Occupied"})
        data = {k: payload[k] for k in _FIELDS if k in payload}
        self.ctx.store.put_record(KIND, reservation_id, data)
        self.connectors[connector_id].reservation_id = reservation_id
        self._arm(reservation_id, data)

        async def report() -> None:
            await self.status.send(connector_id)

        return Reply({"status": "Accepted"}, report)

    def _reserve_any(self, reservation_id: int, payload: dict[str, Any]) -> str:
        if not self.ctx.config.bool("ReserveConnectorZeroSupported"):
            return "Rejected"
        if not self.connectors.station_operative:
            return "Unavailable"
        station_wide = sum(1 for data in self._reservations().values() if data["connectorId"] == 0)
        if len(self._free_connectors()) <= station_wide:
            return "Occupied"
        data = {k: payload[k] for k in _FIELDS if k in payload}
        self.ctx.store.put_record(KIND, reservation_id, data)
        self._arm(reservation_id, data)
        return "Accepted"

    @handles("CancelReservation")
    async def on_cancel_reservation(self, payload: dict[str, Any]) -> Reply:
        reservation_id = payload["reservationId"]
        data = self._reservations().get(reservation_id)
        if data is None:
            return Reply({"status": "Rejected"})
        connector_id = await self._end(reservation_id, data, cancel_on_evse=True, report=False)

        async def report() -> None:  # the answer first, then the status it caused (as ReserveNow does)
            if connector_id is not None:
                await self.status.send(connector_id)

        return Reply({"status": "Accepted"}, report)

    async def _end(self, reservation_id: int, data: dict[str, Any], cancel_on_evse: bool,
                   report: bool = True) -> int | None:
        """End a reservation; returns the connector that it held, if any."""
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        self.ctx.store.remove_record(KIND, reservation_id)
        connector = self.connectors.get(data.get("connectorId"))
        if connector is None or connector.reservation_id != reservation_id:
            return None
        if cancel_on_evse:
            self._ending.add(reservation_id)
            try:
                await self.ctx.station.cancel_reservation(connector.id)
            finally:
                self._ending.discard(reservation_id)
        if connector.reservation_id == reservation_id:
            connector.reservation_id = None  # no await from here to the caller's answer
        if report:
            await self.status.send(connector.id)
        return connector.id

    def ended(self, connector_id: int, reservation_id: int | None) -> None:
        """The EVSE reports the reservation over (used by a transaction, or cancelled locally)."""
        connector = self.connectors[connector_id]
        reservation_id = reservation_id if reservation_id is not None else connector.reservation_id
        if reservation_id is None or reservation_id in self._ending:
            return
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        self.ctx.store.remove_record(KIND, reservation_id)
        if connector.reservation_id == reservation_id:
            connector.reservation_id = None

    def used_by(self, connector_id: int, id_tag: str) -> int | None:
        """The reservation a transaction by id_tag on connector_id uses, if any."""
        for reservation_id, data in self._reservations().items():
            if data["connectorId"] in (0, connector_id) and data["idTag"].lower() == id_tag.lower():
                return reservation_id
        return None

    def restrict(self, result: dict[str, Any], id_tag: str, parent: str | None) -> dict[str, Any]:
        """Limit an accepted validation result to the connectors the id tag may use: its own reserved
        connector, or the connectors nobody reserved."""
        if result["authorization_status"] != "Accepted":
            return result
        reservations = self._reservations()
        if not reservations:
            return result
        for reservation_id, data in reservations.items():
            tags = {data["idTag"].lower(), (data.get("parentIdTag") or "").lower()} - {""}
            if id_tag.lower() in tags or (parent is not None and parent.lower() in tags):
                evse_ids = [data["connectorId"]] if data["connectorId"] else self.connectors.ids()
                return {**result, "evse_ids": evse_ids, "reservation_id": reservation_id}
        reserved = {data["connectorId"] for data in reservations.values()}
        free = [c for c in self.connectors.ids() if c not in reserved]
        if not free:
            return {**result, "authorization_status": "NotAtThisTime"}
        station_wide = sum(1 for data in reservations.values() if data["connectorId"] == 0)
        if station_wide:
            # connector-0 reservations keep that many Available connectors for their holders; a car that
            # already waits at a connector for its authorisation takes none of them
            available = [c for c in free if c in self._free_connectors()]
            waiting = [c for c in free if self._car_waits(c)]
            if len(available) <= station_wide:
                if not waiting:
                    return {**result, "authorization_status": "NotAtThisTime"}
                return {**result, "evse_ids": waiting}
        return {**result, "evse_ids": free}

    def _car_waits(self, connector_id: int) -> bool:
        """A car is plugged in and waits for an authorisation (Preparing, no transaction yet)."""
        c = self.connectors[connector_id]
        return c.transaction is None and self.connectors.status_of(connector_id)[0] == "Preparing"
