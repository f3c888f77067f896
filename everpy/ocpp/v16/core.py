"""Core profile: status, transactions, meter values, authorisation, remote control, configuration."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from everpy.ocpp.rpc import CallTimeout, InvalidResponse, OcppCallError, Reply
from everpy.ocpp.store import QueuedMessage
from everpy.ocpp.v16.chargepoint import NotOnline, parse_time, rfc3339
from everpy.ocpp.v16.config_keys import BY_NAME, Access
from everpy.ocpp.v16.meter import energy_wh, sampled_values

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

STOP_REASONS = {"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot", "Remote",
                "SoftReset", "UnlockCommand", "DeAuthorized"}
# everpy error type (without namespace) -> OCPP 1.6 ChargePointErrorCode
ERROR_CODES = {
    "MREC2GroundFailure": "GroundFailure", "RCDTriggered": "GroundFailure", "MREC3HighTemperature": "HighTemperature",
    "MREC19CableOverTempStop": "HighTemperature", "MREC4OverCurrentFailure": "OverCurrentFailure",
    "MREC5OverVoltage": "OverVoltage", "MREC6UnderVoltage": "UnderVoltage", "PowermeterLost": "PowerMeterFailure",
    "MREC17EVSEContactorFault": "PowerSwitchFailure", "MREC25BrokenLatch": "ConnectorLockFailure",
    "MREC14PilotFault": "EVCommunicationError", "DiodeFault": "EVCommunicationError",
    "MREC10InvalidVehicleMode": "EVCommunicationError", "CommunicationFault": "InternalError",
    "Internal": "InternalError",
}  # fmt: skip
# session event -> OCPP status of the connector while a session runs (None: session over)
SESSION_STATUS = {
    "SessionStarted": "Preparing", "AuthRequired": "Preparing", "Authorized": "Preparing",
    "TransactionStarted": "Preparing", "PrepareCharging": "Preparing", "ChargingStarted": "Charging",
    "SessionResumed": "Charging", "ChargingPausedEV": "SuspendedEV", "ChargingPausedEVSE": "SuspendedEVSE",
    "StoppingCharging": "Finishing", "ChargingFinished": "Finishing", "TransactionFinished": "Finishing",
    "PluginTimeout": "Finishing", "SessionFinished": None,
}  # fmt: skip
AUTH_STATUSES = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}
NEW_SESSION_STATUSES = {"Available", "Reserved"}
CACHE = "cache"


@dataclass
class Transaction:
    tx_key: str
    id_tag: str
    start_time: float
    meter_start: int
    stop_samples: list[dict[str, Any]] = field(default_factory=list)
    sampler: asyncio.Task[None] | None = None


@dataclass
class Connector:
    id: int
    session_status: str | None = None  # Preparing/Charging/... while a session runs
    operative: bool = True
    scheduled_operative: bool | None = None
    errors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reservation_id: int | None = None
    transaction: Transaction | None = None
    reading: dict[str, Any] | None = None
    sent_status: tuple[str, str] | None = None


class Core:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        self.config = cp.config
        self.store = cp.store
        self.connectors = {c: Connector(c) for c in cp.station.connector_ids()}
        self.station_operative = True
        self._aligned_task: asyncio.Task[None] | None = None
        self._reset_pending = False
        self._recovered = False
        self._status_timers: dict[int, Any] = {}
        self._transaction_ended = asyncio.Event()
        saved = self.store.records("availability")
        for connector_id, data in saved.items():
            if connector_id == 0:
                self.station_operative = data["operative"]
            elif connector_id in self.connectors:
                self.connectors[connector_id].operative = data["operative"]
        for action, handler in {
            "RemoteStartTransaction": self.on_remote_start, "RemoteStopTransaction": self.on_remote_stop,
            "Reset": self.on_reset, "UnlockConnector": self.on_unlock,
            "ChangeAvailability": self.on_change_availability,
            "GetConfiguration": self.on_get_configuration, "ChangeConfiguration": self.on_change_configuration,
            "ClearCache": self.on_clear_cache, "DataTransfer": self.on_data_transfer,
        }.items():
            cp.handle(action, handler)
        self.config.on_change(self._config_changed)

    # -- startup -----------------------------------------------------------------------------------
    async def recover_after_restart(self) -> None:
        """Transactions the store still holds as open ran when the station died: stop them now with
        reason PowerLoss and the last meter value seen. Once per process: a restart of the OCPP service
        (ocpp interface stop/restart) keeps running transactions."""
        if self._recovered:
            return
        self._recovered = True
        for tx in self.store.open_transactions():
            self.cp.log.warning("transaction %s on connector %d was open at power loss; stopping it",
                                tx.tx_key, tx.connector)
            payload: dict[str, Any] = {"meterStop": tx.last_meter_wh, "timestamp": tx.last_meter_time,
                                       "reason": "PowerLoss"}
            end = self._meter_value({"energy_Wh_import": {"total": tx.last_meter_wh}},
                                    self.config.csl("StopTxnSampledData"), "Transaction.End")
            for value in end:
                value["timestamp"] = tx.last_meter_time  # the last reading, not now
            if tx.stop_samples or end:
                payload["transactionData"] = tx.stop_samples + end
            with self.store.atomic():
                self.cp.queue_persistent("StopTransaction", payload, tx.tx_key)
                self.store.close_transaction(tx.tx_key)
        for connector in self.connectors.values():
            await self.cp.station.set_available(connector.id, connector.operative and self.station_operative)
        await self.cp.reservation.restore()
        await self.cp.smart_charging.apply()
        self._restart_aligned()

    def cancel_timers(self) -> None:
        """Stop every periodic job (sampling, clock-aligned values, delayed statuses) for shutdown."""
        if self._aligned_task is not None:
            self._aligned_task.cancel()
        for c in self.connectors.values():
            if c.transaction is not None and c.transaction.sampler is not None:
                c.transaction.sampler.cancel()
        for timer in self._status_timers.values():
            timer.cancel()

    async def after_connect(self) -> None:
        """Tell the CSMS the current status of the station and every connector."""
        for connector_id in [0, *self.connectors]:
            await self.send_status(connector_id, force=True)

    # -- status ------------------------------------------------------------------------------------
    def status_of(self, connector_id: int) -> tuple[str, str, dict[str, Any] | None]:
        """(status, errorCode, error) of a connector (0 = the station)."""
        if connector_id == 0:
            return ("Available" if self.station_operative else "Unavailable"), "NoError", None
        c = self.connectors[connector_id]
        if c.errors:
            error = next(iter(c.errors.values()))
            name = error.get("type", "").rsplit("/", 1)[-1]
            return "Faulted", ERROR_CODES.get(name, "OtherError"), error
        if c.session_status is not None:
            return c.session_status, "NoError", None
        if not (c.operative and self.station_operative):
            return "Unavailable", "NoError", None
        if c.reservation_id is not None:
            return "Reserved", "NoError", None
        return "Available", "NoError", None

    async def send_status(self, connector_id: int, force: bool = False) -> None:
        """StatusNotification if the status changed; with MinimumStatusDuration only once the new
        status has lasted that long (a status that flickers back is never reported)."""
        minimum = self.config.int("MinimumStatusDuration")
        if minimum > 0 and not force and connector_id in self.connectors:
            timer = self._status_timers.pop(connector_id, None)
            if timer is not None:
                timer.cancel()
            self._status_timers[connector_id] = self.cp.clock.call_later(
                minimum, lambda: self._send_status_now(connector_id, False))
            return
        await self._send_status_now(connector_id, force)

    async def _send_status_now(self, connector_id: int, force: bool) -> None:
        self._status_timers.pop(connector_id, None)
        status, code, error = self.status_of(connector_id)
        c = self.connectors.get(connector_id)
        if c is not None and not force and c.sent_status == (status, code):
            return
        payload: dict[str, Any] = {"connectorId": connector_id, "status": status, "errorCode": code,
                                   "timestamp": rfc3339(self.cp.clock.time())}
        if self.cp.online and self.store.queue_length():
            # transaction messages first, so the CSMS sees StopTransaction before the Available after it
            await self.cp.wait_queue_empty(self.cp.settings.response_timeout_s)
        if error is not None:
            payload["info"] = str(error.get("message") or error.get("type", ""))[:50]
            if code == "OtherError":
                payload["vendorErrorCode"] = error.get("type", "").rsplit("/", 1)[-1][:50]
        if await self.cp.call_or_log("StatusNotification", payload) is not None and c is not None:
            c.sent_status = (status, code)

    # -- events from the EVSEs -----------------------------------------------------------------------
    async def on_session_event(self, connector_id: int, event: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        kind = event["event"]
        if kind == "TransactionStarted":
            self._transaction_started(c, event)
        elif kind == "TransactionFinished":
            await self._transaction_finished(c, event)
        elif kind == "ReservationEnd":
            self.cp.reservation.ended(connector_id, event.get("reservation_end", {}).get("reservation_id"))
        if kind in SESSION_STATUS:
            c.session_status = SESSION_STATUS[kind]
            if kind == "SessionFinished" and c.scheduled_operative is not None:
                await self._apply_availability(connector_id, c.scheduled_operative)
        await self.send_status(connector_id)

    async def on_error(self, connector_id: int, error: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        key = (error.get("type", ""), error.get("sub_type", ""))
        if error.get("state", "Active") == "Active":
            c.errors[key] = error
        else:
            c.errors = {k: v for k, v in c.errors.items() if k[0] != key[0] or key[1] not in ("", k[1])}
        await self.send_status(connector_id)

    def on_powermeter(self, connector_id: int, reading: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        c.reading = {**(c.reading or {}), **reading}
        wh = energy_wh(reading)
        if c.transaction is not None and wh is not None:
            self.store.record_meter(c.transaction.tx_key, wh, reading.get("timestamp") or rfc3339(self.cp.clock.time()))

    def on_limits(self, connector_id: int, limits: dict[str, Any]) -> None:
        c = self.connectors[connector_id]
        c.reading = {**(c.reading or {}), "offered_current_A": limits.get("max_current")}

    # -- transactions --------------------------------------------------------------------------------
    def _transaction_started(self, c: Connector, event: dict[str, Any]) -> None:
        if c.transaction is not None:
            self.cp.log.error("TransactionStarted on connector %d while transaction %s runs; ignored",
                              c.id, c.transaction.tx_key)
            return
        details = event.get("transaction_started", {})
        reading = details.get("meter_value") or c.reading
        meter_start = energy_wh(reading) or 0
        id_tag = details.get("id_tag", {}).get("id_token", {}).get("value", "")
        if len(id_tag) > 20:
            self.cp.log.warning("id tag %r is longer than OCPP 1.6 allows; sending its first 20 characters", id_tag)
            id_tag = id_tag[:20]
        timestamp = event.get("timestamp") or rfc3339(self.cp.clock.time())
        tx_key = event["uuid"] or f"tx-{c.id}-{self.cp.clock.time()}"
        payload: dict[str, Any] = {"connectorId": c.id, "idTag": id_tag, "meterStart": meter_start,
                                   "timestamp": timestamp}
        reservation_id = details.get("reservation_id")
        if reservation_id is None:
            reservation_id = self.cp.reservation.used_by(c.id, id_tag)
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        with self.store.atomic():
            self.store.open_transaction(tx_key, c.id, id_tag, meter_start, timestamp)
            self.cp.queue_persistent("StartTransaction", payload, tx_key)
        tx = Transaction(tx_key, id_tag, parse_time(timestamp), meter_start)
        if reading is not None:
            self._add_stop_samples(tx, self._meter_value(reading, self.config.csl("StopTxnSampledData"),
                                                         "Transaction.Begin"))
        c.transaction = tx
        tx.sampler = self.cp.spawn(self._sample_loop(c, tx))
        if reservation_id is not None:
            self.cp.reservation.ended(c.id, reservation_id)
        self.cp.smart_charging.transaction_started(c.id, tx.start_time)
        self.cp.station.publish("ocpp_transaction_event", {"transaction_event": "Started", "evse": {"id": c.id},
                                                           "session_id": tx_key})

    async def _transaction_finished(self, c: Connector, event: dict[str, Any]) -> None:
        tx = c.transaction
        if tx is None:
            self.cp.log.warning("TransactionFinished on connector %d without a transaction", c.id)
            return
        details = event.get("transaction_finished", {})
        reading = details.get("meter_value") or c.reading
        meter_stop = energy_wh(reading)
        if meter_stop is None:
            meter_stop = tx.meter_start
        reason = details.get("reason", "Local")
        payload: dict[str, Any] = {"meterStop": meter_stop, "timestamp": event.get("timestamp") or
                                   rfc3339(self.cp.clock.time()),
                                   "reason": reason if reason in STOP_REASONS else "Other"}
        stop_tag = details.get("id_tag", {}).get("id_token", {}).get("value")
        if stop_tag:
            payload["idTag"] = stop_tag[:20]
        samples = list(tx.stop_samples)
        if reading is not None:
            samples += self._meter_value(reading, self.config.csl("StopTxnSampledData"), "Transaction.End")
        if samples:
            payload["transactionData"] = samples
        if tx.sampler is not None:
            tx.sampler.cancel()
        with self.store.atomic():
            self.cp.queue_persistent("StopTransaction", payload, tx.tx_key)
            self.store.close_transaction(tx.tx_key)
        c.transaction = None
        self._transaction_ended.set()
        self.cp.smart_charging.transaction_ended(c.id)
        self.cp.station.publish("ocpp_transaction_event", {"transaction_event": "Ended", "evse": {"id": c.id},
                                                           "session_id": tx.tx_key})
        self.cp.firmware.transactions_changed()

    def transaction_message_delivered(self, message: QueuedMessage, result: dict[str, Any]) -> None:
        """Called inside the store transaction that removes the message from the queue."""
        id_tag_info = result.get("idTagInfo")
        if message.action == "StartTransaction":
            self.store.set_transaction_id(message.tx_key or "", result["transactionId"])
            self.cp.station.publish("ocpp_transaction_event_response", {
                "session_id": message.tx_key or "", "transaction_id": str(result["transactionId"]),
                "id_tag_status": id_tag_info["status"]})
            self.cache_id_tag(message.payload["idTag"], id_tag_info)
            if id_tag_info["status"] != "Accepted":
                self._start_rejected(message.tx_key or "")
        elif message.action == "StopTransaction":
            self.store.forget_transaction(message.tx_key or "")
            if id_tag_info is not None and "idTag" in message.payload:
                self.cache_id_tag(message.payload["idTag"], id_tag_info)

    def transaction_message_dropped(self, message: QueuedMessage) -> None:
        if message.action == "StartTransaction":
            self.store.set_transaction_id(message.tx_key or "", -1)
        elif message.action == "StopTransaction":
            self.store.forget_transaction(message.tx_key or "")

    def _start_rejected(self, tx_key: str) -> None:
        for c in self.connectors.values():
            if c.transaction is not None and c.transaction.tx_key == tx_key:
                if self.config.bool("StopTransactionOnInvalidId"):
                    self.cp.spawn(self.cp.station.stop_transaction(c.id, "DeAuthorized"))
                else:
                    self.cp.spawn(self.cp.station.pause_charging(c.id))

    # -- meter values -----------------------------------------------------------------------------------
    def _add_stop_samples(self, tx: Transaction, samples: list[dict[str, Any]]) -> None:
        tx.stop_samples += samples
        self.store.add_stop_samples(tx.tx_key, samples)

    def _meter_value(self, reading: dict[str, Any], measurands: list[str], context: str) -> list[dict[str, Any]]:
        values = sampled_values(reading, measurands, context)
        if not values:
            return []
        return [{"timestamp": rfc3339(self.cp.clock.time()), "sampledValue": values}]

    async def _sample_loop(self, c: Connector, tx: Transaction) -> None:
        while True:
            interval = self.config.int("MeterValueSampleInterval")
            if interval <= 0:
                await self.config.wait_change("MeterValueSampleInterval")
                continue
            if not await self.cp.sleep_unless_changed(interval, "MeterValueSampleInterval") or c.reading is None:
                continue
            meter_value = self._meter_value(c.reading, self.config.csl("MeterValuesSampledData"), "Sample.Periodic")
            self._add_stop_samples(tx, self._meter_value(c.reading, self.config.csl("StopTxnSampledData"),
                                                         "Sample.Periodic"))
            if meter_value:
                with self.store.atomic():
                    self.cp.queue_persistent(
                        "MeterValues", {"connectorId": c.id, "meterValue": meter_value}, tx.tx_key)

    def _restart_aligned(self) -> None:
        if self._aligned_task is not None:
            self._aligned_task.cancel()
        self._aligned_task = self.cp.spawn(self._aligned_loop())

    async def _aligned_loop(self) -> None:
        interval = self.config.int("ClockAlignedDataInterval")
        if interval <= 0:
            return
        while True:
            now = self.cp.clock.time()
            await self.cp.clock.sleep(math.floor(now / interval) * interval + interval - now)
            for c in self.connectors.values():
                if c.reading is None:
                    continue
                meter_value = self._meter_value(c.reading, self.config.csl("MeterValuesAlignedData"), "Sample.Clock")
                if c.transaction is not None:
                    self._add_stop_samples(c.transaction, self._meter_value(
                        c.reading, self.config.csl("StopTxnAlignedData"), "Sample.Clock"))
                    if meter_value:
                        with self.store.atomic():
                            self.cp.queue_persistent(
                                "MeterValues", {"connectorId": c.id, "meterValue": meter_value}, c.transaction.tx_key)
                elif meter_value:
                    await self.cp.call_or_log("MeterValues", {"connectorId": c.id, "meterValue": meter_value})

    async def send_meter_values_now(self, connector_id: int) -> None:
        """For TriggerMessage(MeterValues): the current reading, not part of the transaction queue."""
        for c in self.connectors.values():
            if connector_id in (0, c.id) and c.reading is not None:
                meter_value = self._meter_value(c.reading, self.config.csl("MeterValuesSampledData"), "Trigger")
                payload: dict[str, Any] = {"connectorId": c.id, "meterValue": meter_value}
                if c.transaction is not None:
                    tx_id = self.store.transaction_id(c.transaction.tx_key)
                    if tx_id is not None:
                        payload["transactionId"] = tx_id
                if meter_value:
                    await self.cp.call_or_log("MeterValues", payload)

    def _config_changed(self, name: str, value: str) -> None:
        if name == "ClockAlignedDataInterval":
            self._restart_aligned()
        if name == "ConnectionTimeOut":
            self.cp.spawn(self.cp.station.set_connection_timeout(int(value)))

    # -- authorisation ----------------------------------------------------------------------------------
    def cache_id_tag(self, id_tag: str, id_tag_info: dict[str, Any] | None) -> None:
        if id_tag_info is None or not self.config.bool("AuthorizationCacheEnabled"):
            return
        self.store.put_id_tag(CACHE, id_tag, id_tag_info)

    def _locally_valid(self, id_tag: str) -> dict[str, Any] | None:
        """idTagInfo from the local list (first) or the cache if it says Accepted and has not expired."""
        sources = []
        if self.config.bool("LocalAuthListEnabled"):
            sources.append(self.cp.local_auth.info(id_tag))
        if self.config.bool("AuthorizationCacheEnabled"):
            sources.append(self.store.id_tag_info(CACHE, id_tag))
        for info in sources:
            if info is None:
                continue
            expiry = info.get("expiryDate")
            expired = expiry is not None and parse_time(expiry) <= self.cp.clock.time()
            if info.get("status") == "Accepted" and not expired:
                return info
            return {**info, "status": "Expired" if expired else info.get("status", "Invalid")}
        return None

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        """idTagInfo for an id tag, following LocalPreAuthorize / LocalAuthorizeOffline /
        AllowOfflineTxForUnknownId."""
        local = self._locally_valid(id_tag)
        if self.cp.online:
            if local is not None and local["status"] == "Accepted" and self.config.bool("LocalPreAuthorize"):
                return local
            try:
                result = await self.cp.call("Authorize", {"idTag": id_tag[:20]})
            except (NotOnline, CallTimeout):
                pass
            except (OcppCallError, InvalidResponse) as error:
                self.cp.log.warning("Authorize failed: %s", error)
                return {"status": "Invalid"}
            else:
                self.cache_id_tag(id_tag, result["idTagInfo"])
                return result["idTagInfo"]
        if local is not None:
            if self.config.bool("LocalAuthorizeOffline") or local["status"] != "Accepted":
                return local
            return {"status": "Invalid"}
        if self.config.bool("AllowOfflineTxForUnknownId"):
            return {"status": "Accepted"}
        return {"status": "Invalid"}

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        """auth_token_validator.validate_token: an authorization ValidationResult."""
        id_tag = provided_token["id_token"]["value"]
        info = await self.authorize(id_tag)
        result: dict[str, Any] = {"authorization_status": info["status"] if info["status"] in AUTH_STATUSES
                                  else "Invalid"}
        if "expiryDate" in info:
            result["expiry_time"] = info["expiryDate"]
        parent = info.get("parentIdTag")
        if parent:
            result["parent_id_token"] = {"value": parent, "type": "Central"}
        return self.cp.reservation.restrict(result, id_tag, parent)

    # -- CSMS requests ----------------------------------------------------------------------------------
    def _connector_for_transaction(self, transaction_id: int) -> Connector | None:
        for c in self.connectors.values():
            if c.transaction is not None and self.store.transaction_id(c.transaction.tx_key) == transaction_id:
                return c
        return None

    async def on_remote_start(self, payload: dict[str, Any]) -> Reply:
        if not self.cp.accepted:  # not allowed before the BootNotification is Accepted (1.6 §4.2)
            return Reply({"status": "Rejected"})
        connector_id = payload.get("connectorId")
        if connector_id is not None:
            c = self.connectors.get(connector_id)
            if c is None or self.status_of(connector_id)[0] in ("Unavailable", "Faulted") or c.transaction:
                return Reply({"status": "Rejected"})
        elif not any(self.status_of(c)[0] not in ("Unavailable", "Faulted") and not self.connectors[c].transaction
                     for c in self.connectors):
            return Reply({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile is not None and not self.cp.smart_charging.accept_remote_start_profile(connector_id, profile):
            return Reply({"status": "Rejected"})
        prevalidated = not self.config.bool("AuthorizeRemoteTxRequests")
        connectors = [connector_id] if connector_id else None

        async def hand_over() -> None:
            self.cp.station.provide_token(payload["idTag"], connectors, prevalidated)

        return Reply({"status": "Accepted"}, hand_over)

    async def on_remote_stop(self, payload: dict[str, Any]) -> Reply:
        c = self._connector_for_transaction(payload["transactionId"])
        if c is None or not self.cp.accepted:
            return Reply({"status": "Rejected"})
        connector_id = c.id

        async def stop() -> None:
            await self.cp.station.stop_transaction(connector_id, "Remote")

        return Reply({"status": "Accepted"}, stop)

    async def on_reset(self, payload: dict[str, Any]) -> Reply:
        if self._reset_pending:
            return Reply({"status": "Rejected"})
        self._reset_pending = True
        kind = payload["type"]
        return Reply({"status": "Accepted"}, lambda: self._reset(kind))

    async def _reset(self, kind: str) -> None:
        reason = "HardReset" if kind == "Hard" else "SoftReset"
        running = [c for c in self.connectors.values() if c.transaction is not None]
        for c in running:
            await self.cp.station.stop_transaction(c.id, reason)
        deadline = self.cp.clock.monotonic() + self.cp.settings.reset_drain_timeout_s
        while any(c.transaction is not None for c in running) and self.cp.clock.monotonic() < deadline:
            self._transaction_ended.clear()
            try:
                await self.cp.clock.wait_for(self._transaction_ended.wait(), deadline - self.cp.clock.monotonic())
            except TimeoutError:
                self.cp.log.error("transactions did not end before the reset")
        # StopTransaction is in the persistent queue either way; give it a chance to reach the CSMS first.
        await self.cp.wait_queue_empty(max(0.0, deadline - self.cp.clock.monotonic()))
        self.cp.log.warning("%s reset requested by the CSMS", kind)
        try:
            await self.cp.station.reset(kind)
        finally:
            self._reset_pending = False  # still alive: the system did not restart (or failed to)

    async def on_unlock(self, payload: dict[str, Any]) -> Reply:
        c = self.connectors.get(payload["connectorId"])
        if c is None:
            return Reply({"status": "NotSupported"})
        if c.transaction is not None:
            await self.cp.station.stop_transaction(c.id, "UnlockCommand")
        unlocked = await self.cp.station.unlock(c.id)
        return Reply({"status": "Unlocked" if unlocked else "UnlockFailed"})

    async def on_change_availability(self, payload: dict[str, Any]) -> Reply:
        connector_id, operative = payload["connectorId"], payload["type"] == "Operative"
        return Reply(await self.change_availability(connector_id, operative))

    async def change_availability(self, connector_id: int, operative: bool) -> dict[str, str]:
        if connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}
        affected = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        busy = [c for c in affected if c.transaction is not None]
        if busy and not operative:
            for c in busy:
                c.scheduled_operative = False
            idle = [c for c in affected if c.transaction is None]
            for c in idle:
                self.cp.spawn(self._apply_availability(c.id, operative))
            if connector_id == 0:  # the station as a whole is out of service from now on
                self.station_operative = False
                self.store.put_record("availability", 0, {"operative": False})
                self.cp.spawn(self.send_status(0, force=True))
            return {"status": "Scheduled"}
        self.cp.spawn(self._apply_availability(connector_id, operative))
        return {"status": "Accepted"}

    async def _apply_availability(self, connector_id: int, operative: bool) -> None:
        """Connector 0 means the station and every connector (persisted, survives restarts)."""
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        with self.store.atomic():
            if connector_id == 0:
                self.station_operative = operative
                self.store.put_record("availability", 0, {"operative": operative})
            for c in targets:
                c.operative = operative
                c.scheduled_operative = None
                self.store.put_record("availability", c.id, {"operative": operative})
        if connector_id == 0:
            await self.send_status(0, force=True)
        for c in targets:
            if c.transaction is None:
                await self.cp.station.set_available(c.id, c.operative and self.station_operative)
            await self.send_status(c.id)

    async def on_get_configuration(self, payload: dict[str, Any]) -> Reply:
        keys = payload.get("key") or []
        if len(keys) > self.config.int("GetConfigurationMaxKeys"):
            raise OcppCallError("OccurenceConstraintViolation", "more keys than GetConfigurationMaxKeys")
        known, unknown = self.config.readable(keys)
        answer: dict[str, Any] = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return Reply(answer)

    async def on_change_configuration(self, payload: dict[str, Any]) -> Reply:
        return Reply({"status": self.change_configuration(payload["key"], payload["value"])})

    def change_configuration(self, name: str, value: str) -> str:
        key = BY_NAME.get(name)
        if key is None:
            return "NotSupported"
        if key.access is Access.READ_ONLY or not key.validate(value):
            return "Rejected"
        if name == "SecurityProfile":
            return self.cp.security.change_profile(int(value))
        self.config.set(name, value)
        self.cp.log.info("configuration %s changed", name if key.access is Access.WRITE_ONLY else f"{name}={value}")
        return "RebootRequired" if key.reboot_required else "Accepted"

    async def on_clear_cache(self, payload: dict[str, Any]) -> Reply:
        self.store.clear_id_tags(CACHE)
        return Reply({"status": "Accepted"})

    async def on_data_transfer(self, payload: dict[str, Any]) -> Reply:
        answer = await self.cp.station.data_transfer(payload["vendorId"], payload.get("messageId"),
                                                     payload.get("data"))
        result = {"status": answer["status"] if answer["status"] != "Offline" else "Rejected"}
        if answer.get("data") is not None:
            result["data"] = answer["data"]
        return Reply(result)
