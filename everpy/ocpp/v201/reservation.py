"""Functional block H (reservation) of OCPP 2.0.1: ReserveNow, CancelReservation, ReservationStatusUpdate.

A reservation of one EVSE (H01 with evseId) is held by the EVSE itself (``Station.reserve``): it shows
Reserved and only the reservation's idToken or groupIdToken may start there. A reservation without an EVSE
(ReservationCtrlr.NonEvseSpecific) reserves no EVSE; it is accepted while more EVSEs are Available than such
reservations, and :meth:`Reservations.restrict` keeps that many EVSEs for their holders. Each reservation is
persisted with its expiry; one that expires sends ReservationStatusUpdate Expired, one the EVSE
let go of for another reason than a transaction Removed.
"""

from __future__ import annotations

from typing import Any

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.auth_repository import id_token_problem
from everpy.ocpp.v201.availability import StatusNotifications
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import CONNECTOR_ID, Evses
from everpy.ocpp.v201.variables.charging import RESERVATION_ENABLED, RESERVATION_NON_EVSE_SPECIFIC
from everpy.ocpp.v201.variables.evse import CONNECTOR_TYPE
from everpy.ocpp.values import parse_time

Ctx = BlockContext[DeviceModel]
KIND = "reservation"
_FIELDS = ("evseId", "expiryDateTime", "idToken", "groupIdToken", "connectorType")
UNAVAILABLE = ("Faulted", "Unavailable")  # an EVSE in these answers ReserveNow with its status


def _fold(token: dict[str, Any] | None) -> tuple[str, str] | None:
    """An IdTokenType as reservations compare it (case-insensitive value, same type)."""
    return None if token is None else (str(token["idToken"]).lower(), str(token["type"]))


class Reservations:
    def __init__(self, ctx: Ctx, evses: Evses, status: StatusNotifications) -> None:
        self.ctx, self.evses, self.status = ctx, evses, status
        self._timers: dict[int, TimerHandle] = {}
        # reservations being ended by us: the EVSE's ReservationEnd for them changes nothing
        self._ending: set[int] = set()
        self._undelivered: list[dict[str, Any]] = []  # ReservationStatusUpdates not sent yet

    def reservations(self) -> dict[int, dict[str, Any]]:
        return self.ctx.store.records(KIND)

    # -- restart -------------------------------------------------------------------------------------
    def _problem(self, data: dict[str, Any]) -> str | None:
        evse_id = data.get("evseId")
        if evse_id is not None and (type(evse_id) is not int or evse_id not in self.evses):
            return f"no EVSE {evse_id!r}"
        if id_token_problem(data.get("idToken")) is not None:
            return "no idToken"
        if "groupIdToken" in data and id_token_problem(data["groupIdToken"]) is not None:
            return "a bad groupIdToken"
        try:
            parse_time(str(data.get("expiryDateTime")))
        except (ValueError, OverflowError):
            return "no expiryDateTime"
        return None

    async def restore(self) -> None:
        """After a restart: quarantine what cannot apply, expire what expired meanwhile, re-arm the rest and
        tell the EVSEs what they hold."""
        store = self.ctx.store
        for reservation_id, data in self.reservations().items():
            if (reason := self._problem(data)) is not None:
                store.drop_record(KIND, reservation_id, data, f"not a reservation: {reason}")
            elif parse_time(data["expiryDateTime"]) <= self.ctx.clock.time():
                await self._end(reservation_id, data, "Expired")
            else:
                self._arm(reservation_id, data)
                if data.get("evseId") is not None:
                    self.evses[data["evseId"]].reservation_id = reservation_id
                    await self.resync(data["evseId"])

    async def resync(self, evse_id: int) -> None:
        """The EVSE came back (restarted, reconnected): it is told the reservation it holds again."""
        reservation_id = self.evses[evse_id].reservation_id
        if reservation_id is not None and not await self.ctx.station.reserve(evse_id, reservation_id):
            self.ctx.log.info("EVSE %d did not take reservation %d again (it may hold it still); it stays reserved "
                              "for the CSMS until it is used, expires or is cancelled", evse_id, reservation_id)

    # -- expiry --------------------------------------------------------------------------------------
    def _arm(self, reservation_id: int, data: dict[str, Any]) -> None:
        delay = parse_time(data["expiryDateTime"]) - self.ctx.clock.time()
        self._timers[reservation_id] = self.ctx.clock.call_later(delay, lambda: self._expire(reservation_id))

    async def _expire(self, reservation_id: int) -> None:
        self._timers.pop(reservation_id, None)
        data = self.reservations().get(reservation_id)
        if data is not None:
            await self._end(reservation_id, data, "Expired")

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # -- ReserveNow ----------------------------------------------------------------------------------
    @handles("ReserveNow")
    async def on_reserve_now(self, payload: dict[str, Any]) -> Reply:
        reservation_id, evse_id = payload["id"], payload.get("evseId")
        if not self.ctx.config.bool(RESERVATION_ENABLED):
            return _status("Rejected", "ReservationsDisabled")
        if parse_time(payload["expiryDateTime"]) <= self.ctx.clock.time():
            return _status("Rejected", "ExpiryInThePast")
        known = self.reservations().get(reservation_id)
        if known is not None:  # H01: a known id replaces that reservation
            await self._end(reservation_id, known, None)
        data = {key: payload[key] for key in _FIELDS if key in payload}
        if evse_id is None:
            return _status(*self._reserve_any(reservation_id, data))
        if evse_id not in self.evses:
            return _status("Rejected", "UnknownEvse")
        if not self._fits(evse_id, payload.get("connectorType")):
            return _status("Rejected", "WrongConnectorType")
        current = self.evses.status(evse_id)
        if current in UNAVAILABLE:
            return _status(current)
        if current != "Available" or not self._leaves_enough(exclude=evse_id):
            return _status("Occupied")
        if not await self.ctx.station.reserve(evse_id, reservation_id):
            return _status("Occupied", "EvseRefused")
        self.ctx.store.put_record(KIND, reservation_id, data)
        self.evses[evse_id].reservation_id = reservation_id
        self._arm(reservation_id, data)
        return Reply({"status": "Accepted"}, lambda: self.status.send(evse_id))  # Reserved after the answer

    def _fits(self, evse_id: int, connector_type: str | None) -> bool:
        return connector_type is None or self.ctx.config.str(CONNECTOR_TYPE, evse_id, CONNECTOR_ID) == connector_type

    def _free(self, exclude: int | None = None, connector_type: str | None = None) -> list[int]:
        return [e.id for e in self.evses if e.id != exclude and self.evses.status(e.id) == "Available"
                and self._fits(e.id, connector_type)]

    def _any_evse_reservations(self) -> int:
        return sum(1 for data in self.reservations().values() if data.get("evseId") is None)

    def _leaves_enough(self, exclude: int) -> bool:
        """Reserving `exclude` keeps an Available EVSE for each reservation without an EVSE."""
        return len(self._free(exclude)) >= self._any_evse_reservations()

    def _reserve_any(self, reservation_id: int, data: dict[str, Any]) -> tuple[str, str | None]:
        if not self.ctx.config.bool(RESERVATION_NON_EVSE_SPECIFIC):
            return "Rejected", "EvseIdRequired"
        candidates = [e.id for e in self.evses if self._fits(e.id, data.get("connectorType"))]
        if not candidates:
            return "Rejected", "WrongConnectorType"
        statuses = {self.evses.status(evse_id) for evse_id in candidates}
        if len(self._free(connector_type=data.get("connectorType"))) <= self._any_evse_reservations():
            for status in UNAVAILABLE:
                if statuses == {status}:  # every EVSE is out of service the same way
                    return status, None
            return "Occupied", None
        self.ctx.store.put_record(KIND, reservation_id, data)
        self._arm(reservation_id, data)
        return "Accepted", None

    # -- CancelReservation ---------------------------------------------------------------------------
    @handles("CancelReservation")
    async def on_cancel_reservation(self, payload: dict[str, Any]) -> Reply:
        reservation_id = payload["reservationId"]
        data = self.reservations().get(reservation_id)
        if data is None:
            return _status("Rejected", "UnknownReservation")
        evse_id = await self._end(reservation_id, data, None, report=False)

        async def report() -> None:  # the answer first, then the status it caused
            if evse_id is not None:
                await self.status.send(evse_id)

        return Reply({"status": "Accepted"}, report)

    # -- ending --------------------------------------------------------------------------------------
    async def _end(self, reservation_id: int, data: dict[str, Any], update: str | None,
                   report: bool = True) -> int | None:
        """End a reservation (with ReservationStatusUpdate `update` if not None); the EVSE it held, if any."""
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        self.ctx.store.remove_record(KIND, reservation_id)
        evse = self.evses.get(data.get("evseId"))
        held = evse is not None and evse.reservation_id == reservation_id
        if evse is not None and held:
            self._ending.add(reservation_id)
            try:
                await self.ctx.station.cancel_reservation(evse.id)
            finally:
                self._ending.discard(reservation_id)
            if evse.reservation_id == reservation_id:
                evse.reservation_id = None
        if update is not None:
            await self._status_update(reservation_id, update)
        if evse is not None and held and report:
            await self.status.send(evse.id)
        return evse.id if evse is not None and held else None

    async def _status_update(self, reservation_id: int, update: str) -> None:
        payload = {"reservationId": reservation_id, "reservationUpdateStatus": update}
        if self.ctx.sender.online:
            await self.ctx.sender.call_or_log("ReservationStatusUpdate", payload)  # a CALLERROR is only logged
        else:
            self._undelivered.append(payload)  # offline, or expired while the station was down: sent on connect

    async def after_connect(self) -> None:
        """The updates that could not be sent while offline, in order."""
        pending, self._undelivered = self._undelivered, []
        for payload in pending:
            await self._status_update(payload["reservationId"], payload["reservationUpdateStatus"])

    def ended(self, evse_id: int, reservation_id: int | None, reason: str | None = None) -> None:
        """The EVSE reports its reservation over: a transaction used it (UsedToStartCharging) or it was
        cancelled there, not by the CSMS (then the CSMS hears Removed)."""
        evse = self.evses[evse_id]
        reservation_id = reservation_id if reservation_id is not None else evse.reservation_id
        if reservation_id is None or reservation_id in self._ending:
            return
        self._forget(reservation_id)
        if evse.reservation_id == reservation_id:
            evse.reservation_id = None
        if reason == "Cancelled":
            self.ctx.jobs.spawn(self._status_update(reservation_id, "Removed"))

    def _forget(self, reservation_id: int) -> None:
        timer = self._timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
        self.ctx.store.remove_record(KIND, reservation_id)

    # -- who may use a reserved EVSE -----------------------------------------------------------------
    def _holds(self, data: dict[str, Any], token: dict[str, Any], group: dict[str, Any] | None) -> bool:
        mine = {_fold(data["idToken"]), _fold(data.get("groupIdToken"))} - {None}
        return _fold(token) in mine or (group is not None and _fold(group) in mine)

    def used_by(self, evse_id: int, id_token: dict[str, Any], group: dict[str, Any] | None = None) -> int | None:
        """The reservation a transaction started with this token (IdTokenType) on this EVSE takes up, if
        any: the EVSE's own, or one without an EVSE."""
        for reservation_id, data in self.reservations().items():
            if data.get("evseId") in (None, evse_id) and self._holds(data, id_token, group):
                return reservation_id
        return None

    def transaction_started(self, evse_id: int, id_token: dict[str, Any] | None) -> None:
        """A transaction started on the EVSE: a reservation without an EVSE its token held is used up (the
        EVSE's own reservation ends with the EVSE's ReservationEnd)."""
        if id_token is None:
            return
        reservation_id = self.used_by(evse_id, id_token)
        if reservation_id is not None and self.reservations()[reservation_id].get("evseId") is None:
            self._forget(reservation_id)

    def restrict_provided(self, result: dict[str, Any], provided_token: Any) -> dict[str, Any]:
        """restrict() for the charger's ProvidedIdToken (auth_token_validator.validate_token)."""
        presented = provided_token.get("id_token") if isinstance(provided_token, dict) else None
        if not isinstance(presented, dict):
            return result  # the validator has refused it already
        return self.restrict(result, {"idToken": presented.get("value"), "type": presented.get("type")})

    def restrict(self, result: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
        """Limit an accepted authorization ValidationResult for `token` (IdTokenType) to the EVSEs it may use:
        the one its reservation holds (the reservation named), else the EVSEs nobody reserved, leaving an
        Available one for each reservation without an EVSE."""
        reservations = self.reservations()
        if result.get("authorization_status") != "Accepted" or not reservations:
            return result
        parent = result.get("parent_id_token")
        group = None if parent is None else {"idToken": parent["value"], "type": parent["type"]}
        allowed = result.get("evse_ids") or self.evses.ids()
        for reservation_id, data in reservations.items():
            if self._holds(data, token, group):
                evse_ids = [data["evseId"]] if data.get("evseId") is not None else allowed
                return {**result, "evse_ids": evse_ids, "reservation_id": reservation_id}
        reserved = {data.get("evseId") for data in reservations.values()}
        free = [evse_id for evse_id in allowed if evse_id not in reserved]
        any_evse = self._any_evse_reservations()
        if any_evse:
            available = [e for e in free if self.evses.status(e) == "Available"]
            waiting = [e for e in free if self.evses.status(e) == "Occupied" and self.evses[e].transaction_id is None]
            # a car that waits at an EVSE for its authorization takes none of the kept EVSEs
            free = waiting if len(available) <= any_evse else free
        if not free:
            return {**result, "authorization_status": "NotAtThisTime"}
        return {**result, "evse_ids": free}


def _status(status: str, reason_code: str | None = None) -> Reply:
    payload: dict[str, Any] = {"status": status}
    if reason_code is not None:
        payload["statusInfo"] = {"reasonCode": reason_code}
    return Reply(payload)
