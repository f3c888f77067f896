"""The OCPP 1.6J station: connection loop, boot, heartbeat and the persistent transaction queue.

Feature profiles (``core``, ``local_auth``, ...) register their CSMS handlers here and send through
``call`` (normal messages, only once the CSMS accepted us) or ``queue_persistent`` (Start/Stop
Transaction and transaction MeterValues: persisted first, delivered in order, retried on CALLERROR).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from everpy.core.clock import Clock
from everpy.ocpp import transport
from everpy.ocpp.rpc import CallTimeout, Handler, InvalidResponse, OcppCallError, RpcPeer, Schemas
from everpy.ocpp.station import Station
from everpy.ocpp.store import OcppStore, QueuedMessage
from everpy.ocpp.v16.configuration import Configuration

SCHEMAS = Schemas("v16")
# set while a message requested by TriggerMessage/ExtendedTriggerMessage is being sent
TRIGGERED: contextvars.ContextVar[bool] = contextvars.ContextVar("ocpp_triggered", default=False)
SUBPROTOCOL = "ocpp1.6"


class NotOnline(Exception):
    """The CSMS cannot be reached now (no connection, or BootNotification not yet Accepted)."""


@dataclass
class Settings:
    """Station settings from the module config (not OCPP configuration keys)."""

    charge_point_id: str
    central_system_uri: str  # ws(s)://host:port/path; the charge point id is appended
    vendor: str = "everpy"
    model: str = "everpy-sil"
    serial_number: str = ""
    firmware_version: str = ""
    initial_configuration: dict[str, str] = field(default_factory=dict)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    response_timeout_s: float = 30.0
    boot_retry_default_s: float = 60.0
    reset_drain_timeout_s: float = 30.0
    csms_ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    basic_auth_raw_key: bool = False  # OCPP-J 6.2.2 example encodes the key bytes; most CSMS use the string
    certificate_store_dir: str = "run/ocpp-certificates"
    time_from_csms: bool = False  # set the system clock from BootNotification/Heartbeat answers


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ChargePoint16:
    def __init__(self, station: Station, store: OcppStore, settings: Settings, clock: Clock,
                 log: logging.Logger) -> None:
        from everpy.ocpp.v16 import core, firmware, local_auth, reservation, security, smart_charging, trigger

        self.station = station
        self.store = store
        self.settings = settings
        self.clock = clock
        self.log = log
        self.config = Configuration(store, settings.initial_configuration, log)
        self.config.set_read_only("NumberOfConnectors", str(len(station.connector_ids())))
        self.handlers: dict[str, Handler] = {}
        self._jobs: set[asyncio.Task[Any]] = set()
        self.state = "Disconnected"
        self.accepted = False  # BootNotification accepted in this run of the process
        self._rpc: RpcPeer | None = None
        self._queue_wakeup = asyncio.Event()
        self._queue_empty = asyncio.Event()
        if store.queue_length() == 0:
            self._queue_empty.set()
        self._online_event = asyncio.Event()
        self._boot_requested = asyncio.Event()  # TriggerMessage(BootNotification) while Pending
        self._reconnect_request = asyncio.Event()
        self._stopped = asyncio.Event()
        self._last_sent = clock.monotonic()
        self.security = security.Security(self)
        self.core = core.Core(self)
        self.local_auth = local_auth.LocalAuth(self)
        self.reservation = reservation.Reservations(self)
        self.smart_charging = smart_charging.SmartCharging(self)
        self.firmware = firmware.Firmware(self)
        self.trigger = trigger.Trigger(self)

    def handle(self, action: str, handler: Handler) -> None:
        self.handlers[action] = handler

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background job of the station logic; a crash is logged, never silently lost."""
        task = asyncio.ensure_future(coro)
        self._jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("OCPP background job failed", exc_info=task.exception())

    # -- connection ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, reconnect with backoff and jitter, forever (until ``stop``)."""
        await self.core.recover_after_restart()
        failures = 0
        while not self._stopped.is_set():
            self._set_state("Connecting")
            try:
                params = self.security.connection_parameters()
                connection = await transport.connect(
                    params.url, subprotocols=[SUBPROTOCOL], headers=params.headers,
                    ssl_context=params.ssl_context, open_timeout=self.settings.response_timeout_s,
                    ping_interval=self.config.int("WebSocketPingInterval") or None,
                )
            except (OSError, transport.InvalidHandshake, TimeoutError, ValueError) as error:
                self.log.warning("cannot connect to %s: %s", self.settings.central_system_uri, error)
                self.security.connection_failed(error)
                self._set_state("Disconnected")
                failures += 1
                await self._sleep_or_stop(self._backoff(failures))
                continue
            failures = 0
            self.security.connection_succeeded()
            try:
                await self._session(connection)
            finally:
                self._rpc = None
                self._online_event.clear()
                self._set_state("Disconnected")
            if not self._stopped.is_set():
                await self._sleep_or_stop(self._backoff(1))

    def _backoff(self, failures: int) -> float:
        base = min(self.settings.reconnect_max_s, self.settings.reconnect_min_s * 2 ** (failures - 1))
        return base * (1.0 + random.random() * 0.5)  # jitter: stations that lost the CSMS together spread out

    async def _sleep_or_stop(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopped.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()

    async def _session(self, connection: transport.Connection) -> None:
        self._set_state("Connected")
        rpc = RpcPeer(connection, SCHEMAS, self.handlers, self.log, self.settings.response_timeout_s,
                      on_frame=self._log_frame)
        self._rpc = rpc
        self._reconnect_request.clear()
        tasks = [asyncio.ensure_future(rpc.run()), asyncio.ensure_future(self._online(rpc)),
                 asyncio.ensure_future(self._reconnect_request.wait()), asyncio.ensure_future(self._stopped.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    if isinstance(error, transport.ConnectionClosed | ConnectionError):
                        self.log.warning("connection to the CSMS lost: %s", error)
                    else:
                        self.log.error("OCPP session failed", exc_info=error)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await connection.close()

    def _log_frame(self, direction: str, raw: str) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s %s", "->" if direction == "out" else "<-", raw)

    def request_reconnect(self) -> None:
        self._reconnect_request.set()

    async def stop(self) -> None:
        """Close the connection and stop reconnecting; queued messages stay persisted."""
        self._stopped.set()

    def resume(self) -> None:
        """Allow ``run`` again after ``stop`` (the ocpp interface's restart)."""
        self._stopped = asyncio.Event()

    def close(self) -> None:
        """For shutdown: also stop the periodic jobs, so nothing touches the store afterwards."""
        self._stopped.set()
        for job in list(self._jobs):
            job.cancel()
        self.core.cancel_timers()
        self.smart_charging.cancel_timers()

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.station.publish("connection_status", {
            "state": state, "connected": state not in ("Disconnected", "Connecting"),
            "security_profile": self.config.int("SecurityProfile"),
            "csms_url": self.settings.central_system_uri,
            "queued_transaction_messages": self.store.queue_length(),
        })

    async def _online(self, rpc: RpcPeer) -> None:
        if not self.accepted:
            await self._boot(rpc)
        self._set_state("Accepted")
        self._online_event.set()
        self._queue_wakeup.set()
        # the queue drains while the statuses are sent (a status waits for the queued transaction
        # messages before it, so the CSMS sees them in the order they happened)
        await asyncio.gather(self._heartbeat_loop(rpc), self._drain_queue(rpc), self.core.after_connect())

    async def _boot(self, rpc: RpcPeer) -> None:
        payload = {"chargePointVendor": self.settings.vendor, "chargePointModel": self.settings.model}
        if self.settings.serial_number:
            payload["chargePointSerialNumber"] = self.settings.serial_number
        if self.settings.firmware_version:
            payload["firmwareVersion"] = self.settings.firmware_version
        while True:
            self._boot_requested.clear()
            try:
                result = await self._send(rpc, "BootNotification", payload)
            except (OcppCallError, CallTimeout, InvalidResponse) as error:
                self.log.warning("BootNotification failed: %s", error)
                await self.clock.sleep(self.settings.boot_retry_default_s)
                continue
            self.station.publish("boot_notification_response", {
                "status": result["status"], "current_time": result["currentTime"], "interval": result["interval"]})
            if result["status"] == "Accepted":
                self.accepted = True
                await self.take_time(result["currentTime"])
                if result["interval"] > 0:
                    self.config.set("HeartbeatInterval", str(result["interval"]))
                self.log.info("BootNotification accepted, heartbeat every %s s", self.config.int("HeartbeatInterval"))
                return
            self._set_state(result["status"])
            retry = result["interval"] if result["interval"] > 0 else self.settings.boot_retry_default_s
            self.log.info("BootNotification %s, retrying in %s s", result["status"], retry)
            try:  # a TriggerMessage(BootNotification) cuts the wait short (1.6 §4.2)
                await self.clock.wait_for(self._boot_requested.wait(), retry)
            except TimeoutError:
                pass

    def request_boot_notification(self) -> bool:
        """TriggerMessage(BootNotification) before Accepted: the boot loop sends it now (and acts on
        its answer); False once accepted, when the trigger sends it as a normal message."""
        if self.accepted:
            return False
        self._boot_requested.set()
        return True

    async def sleep_unless_changed(self, seconds: float, key: str) -> bool:
        """Sleep on the station clock; True if the time passed, False if configuration `key` changed
        first (a timer reconfigured from a day to a minute must not sleep out the day)."""
        try:
            await self.clock.wait_for(self.config.wait_change(key), seconds)
        except TimeoutError:
            return True
        return False

    async def _heartbeat_loop(self, rpc: RpcPeer) -> None:
        while True:
            interval = self.config.int("HeartbeatInterval")
            due = self._last_sent + interval - self.clock.monotonic()
            if due > 0:
                await self.sleep_unless_changed(due, "HeartbeatInterval")
                continue
            answer = await self._send(rpc, "Heartbeat", {})
            await self.take_time(answer["currentTime"])

    async def take_time(self, current_time: str) -> None:
        """With time_from_csms: set the system clock when it is more than a second off the CSMS's time."""
        if self.settings.time_from_csms and abs(parse_time(current_time) - self.clock.time()) > 1.0:
            if await self.station.set_system_time(current_time):
                self.log.warning("system clock set to the CSMS's time %s", current_time)

    # -- sending --------------------------------------------------------------------------------------
    async def _send(self, rpc: RpcPeer, action: str, payload: dict[str, Any], unique_id: str | None = None
                    ) -> dict[str, Any]:
        self._last_sent = self.clock.monotonic()
        return await rpc.call(action, payload, unique_id=unique_id)

    @property
    def online(self) -> bool:
        return self._rpc is not None and self._online_event.is_set()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a non-transaction message now. Raises NotOnline when offline or not yet accepted, and
        OcppCallError / CallTimeout / InvalidResponse as RpcPeer.call does."""
        rpc = self._rpc
        # before Accepted, only what the CSMS asked for with a TriggerMessage may be sent (1.6 §4.2)
        if rpc is None or not (self._online_event.is_set() or TRIGGERED.get()):
            raise NotOnline(action)
        try:
            return await self._send(rpc, action, payload)
        except (transport.ConnectionClosed, ConnectionError) as error:
            raise NotOnline(action) from error

    async def call_or_log(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a message whose loss is acceptable (its state is resent after reconnect)."""
        try:
            return await self.call(action, payload)
        except NotOnline:
            self.log.info("offline: %s not sent", action)
        except (OcppCallError, CallTimeout, InvalidResponse) as error:
            self.log.warning("%s failed: %s", action, error)
        return None

    def queue_persistent(self, action: str, payload: dict[str, Any], tx_key: str | None) -> None:
        """Persist a message that must not be lost; it is delivered after everything queued before it.
        Transaction messages (tx_key set) get their transactionId when sent; other messages that must
        survive (critical security events) pass tx_key None. Call inside ``store.atomic()`` together with
        the state change it reports."""
        self.store.enqueue(action, payload, str(uuid.uuid4()), tx_key)
        self._queue_empty.clear()
        self._queue_wakeup.set()

    async def wait_queue_empty(self, timeout: float) -> bool:
        try:
            await self.clock.wait_for(self._queue_empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _drain_queue(self, rpc: RpcPeer) -> None:
        while True:
            message = self.store.queue_head()
            if message is None:
                self._queue_empty.set()
                self._queue_wakeup.clear()
                await self._queue_wakeup.wait()
                continue
            payload = dict(message.payload)
            if message.tx_key is not None and message.action != "StartTransaction":
                transaction_id = self.store.transaction_id(message.tx_key or "")
                # errata 3.18: the CSMS never confirmed the start, so the transaction id is -1
                payload["transactionId"] = -1 if transaction_id is None else transaction_id
            try:
                result = await self._send(rpc, message.action, payload, unique_id=message.unique_id)
            except CallTimeout:
                self.log.warning("%s %s not answered; resending", message.action, message.unique_id)
                continue
            except (OcppCallError, InvalidResponse) as error:
                await self._failed_to_process(message, error)
                continue
            with self.store.atomic():
                self.store.dequeue(message.seq)
                self.core.transaction_message_delivered(message, result)

    async def _failed_to_process(self, message: QueuedMessage, error: Exception) -> None:
        with self.store.atomic():
            self.store.count_attempt(message.seq)
        attempts = message.attempts + 1
        if attempts >= self.config.int("TransactionMessageAttempts"):
            self.log.error("dropping %s after %d failed attempts: %s", message.action, attempts, error)
            with self.store.atomic():
                self.store.dequeue(message.seq)
                self.core.transaction_message_dropped(message)
            return
        wait = self.config.int("TransactionMessageRetryInterval") * attempts
        self.log.warning("%s failed (%s); attempt %d in %d s", message.action, error, attempts + 1, wait)
        await self.clock.sleep(wait)
