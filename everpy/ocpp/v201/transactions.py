"""Functional blocks E (transactions) and J (meter values) of OCPP 2.0.1.

A 2.0.1 transaction is the station's own: it begins at the first of the TxCtrlr.TxStartPoint conditions
the EVSE reaches (EV connected, authorized, power path closed, energy transfer) and ends when one of the
TxStopPoint conditions it had reached no longer holds, or when the car leaves. The conditions follow the
EvseManager's session events; every change worth telling becomes one TransactionEvent (Started, Updated,
Ended) with its triggerReason, queued in the session's persistent queue in the same ``store.atomic()`` as
the transaction's next seqNo (see :mod:`everpy.ocpp.v201.repository`), so after a crash nothing is lost,
nothing is sent twice and seqNo stays continuous.

Meter values (J): TxStarted/TxUpdated/TxEndedMeasurands of SampledDataCtrlr in the events, the periodic
Updated every TxUpdatedInterval, the samples kept for Ended every TxEndedInterval, and clock-aligned values
(AlignedDataCtrlr) in an Updated during a transaction or a MeterValues message outside one.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext, Signal, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.store import QueuedMessage
from everpy.ocpp.v16.meter import energy_wh, sampled_values
from everpy.ocpp.v201.auth_repository import id_token_info_problem, id_token_problem
from everpy.ocpp.v201.device_model import DeviceModel, Ref
from everpy.ocpp.v201.evses import CONNECTOR_ID, Evses
from everpy.ocpp.v201.repository import StoredTransaction, TransactionRepository, TxState
from everpy.ocpp.v201.variables.comm import MESSAGE_ATTEMPT_INTERVAL, MESSAGE_ATTEMPTS
from everpy.ocpp.v201.variables.tx import (
    ALIGNED_INTERVAL,
    ALIGNED_MEASURANDS,
    ALIGNED_SEND_DURING_IDLE,
    ALIGNED_TX_ENDED_INTERVAL,
    ALIGNED_TX_ENDED_MEASURANDS,
    MAX_ENERGY_ON_INVALID_ID,
    STOP_TX_ON_INVALID_ID,
    TX_ENDED_INTERVAL,
    TX_ENDED_MEASURANDS,
    TX_START_POINT,
    TX_STARTED_MEASURANDS,
    TX_STOP_POINT,
    TX_UPDATED_INTERVAL,
    TX_UPDATED_MEASURANDS,
)
from everpy.ocpp.values import rfc3339

Ctx = BlockContext[DeviceModel]
Reading = dict[str, Any]
EV_CONNECTED, AUTHORIZED, POWER_PATH_CLOSED, ENERGY_TRANSFER = \
    "EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer"
QUEUED_ACTIONS = frozenset({"TransactionEvent", "SecurityEventNotification", "StatusNotification",
                            "FirmwareStatusNotification", "LogStatusNotification"})
# everpy's StopTransactionReason -> (triggerReason of the event that reports it, 2.0.1 stoppedReason)
FINISH_REASONS: dict[str, tuple[str, str]] = {
    "Remote": ("RemoteStop", "Remote"), "Local": ("StopAuthorized", "Local"),
    "DeAuthorized": ("Deauthorized", "DeAuthorized"), "EVDisconnected": ("EVCommunicationLost", "EVDisconnected"),
    "EnergyLimitReached": ("EnergyLimitReached", "EnergyLimitReached"),
    "TimeLimitReached": ("TimeLimitReached", "TimeLimitReached"), "SOCLimitReached": ("ChargingStateChanged",
    "SOCLimitReached"), "StoppedByEV": ("ChargingStateChanged", "StoppedByEV"),
    "UnlockCommand": ("UnlockCommand", "Other"), "HardReset": ("ResetCommand", "ImmediateReset"),
    "SoftReset": ("ResetCommand", "ImmediateReset"), "Reboot": ("ResetCommand", "Reboot"),
    "PowerLoss": ("AbnormalCondition", "PowerLoss"), "EmergencyStop": ("AbnormalCondition", "EmergencyStop"),
    "GroundFault": ("AbnormalCondition", "GroundFault"), "OvercurrentFault": ("AbnormalCondition", "OvercurrentFault"),
    "PowerQuality": ("AbnormalCondition", "PowerQuality"), "LocalOutOfCredit": ("Deauthorized", "LocalOutOfCredit"),
    "MasterPass": ("StopAuthorized", "MasterPass"), "Timeout": ("EVConnectTimeout", "Timeout"),
    "Other": ("AbnormalCondition", "Other"),
}  # fmt: skip
# the stoppedReason of an end no TransactionFinished explained, by the triggerReason that ended it
STOPPED_BY = {"Deauthorized": "DeAuthorized", "EVConnectTimeout": "Timeout", "EVCommunicationLost": "EVDisconnected"}
# sampled values of the 2.0.1 units the 1.6 table names differently (the 2.0.1 default unit is Wh)
UNITS = {"": "Hz"}


class TokenInfoSink(Protocol):
    """What the transactions need of the authorization block: the CSMS's later word on a token."""

    def token_info(self, id_token: dict[str, Any], info: dict[str, Any]) -> None: ...


@dataclass
class Conditions:
    """What the EvseManager's session events say about one EVSE now (the Tx start and stop points)."""

    points: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(
        (EV_CONNECTED, AUTHORIZED, POWER_PATH_CLOSED, ENERGY_TRANSFER), False))
    charging_state: str = "Idle"
    id_token: dict[str, Any] | None = None  # IdTokenType of the authorization in force
    reservation_id: int | None = None


@dataclass
class Running:
    """A transaction in progress on an EVSE."""

    stored: StoredTransaction
    reached: set[str] = field(default_factory=set)  # stop points that held once (only those can end it)
    sent_charging_state: str | None = None
    stopped_reason: str | None = None  # why it ends, once known (a remote stop ends it at the unplug)
    stop_token: dict[str, Any] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def tx_id(self) -> str:
        return self.stored.tx_id

    @property
    def state(self) -> TxState:
        return self.stored.state


def meter_value(reading: Reading, measurands: list[str], context: str, at: str) -> list[dict[str, Any]]:
    """One 2.0.1 MeterValueType (as a list of zero or one) of the measurands the reading has."""
    values: list[dict[str, Any]] = []
    for sample in sampled_values(reading, measurands, context):
        value: dict[str, Any] = {"value": float(sample["value"]), "context": context,
                                 "measurand": sample["measurand"], "location": sample["location"]}
        unit = UNITS.get(sample.get("unit", ""), sample.get("unit"))
        if unit:
            value["unitOfMeasure"] = {"unit": unit}
        if "phase" in sample:
            value["phase"] = sample["phase"]
        values.append(value)
    return [{"timestamp": at, "sampledValue": values}] if values else []


class Transactions:
    def __init__(self, ctx: Ctx, evses: Evses, authorization: TokenInfoSink) -> None:
        self.ctx, self.evses, self.authorization = ctx, evses, authorization
        self.repository = TransactionRepository(ctx.store)
        self.started: Signal[int] = Signal()  # EVSE id
        self.ended: Signal[int] = Signal()  # EVSE id
        self.conditions = {evse_id: Conditions() for evse_id in evses.ids()}
        self.running: dict[int, Running] = {}
        self._remote_starts: dict[int | None, int] = {}  # EVSE id (None: any) -> remoteStartId
        # EVSE id -> the everpy StopTransactionReason OCPP asked for: the EVSE deauthorizes before it says
        # TransactionFinished(reason), so the Deauthorized that ends the transaction is told by this reason
        self._stops_requested: dict[int, str] = {}
        self._offered_a: dict[int, float] = {}
        self._aligned: list[asyncio.Task[None]] = []

    # -- startup -----------------------------------------------------------------------------------
    async def recover(self) -> None:
        """Transactions the store holds as open: continued when the EVSE still runs their session (the OCPP
        service restarted, the charger did not), ended as at a power loss otherwise."""
        for stored in self.repository.open_transactions():
            info = await self.ctx.station.session_info(stored.evse_id) if stored.evse_id in self.evses else None
            if info is not None and info.get("session_id") and info.get("session_id") == stored.session_id \
                    and stored.evse_id not in self.running:
                self._continue(stored, info)
            else:
                self._end_lost(stored)
        self._start_aligned()

    def resync(self, evse_id: int, info: dict[str, Any]) -> None:
        """The EVSE came back: a transaction whose session it no longer runs ended while it was away."""
        tx = self.running.get(evse_id)
        if tx is None or (info.get("session_id") and info.get("session_id") == tx.stored.session_id):
            return
        self.ctx.log.warning("EVSE %d came back without the session of transaction %s", evse_id, tx.tx_id)
        self._finish(tx)
        stored = self.repository.get(tx.tx_id)
        if stored is not None:
            self._end_lost(stored)
        self.conditions[evse_id] = Conditions()

    def _continue(self, stored: StoredTransaction, info: dict[str, Any]) -> None:
        self.ctx.log.warning("transaction %s on EVSE %d still runs; continuing it", stored.tx_id, stored.evse_id)
        conditions = self.conditions[stored.evse_id]
        conditions.points[EV_CONNECTED] = True
        conditions.points[AUTHORIZED] = bool(info.get("transaction"))
        conditions.id_token = stored.state.id_token
        conditions.charging_state = stored.state.charging_state or "EVConnected"
        tx = Running(stored, {point for point, holds in conditions.points.items() if holds},
                     sent_charging_state=stored.state.charging_state)
        self._begin(tx)

    def _end_lost(self, stored: StoredTransaction) -> None:
        """Ended (PowerLoss) for a transaction whose EVSE no longer runs it, with the last reading kept."""
        self.ctx.log.warning("transaction %s on EVSE %d ended while OCPP was away; ending it", stored.tx_id,
                             stored.evse_id)
        reading = stored.last_reading
        at = self._time_of(reading)
        samples = list(stored.ended_samples)
        if reading is not None:
            samples += meter_value(reading, self.ctx.config.list(TX_ENDED_MEASURANDS), "Transaction.End", at)
        tx = Running(stored)
        self._queue(tx, "Ended", "AbnormalCondition", at, {"stoppedReason": "PowerLoss"}, meter=samples,
                    closing=True)
        if stored.evse_id in self.evses:
            self.ended.emit(stored.evse_id)

    def cancel_timers(self) -> None:
        for task in self._aligned:
            task.cancel()
        for tx in self.running.values():
            for task in tx.tasks:
                task.cancel()

    # -- readings ----------------------------------------------------------------------------------
    def on_powermeter(self, evse_id: int, reading: Reading) -> None:
        if evse_id not in self.evses:
            return
        self.evses[evse_id].reading = reading
        tx = self.running.get(evse_id)
        if tx is None:
            return
        self.repository.record_reading(tx.tx_id, reading)
        wh = energy_wh(reading)
        if tx.state.stop_at_wh is not None and wh is not None and wh >= tx.state.stop_at_wh:
            tx.state.stop_at_wh = None  # asked once
            self.repository.set_state(tx.tx_id, tx.state)
            self.ctx.jobs.spawn(self._stop_invalid(evse_id))

    def on_limits(self, evse_id: int, limits: dict[str, Any]) -> None:
        current = limits.get("max_current")
        if isinstance(current, int | float) and math.isfinite(current) and current >= 0:
            self._offered_a[evse_id] = float(current)

    def _reading(self, evse_id: int) -> Reading | None:
        reading = self.evses[evse_id].reading
        if reading is None:
            return None
        offered = self._offered_a.get(evse_id)
        return reading if offered is None else {**reading, "offered_current_A": offered}

    def _time_of(self, reading: Reading | None) -> str:
        timestamp = None if reading is None else reading.get("timestamp")
        return timestamp if isinstance(timestamp, str) and timestamp else rfc3339(self.ctx.clock.time())

    def _values(self, evse_id: int, measurands: Ref, context: str, at: str | None = None) -> list[dict[str, Any]]:
        reading = self._reading(evse_id)
        if reading is None:
            return []
        return meter_value(reading, self.ctx.config.list(measurands), context, at or self._time_of(reading))

    # -- session events ----------------------------------------------------------------------------
    async def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        if evse_id not in self.conditions:
            return
        conditions = self.conditions[evse_id]
        trigger, token = self._apply(evse_id, conditions, event)
        tx = self.running.get(evse_id)
        timestamp = event.get("timestamp") or rfc3339(self.ctx.clock.time())
        if tx is None:
            if trigger is not None and self._start_reached(conditions):
                self._start(evse_id, conditions, trigger, timestamp, event)
            return
        tx.reached |= {point for point, holds in conditions.points.items() if holds}
        if event["event"] == "TransactionFinished":
            self._finish_reason(tx, event.get("transaction_finished") or {})
        if self._stop_reached(tx, conditions):
            await self._end(tx, trigger or "AbnormalCondition", timestamp)
        elif trigger is not None:
            self._update(tx, trigger, timestamp, token)

    def _apply(self, evse_id: int, c: Conditions, event: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """Update the conditions; the triggerReason of what changed (None: nothing to tell) and the token
        newly authorized, if any."""
        kind, points = event["event"], c.points
        trigger: str | None = None
        token: dict[str, Any] | None = None
        before = c.charging_state
        if kind == "SessionStarted":
            details = event.get("session_started") or {}
            c.reservation_id = details.get("reservation_id")
            if details.get("reason") == "Authorized":
                token = self._token(details.get("id_tag"))
                points[AUTHORIZED], trigger = True, "Authorized"
            else:
                points[EV_CONNECTED], trigger = True, "CablePluggedIn"
                c.charging_state = "EVConnected"
        elif kind == "Authorized":
            token = self._token(event.get("authorization"))
            if not points[AUTHORIZED] or (token is not None and token != c.id_token):
                points[AUTHORIZED], trigger = True, "Authorized"
        elif kind == "TransactionStarted":
            details = event.get("transaction_started") or {}
            if details.get("reservation_id") is not None:
                c.reservation_id = details["reservation_id"]
            token = self._token(details.get("id_tag"))
            if not points[EV_CONNECTED]:
                points[EV_CONNECTED], trigger = True, "CablePluggedIn"
                c.charging_state = "EVConnected"
            if not points[AUTHORIZED] or (token is not None and token != c.id_token):
                points[AUTHORIZED], trigger = True, "Authorized"
        elif kind in ("PrepareCharging", "SessionResumed") and not points[EV_CONNECTED]:
            points[EV_CONNECTED], trigger = True, "CablePluggedIn"
            c.charging_state = "EVConnected"
        elif kind in ("ChargingStarted", "ChargingResumed"):
            points[POWER_PATH_CLOSED] = points[ENERGY_TRANSFER] = points[EV_CONNECTED] = True
            c.charging_state = "Charging"
        elif kind == "ChargingPausedEV":
            points[POWER_PATH_CLOSED], points[ENERGY_TRANSFER] = True, False
            c.charging_state = "SuspendedEV"
        elif kind == "ChargingPausedEVSE":
            points[POWER_PATH_CLOSED] = points[ENERGY_TRANSFER] = False
            c.charging_state = "SuspendedEVSE"
        elif kind in ("StoppingCharging", "ChargingFinished"):
            points[ENERGY_TRANSFER] = False
            points[POWER_PATH_CLOSED] = points[POWER_PATH_CLOSED] and kind == "StoppingCharging"
            c.charging_state = "EVConnected"
        elif kind == "TransactionFinished":
            details = event.get("transaction_finished") or {}
            points[AUTHORIZED] = points[POWER_PATH_CLOSED] = points[ENERGY_TRANSFER] = False
            c.charging_state = "EVConnected"
            trigger = FINISH_REASONS.get(details.get("reason", "Other"), FINISH_REASONS["Other"])[0]
            if trigger == "StopAuthorized" and self._token(details.get("id_tag")) is None:
                trigger = "ChargingStateChanged"  # a local stop without a token (the stop button)
        elif kind == "Deauthorized":
            if points[AUTHORIZED]:
                points[AUTHORIZED], trigger = False, "Deauthorized"
                requested = self._stops_requested.pop(evse_id, None)
                if requested is not None and (tx := self.running.get(evse_id)) is not None:
                    trigger, tx.stopped_reason = FINISH_REASONS.get(requested, FINISH_REASONS["Other"])
        elif kind == "PluginTimeout":
            points[AUTHORIZED], trigger = False, "EVConnectTimeout"
        elif kind == "SessionFinished":
            self._stops_requested.pop(evse_id, None)
            c.points = dict.fromkeys(points, False)
            c.charging_state, c.id_token, c.reservation_id = "Idle", None, None
            trigger = "EVCommunicationLost"
        if token is not None:
            c.id_token = token
            trigger = self._remote_trigger(evse_id, trigger, event)
        if trigger is None and c.charging_state != before:
            trigger = "ChargingStateChanged"
        return trigger, token

    def _remote_trigger(self, evse_id: int, trigger: str | None, event: dict[str, Any]) -> str | None:
        return "RemoteStart" if trigger == "Authorized" and self._remote_start_pending(evse_id, event) else trigger

    def _remote_start_pending(self, evse_id: int, event: dict[str, Any]) -> bool:
        return any(key in self._remote_starts for key in (evse_id, None)) or any(
            isinstance(details, dict) and isinstance(details.get("id_tag"), dict)
            and details["id_tag"].get("request_id") is not None
            for details in (event.get("session_started"), event.get("transaction_started")))

    def _token(self, provided: Any) -> dict[str, Any] | None:
        """An IdTokenType from an everpy ProvidedIdToken; None (and logged) for something that is none."""
        if not isinstance(provided, dict) or not isinstance(provided.get("id_token"), dict):
            return None
        presented = provided["id_token"]
        token = {"idToken": presented.get("value"), "type": presented.get("type")}
        if (reason := id_token_problem(token)) is not None:
            self.ctx.log.warning("session event token %r not used: %s", presented, reason)
            return None
        return token

    def _start_reached(self, c: Conditions) -> bool:
        return any(c.points.get(point, False) for point in self.ctx.config.list(TX_START_POINT))

    def _stop_reached(self, tx: Running, c: Conditions) -> bool:
        if not c.points[EV_CONNECTED] and EV_CONNECTED in tx.reached:
            return True  # the car left: nothing can continue the transaction (ParkingBayOccupancy is not sensed)
        return any(point in tx.reached and not c.points.get(point, False)
                   for point in self.ctx.config.list(TX_STOP_POINT))

    def _finish_reason(self, tx: Running, details: dict[str, Any]) -> None:
        reason = details.get("reason", "Other")
        tx.stopped_reason = FINISH_REASONS.get(reason, FINISH_REASONS["Other"])[1]
        tx.stop_token = self._token(details.get("id_tag"))

    # -- start, update, end ------------------------------------------------------------------------
    def _take_remote_start(self, evse_id: int, event: dict[str, Any]) -> int | None:
        remote = self._remote_starts.pop(evse_id, None)
        if remote is None:
            remote = self._remote_starts.pop(None, None)
        if remote is None:
            for details in (event.get("session_started"), event.get("transaction_started")):
                if isinstance(details, dict) and isinstance(details.get("id_tag"), dict):
                    request_id = details["id_tag"].get("request_id")
                    if isinstance(request_id, int) and not isinstance(request_id, bool):
                        return request_id
        return remote

    def _start(self, evse_id: int, c: Conditions, trigger: str, timestamp: str, event: dict[str, Any]) -> None:
        reading = self._reading(evse_id)
        state = TxState(timestamp, c.id_token, self._take_remote_start(evse_id, event), c.charging_state,
                        energy_wh(reading))
        session_id = self.evses[evse_id].session_id or event.get("uuid") or ""
        stored = StoredTransaction(str(uuid.uuid4()), evse_id, session_id, 0, state, last_reading=reading)
        tx = Running(stored, {point for point, holds in c.points.items() if holds},
                     sent_charging_state=c.charging_state)
        info: dict[str, Any] = {"chargingState": c.charging_state}
        if state.remote_start_id is not None:
            info["remoteStartId"] = state.remote_start_id
        extra: dict[str, Any] = {"evse": {"id": evse_id, "connectorId": CONNECTOR_ID}}
        if c.id_token is not None:
            extra["idToken"] = c.id_token
        if c.reservation_id is not None:
            extra["reservationId"] = c.reservation_id
        self._queue(tx, "Started", trigger, timestamp, info, meter=self._values(
            evse_id, TX_STARTED_MEASURANDS, "Transaction.Begin"), extra=extra, new=True)
        ended = self._values(evse_id, TX_ENDED_MEASURANDS, "Transaction.Begin")
        if ended:
            stored.ended_samples += ended
            self.repository.add_ended_samples(stored.tx_id, ended)
        self._begin(tx)
        self.ctx.station.publish("ocpp_transaction_event", {"transaction_event": "Started", "evse": {"id": evse_id},
                                                            "session_id": session_id, "transaction_id": tx.tx_id})

    def _begin(self, tx: Running) -> None:
        evse_id = tx.stored.evse_id
        self.running[evse_id] = tx
        self.evses[evse_id].transaction_id = tx.tx_id
        tx.tasks = [
            self.ctx.jobs.spawn(self._every(TX_UPDATED_INTERVAL, lambda: self._periodic(tx))),
            self.ctx.jobs.spawn(self._every(TX_ENDED_INTERVAL, lambda: self._keep_for_end(
                tx, TX_ENDED_MEASURANDS, "Sample.Periodic"))),
        ]
        self.started.emit(evse_id)

    def _update(self, tx: Running, trigger: str, timestamp: str, token: dict[str, Any] | None = None,
                meter: list[dict[str, Any]] | None = None) -> None:
        evse_id = tx.stored.evse_id
        c = self.conditions[evse_id]
        info: dict[str, Any] = {}
        if c.charging_state != tx.sent_charging_state:
            info["chargingState"] = tx.sent_charging_state = c.charging_state
        extra: dict[str, Any] = {}
        if token is not None and trigger in ("Authorized", "RemoteStart"):
            extra["idToken"] = token
            tx.state.id_token = token
            if trigger == "RemoteStart":
                remote = self._take_remote_start(evse_id, {})
                if remote is not None:
                    info["remoteStartId"] = tx.state.remote_start_id = remote
        tx.state.charging_state = c.charging_state
        self._queue(tx, "Updated", trigger, timestamp, info, meter=meter or [], extra=extra)

    async def _end(self, tx: Running, trigger: str, timestamp: str) -> None:
        evse_id = tx.stored.evse_id
        self._finish(tx)
        # the meter read at the stop, not a reading up to one meter interval old
        reading = await self.ctx.station.read_meter(evse_id) or self._reading(evse_id)
        c = self.conditions[evse_id]
        if tx.stopped_reason is None:
            tx.stopped_reason = "EVDisconnected" if EV_CONNECTED in tx.reached and not c.points[EV_CONNECTED] else \
                "StoppedByEV" if c.charging_state == "SuspendedEV" else STOPPED_BY.get(trigger, "Local")
        info: dict[str, Any] = {"stoppedReason": tx.stopped_reason}
        if c.charging_state != tx.sent_charging_state:
            info["chargingState"] = c.charging_state
        samples = list(tx.stored.ended_samples)
        if reading is not None:
            samples += meter_value(reading, self.ctx.config.list(TX_ENDED_MEASURANDS), "Transaction.End",
                                   self._time_of(reading))
        extra = {"idToken": tx.stop_token} if tx.stop_token is not None else {}
        self._queue(tx, "Ended", trigger, timestamp, info, meter=samples, extra=extra, closing=True)
        self.ended.emit(evse_id)
        self.ctx.station.publish("ocpp_transaction_event", {
            "transaction_event": "Ended", "evse": {"id": evse_id}, "session_id": tx.stored.session_id,
            "transaction_id": tx.tx_id})

    def _finish(self, tx: Running) -> None:
        """The transaction no longer runs on its EVSE (its Ended is about to be queued)."""
        evse_id = tx.stored.evse_id
        for task in tx.tasks:
            task.cancel()
        if self.running.get(evse_id) is tx:
            del self.running[evse_id]
            self.evses[evse_id].transaction_id = None

    def _queue(self, tx: Running, event_type: str, trigger: str, timestamp: str, info: dict[str, Any], *,
               meter: list[dict[str, Any]], extra: dict[str, Any] | None = None, new: bool = False,
               closing: bool = False) -> None:
        """Queue one TransactionEvent and take its seqNo in one store transaction."""
        seq_no = tx.stored.next_seq
        payload: dict[str, Any] = {"eventType": event_type, "timestamp": timestamp, "triggerReason": trigger,
                                   "seqNo": seq_no, "transactionInfo": {"transactionId": tx.tx_id, **info},
                                   **(extra or {})}
        if meter:
            payload["meterValue"] = meter
        if not self.ctx.sender.online:
            payload["offline"] = True
        with self.ctx.store.atomic():
            if new:
                self.repository.add(tx.stored)
            self.ctx.sender.queue("TransactionEvent", payload, tx.tx_id)
            self.repository.take_seq(tx.tx_id, seq_no, tx.state, closing=closing)
        tx.stored.next_seq = seq_no + 1

    async def stop(self, evse_id: int, reason: str) -> bool:
        """Ask the EVSE to stop its transaction for ``reason`` (an everpy StopTransactionReason)."""
        self._stops_requested[evse_id] = reason
        if await self.ctx.station.stop_transaction(evse_id, reason):
            return True
        self._stops_requested.pop(evse_id, None)
        return False

    def expect_remote_start(self, evse_id: int | None, remote_start_id: int) -> None:
        """The next transaction (on evse_id, or any) started from RequestStartTransaction(remoteStartId)."""
        self._remote_starts[evse_id] = remote_start_id

    def transaction_of(self, transaction_id: str) -> int | None:
        """The EVSE running the transaction, None if none does."""
        return next((evse_id for evse_id, tx in self.running.items() if tx.tx_id == transaction_id), None)

    # -- the CSMS's answers ------------------------------------------------------------------------
    def answered(self, message: QueuedMessage, result: dict[str, Any]) -> None:
        """A TransactionEvent was delivered (inside the store transaction that dequeues it)."""
        tx_id = message.tx_key or ""
        if message.payload.get("eventType") == "Ended":
            self.repository.forget(tx_id)
        info = result.get("idTokenInfo")
        if info is None:
            return
        evse_id = self.transaction_of(tx_id)
        tx = None if evse_id is None else self.running[evse_id]
        token = message.payload.get("idToken") or (None if tx is None else tx.state.id_token)
        if (reason := id_token_info_problem(info)) is not None or token is None:
            self.ctx.log.warning("idTokenInfo of TransactionEvent %s not used: %s", tx_id, reason or "no token")
            return
        self.authorization.token_info(token, info)
        if info["status"] != "Accepted" and tx is not None and evse_id is not None and token == tx.state.id_token:
            self._invalid_token(evse_id, tx)

    def _invalid_token(self, evse_id: int, tx: Running) -> None:
        """E05: the CSMS does not accept the transaction's token (it started offline, or was revoked)."""
        max_wh = self.ctx.config.int(MAX_ENERGY_ON_INVALID_ID)
        start_wh = tx.state.meter_start_wh
        if max_wh > 0 and start_wh is not None:
            tx.state.stop_at_wh = start_wh + max_wh
            self.repository.set_state(tx.tx_id, tx.state)
            self.ctx.log.warning("token of transaction %s not accepted; it may charge up to %d Wh", tx.tx_id, max_wh)
            return
        self.ctx.jobs.spawn(self._stop_invalid(evse_id))

    async def _stop_invalid(self, evse_id: int) -> None:
        if self.ctx.config.bool(STOP_TX_ON_INVALID_ID):
            await self.ctx.station.stop_transaction(evse_id, "DeAuthorized")
        else:  # E05.FR.03: the transaction goes on without energy
            await self.ctx.station.pause_charging(evse_id)

    @handles("GetTransactionStatus")
    async def on_get_transaction_status(self, payload: dict[str, Any]) -> Reply:
        tx_id = payload.get("transactionId")
        in_queue = self.repository.queued_for(tx_id) > 0
        if tx_id is None:
            return Reply({"messagesInQueue": in_queue})
        return Reply({"messagesInQueue": in_queue, "ongoingIndicator": self.transaction_of(tx_id) is not None})

    # -- meter values (J) --------------------------------------------------------------------------
    async def _every(self, interval_ref: Ref, tick: Callable[[], None]) -> None:
        model = self.ctx.config
        while True:
            interval = model.int(interval_ref)
            if interval <= 0:
                await model.wait_change(interval_ref)
            elif await model.sleep_unless_changed(self.ctx.clock, interval, interval_ref):
                tick()

    def _periodic(self, tx: Running) -> None:
        meter = self._values(tx.stored.evse_id, TX_UPDATED_MEASURANDS, "Sample.Periodic")
        if meter:
            self._update(tx, "MeterValuePeriodic", meter[0]["timestamp"], meter=meter)

    def _keep_for_end(self, tx: Running, measurands: Ref, context: str, at: str | None = None) -> None:
        samples = self._values(tx.stored.evse_id, measurands, context, at)
        if samples:
            tx.stored.ended_samples += samples
            self.repository.add_ended_samples(tx.tx_id, samples)

    def _start_aligned(self) -> None:
        for task in self._aligned:
            task.cancel()
        self._aligned = [self.ctx.jobs.spawn(self._aligned_every(ALIGNED_INTERVAL, self._clock_aligned)),
                         self.ctx.jobs.spawn(self._aligned_every(ALIGNED_TX_ENDED_INTERVAL, self._aligned_for_end))]

    async def _aligned_every(self, interval_ref: Ref, tick: Callable[[str], Awaitable[None]]) -> None:
        model, clock = self.ctx.config, self.ctx.clock
        while True:
            interval = model.int(interval_ref)
            if interval <= 0:
                await model.wait_change(interval_ref)
                continue
            now = clock.time()
            aligned = math.floor(now / interval) * interval + interval
            if await model.sleep_unless_changed(clock, aligned - now, interval_ref):
                await tick(rfc3339(aligned))

    async def _clock_aligned(self, at: str) -> None:
        during_transactions = not self.ctx.config.bool(ALIGNED_SEND_DURING_IDLE)
        for evse_id in self.evses.ids():
            meter = self._values(evse_id, ALIGNED_MEASURANDS, "Sample.Clock", at)
            if not meter:
                continue
            tx = self.running.get(evse_id)
            if tx is None:
                await self.ctx.sender.call_or_log("MeterValues", {"evseId": evse_id, "meterValue": meter})
            elif during_transactions:
                self._update(tx, "MeterValueClock", at, meter=meter)

    async def _aligned_for_end(self, at: str) -> None:
        for tx in list(self.running.values()):
            self._keep_for_end(tx, ALIGNED_TX_ENDED_MEASURANDS, "Sample.Clock", at)

    # -- TriggerMessage ------------------------------------------------------------------------------
    async def trigger_transaction_event(self, evse_id: int | None) -> str:
        targets = [tx for tx in self.running.values() if evse_id in (None, tx.stored.evse_id)]
        for tx in targets:
            self._update(tx, "Trigger", rfc3339(self.ctx.clock.time()),
                         meter=self._values(tx.stored.evse_id, TX_UPDATED_MEASURANDS, "Trigger"))
        return "Accepted" if targets else "Rejected"

    async def trigger_meter_values(self, evse_id: int | None) -> str:
        payloads = [{"evseId": e, "meterValue": meter} for e in self.evses.ids() if evse_id in (None, e)
                    if (meter := self._values(e, ALIGNED_MEASURANDS, "Trigger"))]
        if not payloads:
            return "Rejected"
        self.ctx.jobs.spawn(self._send_all("MeterValues", payloads))
        return "Accepted"

    async def _send_all(self, action: str, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            await self.ctx.sender.call_or_log(action, payload)


class TransactionQueue:
    """The session's MessagePolicy for 2.0.1 (TransactionEvent and the other queued messages)."""

    def __init__(self, ctx: Ctx, transactions: Transactions) -> None:
        self.ctx, self.transactions = ctx, transactions

    def knows(self, action: str) -> bool:
        return action in QUEUED_ACTIONS

    def prepare(self, message: QueuedMessage) -> dict[str, Any]:
        return dict(message.payload)

    def delivered(self, message: QueuedMessage, result: dict[str, Any]) -> None:
        if message.action != "TransactionEvent":
            return
        self.transactions.answered(message, result)
        info = result.get("idTokenInfo")
        response: dict[str, Any] = {"session_id": self._session_of(message), "transaction_id": message.tx_key or ""}
        if isinstance(info, dict) and isinstance(info.get("status"), str):
            response["id_tag_status"] = info["status"]
        self.ctx.station.publish("ocpp_transaction_event_response", response)

    def _session_of(self, message: QueuedMessage) -> str:
        evse_id = self.transactions.transaction_of(message.tx_key or "")
        return "" if evse_id is None else self.transactions.running[evse_id].stored.session_id

    def dropped(self, message: QueuedMessage) -> None:
        if message.action == "TransactionEvent" and message.payload.get("eventType") == "Ended":
            self.transactions.repository.forget(message.tx_key or "")

    def attempts(self) -> int:
        return self.ctx.config.int(MESSAGE_ATTEMPTS)

    def retry_interval(self) -> float:
        return float(self.ctx.config.int(MESSAGE_ATTEMPT_INTERVAL))
