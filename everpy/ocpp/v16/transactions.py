"""Transactions: StartTransaction, StopTransaction and meter values, persisted before they are sent.

Every transaction message goes through the session's persistent queue (:class:`TransactionQueue` is the
1.6 message policy: the transaction id filled in at sending, -1 if the CSMS never confirmed the start).
After a restart, a transaction the store holds as open is continued when its EVSE still runs it (the
OCPP module restarted, the charger did not) and stopped with reason PowerLoss otherwise.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from everpy.ocpp.blocks import BlockContext, Signal
from everpy.ocpp.store import QueuedMessage
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connector, Connectors, Transaction
from everpy.ocpp.v16.meter import energy_wh, sampled_values
from everpy.ocpp.v16.repository import OpenTransaction, Repository16
from everpy.ocpp.values import parse_time, rfc3339

STOP_REASONS = {"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot", "Remote",
                "SoftReset", "UnlockCommand", "DeAuthorized"}
QUEUED_ACTIONS = {"StartTransaction", "StopTransaction", "MeterValues", "SecurityEventNotification"}
ID_TAG_MAX = 20


@dataclass(frozen=True)
class Started:
    connector_id: int
    start_time: float
    tx_key: str


@dataclass(frozen=True)
class StartAnswered:
    """The CSMS answered StartTransaction (inside the store transaction that dequeues it)."""

    connector_id: int | None
    id_tag: str
    id_tag_info: dict[str, Any]


class Transactions:
    def __init__(self, ctx: BlockContext[Configuration], repository: Repository16, connectors: Connectors) -> None:
        self.ctx = ctx
        self.repository = repository
        self.connectors = connectors
        self.started: Signal[Started] = Signal()
        self.ended: Signal[int] = Signal()  # connector id
        self.start_answered: Signal[StartAnswered] = Signal()
        self.stop_answered: Signal[tuple[str, dict[str, Any]]] = Signal()  # (idTag, idTagInfo)
        self._aligned_task: asyncio.Task[None] | None = None
        self._transaction_ended = asyncio.Event()

    # -- startup -----------------------------------------------------------------------------------
    async def recover(self) -> None:
        """Transactions the store holds as open: continue those the EVSE still runs, stop the rest with
        reason PowerLoss and the last reading the charger had."""
        for tx in self.repository.open_transactions():
            c = self.connectors.get(tx.connector)
            info = await self.ctx.station.session_info(tx.connector) if c is not None else None
            running = (info or {}).get("transaction") or {}
            if c is not None and running.get("uuid") == tx.tx_key:
                self._continue(c, tx)
            else:
                self._stop_after_power_loss(tx)
                if c is not None:  # what hangs on the transaction (a TxProfile, a scheduled change) ends too
                    self.ended.emit(c.id)
        self.restart_aligned()

    def resync(self, c: Connector, info: dict[str, Any]) -> None:
        """The EVSE came back and says what it runs (``get_session``): a transaction it no longer runs
        (it restarted and lost it) ends as at a power loss, with the last reading the charger had."""
        tx = c.transaction
        running = info.get("transaction") or {}
        if tx is None or running.get("uuid") == tx.tx_key:
            return
        stored = next((t for t in self.repository.open_transactions() if t.tx_key == tx.tx_key), None)
        if tx.sampler is not None:
            tx.sampler.cancel()
        c.transaction = None
        self.ctx.log.warning("connector %d came back without transaction %s", c.id, tx.tx_key)
        if stored is not None:
            self._stop_after_power_loss(stored)
        self._transaction_ended.set()
        self.ended.emit(c.id)
        self.ctx.station.publish("ocpp_transaction_event", {"transaction_event": "Ended", "evse": {"id": c.id},
                                                            "session_id": tx.tx_key})

    def _continue(self, c: Connector, tx: OpenTransaction) -> None:
        self.ctx.log.warning("transaction %s on connector %d still runs; continuing it", tx.tx_key, tx.connector)
        transaction = Transaction(tx.tx_key, tx.id_tag, parse_time(tx.start_time), tx.meter_start,
                                  stop_samples=list(tx.stop_samples), last_sent_wh=tx.last_meter_wh)
        c.transaction = transaction
        transaction.sampler = self.ctx.jobs.spawn(self._sample_loop(c, transaction))
        self.started.emit(Started(c.id, transaction.start_time, tx.tx_key))

    def _stop_after_power_loss(self, tx: OpenTransaction) -> None:
        self.ctx.log.warning("transaction %s on connector %d was open at power loss; stopping it",
                             tx.tx_key, tx.connector)
        payload: dict[str, Any] = {"meterStop": max(tx.last_meter_wh, tx.meter_start),
                                   "timestamp": tx.last_meter_time, "reason": "PowerLoss"}
        end = self._meter_value({"energy_Wh_import": {"total": payload["meterStop"]},
                                 "timestamp": tx.last_meter_time},
                                self.ctx.config.csl("StopTxnSampledData"), "Transaction.End")
        if tx.stop_samples or end:
            payload["transactionData"] = tx.stop_samples + end
        with self.ctx.store.atomic():
            self.ctx.sender.queue("StopTransaction", payload, tx.tx_key)
            self.repository.close_transaction(tx.tx_key)

    def cancel_timers(self) -> None:
        if self._aligned_task is not None:
            self._aligned_task.cancel()
        for c in self.connectors:
            if c.transaction is not None and c.transaction.sampler is not None:
                c.transaction.sampler.cancel()

    # -- readings ----------------------------------------------------------------------------------
    def on_powermeter(self, connector_id: int, reading: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        c.reading = {**(c.reading or {}), **reading}
        wh = energy_wh(reading)
        if c.transaction is not None and wh is not None:
            self.repository.record_meter(c.transaction.tx_key, wh, self._reading_time(reading))

    def on_limits(self, connector_id: int, limits: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        c.reading = {**(c.reading or {}), "offered_current_A": limits.get("max_current")}

    def _reading_time(self, reading: dict[str, Any]) -> str:
        timestamp = reading.get("timestamp")
        return timestamp if isinstance(timestamp, str) and timestamp else rfc3339(self.ctx.clock.time())

    # -- start and stop ----------------------------------------------------------------------------
    def transaction_started(self, c: Connector, event: dict[str, Any], reservation_id: int | None) -> None:
        if c.transaction is not None:
            self.ctx.log.error("TransactionStarted on connector %d while transaction %s runs; ignored",
                               c.id, c.transaction.tx_key)
            return
        details = event.get("transaction_started", {})
        reading = details.get("meter_value") or c.reading
        meter_start = energy_wh(reading) or 0
        id_tag = details.get("id_tag", {}).get("id_token", {}).get("value", "")
        if len(id_tag) > ID_TAG_MAX:
            self.ctx.log.warning("id tag %r is longer than OCPP 1.6 allows; sending its first 20 characters", id_tag)
            id_tag = id_tag[:ID_TAG_MAX]
        timestamp = event.get("timestamp") or rfc3339(self.ctx.clock.time())
        tx_key = event["uuid"] or f"tx-{c.id}-{self.ctx.clock.time()}"
        payload: dict[str, Any] = {"connectorId": c.id, "idTag": id_tag, "meterStart": meter_start,
                                   "timestamp": timestamp}
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        with self.ctx.store.atomic():
            self.repository.open_transaction(tx_key, c.id, id_tag, meter_start, timestamp)
            self.ctx.sender.queue("StartTransaction", payload, tx_key)
        tx = Transaction(tx_key, id_tag, parse_time(timestamp), meter_start, last_sent_wh=meter_start)
        if reading is not None:
            self._add_stop_samples(tx, self._meter_value(reading, self.ctx.config.csl("StopTxnSampledData"),
                                                         "Transaction.Begin"))
        c.transaction = tx
        tx.sampler = self.ctx.jobs.spawn(self._sample_loop(c, tx))
        self.started.emit(Started(c.id, tx.start_time, tx_key))
        self.ctx.station.publish("ocpp_transaction_event", {"transaction_event": "Started", "evse": {"id": c.id},
                                                            "session_id": tx_key})

    async def transaction_finished(self, c: Connector, event: dict[str, Any]) -> None:
        tx = c.transaction
        if tx is None:
            self.ctx.log.warning("TransactionFinished on connector %d without a transaction", c.id)
            return
        if tx.sampler is not None:
            tx.sampler.cancel()
        c.transaction = None  # taken at once: a second TransactionFinished must not stop it twice
        details = event.get("transaction_finished", {})
        # the meter read at the stop, not a reading up to one meter interval old
        reading = await self.ctx.station.read_meter(c.id) or details.get("meter_value") or c.reading
        meter_stop = energy_wh(reading)
        if meter_stop is None:
            meter_stop = tx.meter_start
        meter_stop = max(meter_stop, tx.last_sent_wh or 0, tx.meter_start)  # never below a value already sent
        reason = details.get("reason", "Local")
        timestamp = event.get("timestamp") or rfc3339(self.ctx.clock.time())
        payload: dict[str, Any] = {"meterStop": meter_stop, "timestamp": timestamp,
                                   "reason": reason if reason in STOP_REASONS else "Other"}
        stop_tag = details.get("id_tag", {}).get("id_token", {}).get("value")
        if stop_tag:
            payload["idTag"] = stop_tag[:ID_TAG_MAX]
        samples = list(tx.stop_samples)
        if reading is not None:
            end_reading = {**reading, "energy_Wh_import": {**reading.get("energy_Wh_import", {}), "total": meter_stop}}
            samples += self._meter_value(end_reading, self.ctx.config.csl("StopTxnSampledData"), "Transaction.End")
        if samples:
            payload["transactionData"] = samples
        with self.ctx.store.atomic():
            self.ctx.sender.queue("StopTransaction", payload, tx.tx_key)
            self.repository.close_transaction(tx.tx_key)
        self._transaction_ended.set()
        self.ended.emit(c.id)
        self.ctx.station.publish("ocpp_transaction_event", {"transaction_event": "Ended", "evse": {"id": c.id},
                                                            "session_id": tx.tx_key})

    async def wait_all_ended(self, connectors: list[Connector], deadline: float) -> bool:
        clock = self.ctx.clock
        while any(c.transaction is not None for c in connectors) and clock.monotonic() < deadline:
            self._transaction_ended.clear()
            try:
                await clock.wait_for(self._transaction_ended.wait(), deadline - clock.monotonic())
            except TimeoutError:
                break
        return not any(c.transaction is not None for c in connectors)

    def transaction_id(self, c: Connector) -> int | None:
        return None if c.transaction is None else self.repository.transaction_id(c.transaction.tx_key)

    def connector_of(self, transaction_id: int) -> Connector | None:
        for c in self.connectors:
            if self.transaction_id(c) == transaction_id:
                return c
        return None

    # -- meter values -----------------------------------------------------------------------------------
    def _add_stop_samples(self, tx: Transaction, samples: list[dict[str, Any]]) -> None:
        tx.stop_samples += samples
        self.repository.add_stop_samples(tx.tx_key, samples)

    def _meter_value(self, reading: dict[str, Any], measurands: list[str], context: str,
                     at: str | None = None) -> list[dict[str, Any]]:
        """One MeterValue at the reading's own time (or `at`, the instant a clock-aligned value is for)."""
        values = sampled_values(reading, measurands, context)
        if not values:
            return []
        return [{"timestamp": at or self._reading_time(reading), "sampledValue": values}]

    def _queue_transaction_values(self, c: Connector, tx: Transaction, meter_value: list[dict[str, Any]]) -> None:
        wh = energy_wh(c.reading)
        if wh is not None:
            tx.last_sent_wh = max(tx.last_sent_wh or 0, wh)
        with self.ctx.store.atomic():
            self.ctx.sender.queue("MeterValues", {"connectorId": c.id, "meterValue": meter_value}, tx.tx_key)

    async def _sample_loop(self, c: Connector, tx: Transaction) -> None:
        config = self.ctx.config
        while True:
            interval = config.int("MeterValueSampleInterval")
            if interval <= 0:
                await config.wait_change("MeterValueSampleInterval")
                continue
            if not await config.sleep_unless_changed(self.ctx.clock, interval, "MeterValueSampleInterval") \
                    or c.reading is None:
                continue
            meter_value = self._meter_value(c.reading, config.csl("MeterValuesSampledData"), "Sample.Periodic")
            self._add_stop_samples(tx, self._meter_value(c.reading, config.csl("StopTxnSampledData"),
                                                         "Sample.Periodic"))
            if meter_value:
                self._queue_transaction_values(c, tx, meter_value)

    def restart_aligned(self) -> None:
        if self._aligned_task is not None:
            self._aligned_task.cancel()
        self._aligned_task = self.ctx.jobs.spawn(self._aligned_loop())

    async def _aligned_loop(self) -> None:
        config, clock = self.ctx.config, self.ctx.clock
        interval = config.int("ClockAlignedDataInterval")
        if interval <= 0:
            return
        while True:
            now = clock.time()
            aligned = math.floor(now / interval) * interval + interval
            await clock.sleep(aligned - now)
            at = rfc3339(aligned)
            for c in self.connectors:
                if c.reading is None:
                    continue
                meter_value = self._meter_value(c.reading, config.csl("MeterValuesAlignedData"), "Sample.Clock", at)
                if c.transaction is not None:
                    self._add_stop_samples(c.transaction, self._meter_value(
                        c.reading, config.csl("StopTxnAlignedData"), "Sample.Clock", at))
                    if meter_value:
                        self._queue_transaction_values(c, c.transaction, meter_value)
                elif meter_value:
                    await self.ctx.sender.call_or_log("MeterValues", {"connectorId": c.id, "meterValue": meter_value})

    async def send_meter_values_now(self, connector_id: int) -> None:
        """For TriggerMessage(MeterValues): the current reading, not part of the transaction queue."""
        for c in self.connectors:
            if connector_id in (0, c.id) and c.reading is not None:
                meter_value = self._meter_value(c.reading, self.ctx.config.csl("MeterValuesSampledData"), "Trigger")
                payload: dict[str, Any] = {"connectorId": c.id, "meterValue": meter_value}
                tx_id = self.transaction_id(c)
                if tx_id is not None:
                    payload["transactionId"] = tx_id
                if meter_value:
                    await self.ctx.sender.call_or_log("MeterValues", payload)


class TransactionQueue:
    """The 1.6 message policy of the session's persistent queue (the transactions' repository: theirs)."""

    def __init__(self, ctx: BlockContext[Configuration], transactions: Transactions) -> None:
        self.ctx = ctx
        self.transactions = transactions
        self.repository = transactions.repository

    def knows(self, action: str) -> bool:
        return action in QUEUED_ACTIONS

    def prepare(self, message: QueuedMessage) -> dict[str, Any]:
        payload = dict(message.payload)
        if message.tx_key is not None and message.action != "StartTransaction":
            transaction_id = self.repository.transaction_id(message.tx_key)
            # errata 3.18: the CSMS never confirmed the start, so the transaction id is -1
            payload["transactionId"] = -1 if transaction_id is None else transaction_id
        return payload

    def delivered(self, message: QueuedMessage, result: dict[str, Any]) -> None:
        repository = self.repository
        id_tag_info = result.get("idTagInfo")
        if message.action == "StartTransaction":
            repository.set_transaction_id(message.tx_key or "", result["transactionId"])
            self.ctx.station.publish("ocpp_transaction_event_response", {
                "session_id": message.tx_key or "", "transaction_id": str(result["transactionId"]),
                "id_tag_status": id_tag_info["status"] if id_tag_info else "Accepted"})
            connector = next((c for c in self.transactions.connectors if c.transaction is not None
                              and c.transaction.tx_key == message.tx_key), None)
            if connector is not None and connector.transaction is not None and id_tag_info:
                connector.transaction.parent_id_tag = id_tag_info.get("parentIdTag")
            if id_tag_info is not None:
                self.transactions.start_answered.emit(StartAnswered(
                    None if connector is None else connector.id, message.payload["idTag"], id_tag_info))
        elif message.action == "StopTransaction":
            repository.forget_transaction(message.tx_key or "")
            if id_tag_info is not None and "idTag" in message.payload:
                self.transactions.stop_answered.emit((message.payload["idTag"], id_tag_info))

    def dropped(self, message: QueuedMessage) -> None:
        if message.action == "StartTransaction":
            self.repository.set_transaction_id(message.tx_key or "", -1)
        elif message.action == "StopTransaction":
            self.repository.forget_transaction(message.tx_key or "")

    def attempts(self) -> int:
        return self.ctx.config.int("TransactionMessageAttempts")

    def retry_interval(self) -> float:
        return float(self.ctx.config.int("TransactionMessageRetryInterval"))
