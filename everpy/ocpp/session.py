"""The websocket session with the CSMS, shared by every OCPP version.

One :class:`Session` connects (subprotocol, TLS, Basic auth from :mod:`everpy.ocpp.security`),
reconnects with exponential backoff and jitter, gates sending on an accepted BootNotification, sends
heartbeats and drains the persistent message queue in order. What a version says differently comes in
as a :class:`Binding` (its dialect, boot payload, timers) and a :class:`MessagePolicy` (how a queued
message is completed before sending and what its answer does).

Blocks send through the session's :class:`Sender` face: ``call`` (now, only once accepted),
``call_or_log`` (loss acceptable) or ``queue`` (persisted, delivered in order, retried).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from everpy.core.clock import Clock
from everpy.ocpp import transport
from everpy.ocpp.rpc import CallTimeout, Dialect, Fault, Handler, InvalidResponse, OcppCallError, Reply, RpcPeer
from everpy.ocpp.security import ConnectionSecurity
from everpy.ocpp.store import OcppStore, QueuedMessage

# set while a message requested by a TriggerMessage is being sent (allowed before Accepted)
TRIGGERED: contextvars.ContextVar[bool] = contextvars.ContextVar("ocpp_triggered", default=False)
# a session shorter than this did not prove the CSMS works: the backoff keeps growing
HEALTHY_SESSION_S = 60.0
MAX_BOOT_RETRY_S = 86400  # the longest wait between BootNotifications, whatever interval the CSMS names


class NotOnline(Exception):
    """The CSMS cannot be reached now (no connection, or BootNotification not yet Accepted)."""


@dataclass
class SessionSettings:
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    response_timeout_s: float = 30.0
    boot_retry_default_s: float = 60.0
    # the wait before reconnect attempt n+1 after n failures; None: reconnect_min_s doubling up to
    # reconnect_max_s (a version may follow its own configuration, e.g. 2.0.1's RetryBackOff* variables)
    backoff: Callable[[int], float] | None = None


class MessagePolicy(Protocol):
    """A version's rules for its persistently queued messages."""

    def knows(self, action: str) -> bool:
        """False for a message this version can never send (it is quarantined)."""
        ...

    def prepare(self, message: QueuedMessage) -> dict[str, Any]:
        """The payload to send now (e.g. the transaction id the CSMS gave meanwhile)."""
        ...

    def delivered(self, message: QueuedMessage, result: dict[str, Any]) -> None:
        """Called inside the store transaction that removes the message from the queue."""
        ...

    def dropped(self, message: QueuedMessage) -> None: ...

    def attempts(self) -> int:
        """How often a message the CSMS failed to process is tried."""
        ...

    def retry_interval(self) -> float:
        """Seconds before the 2nd attempt; the n-th waits (n-1) times this."""
        ...


class Binding(Protocol):
    """What one OCPP version tells the shared session."""

    # The subprotocols this binding can run, offered in the handshake in this order; the CSMS picks one.
    # Every one is of the binding's own OCPP version line (no switching between major versions at run time).
    dialects: tuple[Dialect, ...]

    def boot_payload(self) -> dict[str, Any]: ...

    def boot_accepted(self, result: dict[str, Any]) -> None: ...

    def heartbeat_interval(self) -> int: ...

    def ping_interval(self) -> int | None: ...

    async def wait_heartbeat_change(self) -> None:
        """Returns when the heartbeat interval was reconfigured."""
        ...

    async def after_connect(self) -> None:
        """Once accepted on a connection: e.g. the statuses of every connector."""
        ...

    async def take_time(self, current_time: str) -> None: ...

    def refuses_before_acceptance(self, boot_status: str, action: str) -> bool:
        """Whether a CSMS request is answered SecurityError before the boot is accepted; ``boot_status`` is
        the CSMS's last answer (Pending, Rejected) or "" while a boot request is out."""
        ...

    def quarantined(self, what: str, reason: str) -> None:
        """Something persisted could not be used and was put aside."""
        ...


class Session:
    policy: MessagePolicy  # set by the version once its blocks exist (they send through this session)

    def __init__(self, binding: Binding, security: ConnectionSecurity, store: OcppStore,
                 settings: SessionSettings, clock: Clock, log: logging.Logger,
                 on_state: Callable[[str], None]) -> None:
        self.binding = binding
        self.security = security
        self.store = store
        self.settings = settings
        self.clock = clock
        self.log = log
        self.handlers: dict[str, Handler] = {}
        self._on_state = on_state
        self.state = "Disconnected"
        self.accepted = False  # BootNotification accepted in this run of the process
        self.boot_status = ""  # the CSMS's answer to the boot request last sent ("" while it is out)
        self.sessions = 0  # websocket sessions opened (for tests and diagnostics)
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

    def add_handlers(self, handlers: Mapping[str, Handler]) -> None:
        for action, handler in handlers.items():
            if action in self.handlers:
                raise ValueError(f"two blocks handle {action}")
            self.handlers[action] = self._gated(action, handler)

    def _gated(self, action: str, handler: Handler) -> Handler:
        """The handler behind the boot gate: before an Accepted boot the version decides what is refused."""
        async def gated(payload: dict[str, Any]) -> Reply:
            if not self.accepted and self.binding.refuses_before_acceptance(self.boot_status, action):
                raise OcppCallError(Fault.SECURITY, f"{action} is not allowed before the boot is accepted "
                                                    f"({self.boot_status or 'no answer yet'})")
            return await handler(payload)
        return gated

    # -- connection ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, reconnect with backoff and jitter, forever (until ``stop``)."""
        failures = 0
        while not self._stopped.is_set():
            self._set_state("Connecting")
            try:
                params = self.security.parameters()
                connection = await transport.connect(
                    params.url, subprotocols=[d.subprotocol for d in self.binding.dialects], headers=params.headers,
                    ssl_context=params.ssl_context, open_timeout=self.settings.response_timeout_s,
                    ping_interval=self.binding.ping_interval())
                dialect = await self._selected_dialect(connection)
            except (OSError, transport.InvalidHandshake, TimeoutError, ValueError) as error:
                # the text, not the exception: a kept log record must not keep a dead session alive
                self.log.warning("cannot connect to the CSMS: %s", str(error))
                self.security.failed(error)
                self._set_state("Disconnected")
                failures += 1
                await self._sleep_or_stop(self.backoff(failures))
                continue
            self.security.succeeded()
            began = self.clock.monotonic()
            try:
                await self._session(connection, dialect)
            finally:
                self._rpc = None
                self._online_event.clear()
                self._set_state("Disconnected")
            # a CSMS that accepts and closes at once (or answers Boot and closes) must not be hammered
            failures = 1 if self.clock.monotonic() - began >= HEALTHY_SESSION_S else failures + 1
            if not self._stopped.is_set():
                await self._sleep_or_stop(self.backoff(failures))

    def backoff(self, failures: int) -> float:
        if self.settings.backoff is not None:
            return self.settings.backoff(failures)
        base = min(self.settings.reconnect_max_s, self.settings.reconnect_min_s * 2 ** min(failures - 1, 30))
        return base * (1.0 + random.random() * 0.5)  # jitter: stations that lost the CSMS together spread out

    async def _sleep_or_stop(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopped.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()

    async def _selected_dialect(self, connection: transport.Connection) -> Dialect:
        """The dialect of the subprotocol the CSMS selected. None selected is its refusal (OCPP-J §3.1.2: it
        answers without Sec-WebSocket-Protocol and closes): we close too, and it counts as a failed attempt."""
        selected = connection.subprotocol
        for dialect in self.binding.dialects:
            if dialect.subprotocol == selected:
                return dialect
        await connection.close()
        offered = ", ".join(d.subprotocol for d in self.binding.dialects)
        raise ValueError(f"the CSMS selected no subprotocol this station offered ({offered}); it got {selected!r}")

    async def _session(self, connection: transport.Connection, dialect: Dialect) -> None:
        self.sessions += 1
        self._set_state("Connected")
        rpc = RpcPeer(connection, dialect, self.handlers, self.log, self.settings.response_timeout_s,
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
                        self.log.warning("connection to the CSMS lost: %s", str(error))
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
        self._stopped.set()

    def halt(self) -> None:
        """Stop from synchronous code (shutdown)."""
        self._stopped.set()

    def resume(self) -> None:
        self._stopped = asyncio.Event()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._on_state(state)

    async def _online(self, rpc: RpcPeer) -> None:
        if not self.accepted:
            await self._boot(rpc)
        self._set_state("Accepted")
        self._online_event.set()
        self._queue_wakeup.set()
        # the queue drains while the statuses are sent (a status waits for the queued transaction
        # messages before it, so the CSMS sees them in the order they happened)
        await asyncio.gather(self._heartbeat_loop(rpc), self._drain_queue(rpc), self.binding.after_connect())

    async def _boot(self, rpc: RpcPeer) -> None:
        while True:
            self._boot_requested.clear()
            self.boot_status = ""
            try:
                result = await self._send(rpc, "BootNotification", self.binding.boot_payload())
            except (OcppCallError, CallTimeout, InvalidResponse) as error:
                self.log.warning("BootNotification failed: %s", error)
                await self.clock.sleep(self.settings.boot_retry_default_s)
                continue
            self.boot_status = result["status"]
            if result["status"] == "Accepted":
                self.binding.boot_accepted(result)
                self.accepted = True
                await self.binding.take_time(result["currentTime"])
                self.log.info("BootNotification accepted, heartbeat every %s s", self.binding.heartbeat_interval())
                return
            self._set_state(result["status"])
            # a CSMS's interval may be any int32: a retry 68 years away would leave the station unregistered
            retry = min(result["interval"], MAX_BOOT_RETRY_S) if result["interval"] > 0 \
                else self.settings.boot_retry_default_s
            self.log.info("BootNotification %s, retrying in %s s", result["status"], retry)
            try:  # a TriggerMessage(BootNotification) cuts the wait short (1.6 §4.2, 2.0.1 B02)
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

    async def _heartbeat_loop(self, rpc: RpcPeer) -> None:
        while True:
            due = self._last_sent + self.binding.heartbeat_interval() - self.clock.monotonic()
            if due > 0:
                try:
                    await self.clock.wait_for(self.binding.wait_heartbeat_change(), due)
                except TimeoutError:
                    pass
                continue
            answer = await self._send(rpc, "Heartbeat", {})
            await self.binding.take_time(answer["currentTime"])

    # -- sending (the blocks' Sender face) -----------------------------------------------------------------
    async def _send(self, rpc: RpcPeer, action: str, payload: dict[str, Any], unique_id: str | None = None
                    ) -> dict[str, Any]:
        self._last_sent = self.clock.monotonic()
        return await rpc.call(action, payload, unique_id=unique_id)

    @property
    def online(self) -> bool:
        return self._rpc is not None and self._online_event.is_set()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a non-queued message now. Raises NotOnline when offline or not yet accepted, and
        OcppCallError / CallTimeout / InvalidResponse as RpcPeer.call does."""
        rpc = self._rpc
        # before Accepted, only what the CSMS asked for with a TriggerMessage may be sent
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

    def queue(self, action: str, payload: dict[str, Any], tx_key: str | None) -> None:
        """Persist a message that must not be lost; it is delivered after everything queued before it.
        Call inside ``store.atomic()`` together with the state change it reports."""
        self.store.enqueue(action, payload, str(uuid.uuid4()), tx_key)
        self._queue_empty.clear()
        self._queue_wakeup.set()

    async def wait_queue_empty(self, timeout: float) -> bool:
        return await self.clock.wait_event(self._queue_empty, timeout)

    async def drain(self, timeout: float) -> bool:
        """Orderly shutdown: while connected and accepted, give the queued messages up to ``timeout`` s
        to be delivered (never waits for a connection). True if the queue is empty; what is left stays
        persisted for the next start."""
        if self.store.queue_length() == 0:
            return True
        if not self.online or timeout <= 0:
            return False
        self.log.info("delivering %d queued message(s) before closing (at most %.1f s)",
                      self.store.queue_length(), timeout)
        return await self.wait_queue_empty(timeout)

    async def _drain_queue(self, rpc: RpcPeer) -> None:
        while True:
            message = self.store.queue_head()
            if message is None:
                self._queue_empty.set()
                self._queue_wakeup.clear()
                await self._queue_wakeup.wait()
                continue
            if not self.policy.knows(message.action):
                self._quarantine(message, f"{message.action} cannot be sent by this OCPP version")
                continue
            try:
                payload = self.policy.prepare(message)
                result = await self._send(rpc, message.action, payload, unique_id=message.unique_id)
            except CallTimeout:
                self.log.warning("%s %s not answered; resending", message.action, message.unique_id)
                continue
            except (OcppCallError, InvalidResponse) as error:
                await self._failed_to_process(message, error)
                continue
            except (ValueError, KeyError, TypeError) as error:  # our own payload does not fit: never sendable
                self._quarantine(message, f"not a valid {message.action}: {error}")
                continue
            with self.store.atomic():
                self.store.dequeue(message.seq)
                self.policy.delivered(message, result)

    def _quarantine(self, message: QueuedMessage, reason: str) -> None:
        self.log.error("queued message %s %s quarantined: %s", message.action, message.unique_id, reason)
        self.store.quarantine_queued(message.seq, reason)
        with self.store.atomic():
            self.policy.dropped(message)
        self.binding.quarantined(f"queued {message.action}", reason)

    async def _failed_to_process(self, message: QueuedMessage, error: Exception) -> None:
        with self.store.atomic():
            self.store.count_attempt(message.seq)
        attempts = message.attempts + 1
        if attempts >= self.policy.attempts():
            self.log.error("dropping %s after %d failed attempts: %s", message.action, attempts, error)
            with self.store.atomic():
                self.store.dequeue(message.seq)
                self.policy.dropped(message)
            return
        wait = self.policy.retry_interval() * attempts
        self.log.warning("%s failed (%s); attempt %d in %d s", message.action, error, attempts + 1, wait)
        await self.clock.sleep(wait)
