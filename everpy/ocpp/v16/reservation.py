"""Reservation profile: ReserveNow, CancelReservation, expiry, and which id tags may use a reserved
connector (applied to validation results)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.chargepoint import parse_time

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

KIND = "reservation"


class Reservations:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        self._timers: dict[int, TimerHandle] = {}
        cp.handle("ReserveNow", self.on_reserve_now)
        cp.handle("CancelReservation", self.on_cancel_reservation)

    def _reservations(self) -> dict[int, dict[str, Any]]:
        return self.cp.store.records(KIND)

    async def restore(self) -> None:
        """After a restart: expire what expired meanwhile, re-arm the rest."""
        for reservation_id, data in self._reservations().items():
            if parse_time(data["expiryDate"]) <= self.cp.clock.time():
                await self._end(reservation_id, cancel_on_evse=True)
            else:
                self._arm(reservation_id, data)
                self.cp.core.connectors[data["connectorId"]].reservation_id = reservation_id

    def _arm(self, reservation_id: int, data: dict[str, Any]) -> None:
        delay = parse_time(data["expiryDate"]) - self.cp.clock.time()
        self._timers[reservation_id] = self.cp.clock.call_later(
            delay, lambda: self._end(reservation_id, cancel_on_evse=True))

    async def on_reserve_now(self, payload: dict[str, Any]) -> Reply:
        core = self.cp.core
        connector_id, reservation_id = payload["connectorId"], payload["reservationId"]
        if connector_id == 0 and not self.cp.config.bool("ReserveConnectorZeroSupported"):
            return Reply({"status": "Rejected"})
        if connector_id not in core.connectors:
            return Reply({"status": "Rejected"})
        status = core.status_of(connector_id)[0]
        if status == "Faulted":
            return Reply({"status": "Faulted"})
        if status == "Unavailable":
            return Reply({"status": "Unavailable"})
        connector = core.connectors[connector_id]
        if status != "Available" and connector.reservation_id != reservation_id:
            return Reply({"status": "Occupied"})
        if connector.reservation_id == reservation_id or reservation_id in self._reservations():
            await self._end(reservation_id, cancel_on_evse=True)  # ReserveNow with a known id replaces it
        if not await self.cp.station.reserve(connector_id, reservation_id):
            return Reply({"status": "Occupied"})
        data = {k: payload[k] for k in ("connectorId", "expiryDate", "idTag", "parentIdTag") if k in payload}
        self.cp.store.put_record(KIND, reservation_id, data)
        connector.reservation_id = reservation_id
        self._arm(reservation_id, data)

        async def report() -> None:
            await core.send_status(connector_id)

        return Reply({"status": "Accepted"}, report)

    async def on_cancel_reservation(self, payload: dict[str, Any]) -> Reply:
        reservation_id = payload["reservationId"]
        if reservation_id not in self._reservations():
            return Reply({"status": "Rejected"})
        await self._end(reservation_id, cancel_on_evse=True)
        return Reply({"status": "Accepted"})

    async def _end(self, reservation_id: int, cancel_on_evse: bool) -> None:
        data = self._reservations().get(reservation_id)
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        if data is None:
            return
        self.cp.store.remove_record(KIND, reservation_id)
        connector = self.cp.core.connectors.get(data["connectorId"])
        if connector is not None and connector.reservation_id == reservation_id:
            connector.reservation_id = None
            if cancel_on_evse:
                await self.cp.station.cancel_reservation(connector.id)
            await self.cp.core.send_status(connector.id)

    def ended(self, connector_id: int, reservation_id: int | None) -> None:
        """The EVSE reports the reservation over (used by a transaction, or cancelled locally)."""
        connector = self.cp.core.connectors[connector_id]
        reservation_id = reservation_id if reservation_id is not None else connector.reservation_id
        if reservation_id is None:
            return
        data = self._reservations().get(reservation_id)
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        if data is not None:
            self.cp.store.remove_record(KIND, reservation_id)
        if connector.reservation_id == reservation_id:
            connector.reservation_id = None

    def used_by(self, connector_id: int, id_tag: str) -> int | None:
        """The reservation a transaction by id_tag on connector_id uses, if any."""
        for reservation_id, data in self._reservations().items():
            if data["connectorId"] == connector_id and data["idTag"].lower() == id_tag.lower():
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
            tags = {data["idTag"].lower(), (data.get("parentIdTag") or "").lower()}
            if id_tag.lower() in tags or (parent is not None and parent.lower() in tags):
                return {**result, "evse_ids": [data["connectorId"]], "reservation_id": reservation_id}
        reserved = {data["connectorId"] for data in reservations.values()}
        free = [c for c in self.cp.core.connectors if c not in reserved]
        if not free:
            return {**result, "authorization_status": "NotAtThisTime"}
        return {**result, "evse_ids": free}
