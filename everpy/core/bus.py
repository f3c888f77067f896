"""The MQTT bus: one paho client per process, driven by the asyncio event loop.

paho's socket is registered with the event loop (add_reader/add_writer), so there is no network
thread and no thread hop per message: a received message is dispatched inside the loop, and a
publish is written as soon as the loop gets to the socket. Call the bus from the event loop only.
Messages on one topic are delivered to a subscriber in order; an async subscriber callback is
awaited before that subscriber sees the next message of the same subscription.

This file knows MQTT and topics; the EVerest message envelope is in :mod:`everpy.core.wire`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import paho.mqtt.client as mqtt

log = logging.getLogger("everpy.bus")

MessageCallback = Callable[[str, bytes], "Awaitable[None] | None"]


class BusError(Exception):
    """The broker could not be reached or the connection broke. Retry later."""


@dataclass(eq=False)
class Subscription:
    topic_filter: str
    callback: MessageCallback
    _backlog: deque[tuple[str, bytes]] = field(default_factory=deque)
    _draining: bool = False

    def deliver(self, topic: str, payload: bytes) -> None:
        if self._draining:
            self._backlog.append((topic, payload))
            return
        result = self.callback(topic, payload)
        if asyncio.iscoroutine(result):
            self._draining = True
            asyncio.ensure_future(self._drain(result))

    async def _drain(self, first: Awaitable[None]) -> None:
        pending: Awaitable[None] | None = first
        while pending is not None:
            try:
                await pending
            except Exception:
                log.exception("subscriber of %s failed on a message", self.topic_filter)
            pending = None
            while self._backlog and pending is None:
                topic, payload = self._backlog.popleft()
                result = self.callback(topic, payload)
                if asyncio.iscoroutine(result):
                    pending = result
        self._draining = False


@dataclass
class BrokerAddress:
    host: str = "localhost"
    port: int = 1883
    socket_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a repr

    def as_user(self, username: str, password: str) -> BrokerAddress:
        """The same broker, logged in as another user."""
        return replace(self, username=username, password=password)

    def __str__(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"{self.host}:{self.port}"


class Bus:
    """A connection to the broker shared by every module of one process."""

    _ids = itertools.count()

    def __init__(self, address: BrokerAddress, client_id: str, qos: int = 0) -> None:
        self.address = address
        self.qos = qos
        self.client_id = f"{client_id}-{next(self._ids)}"
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcard: list[Subscription] = []
        self._wildcard_cache: dict[str, tuple[Subscription, ...]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.on_connection_lost: Callable[[], None] | None = None
        transport: Literal["unix", "tcp"] = "unix" if address.socket_path else "tcp"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, transport=transport
        )
        if address.username is not None:
            self._client.username_pw_set(address.username, address.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_register_write
        self._client.on_socket_unregister_write = self._on_socket_unregister_write
        self._sock: Any = None
        self._in_callback = False
        self._misc_task: asyncio.Task[None] | None = None
        self._refusal: str | None = None

    async def connect(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        host = self.address.socket_path or self.address.host
        try:
            # paho connects synchronously; on_socket_open then hooks the socket into the event loop.
            self._client.connect(host, self.address.port, keepalive=20)
        except OSError as exc:
            raise BusError(f"cannot reach the MQTT broker at {self.address}: {exc}") from exc
        self._misc_task = asyncio.ensure_future(self._misc_loop())
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            await self.close()
            raise BusError(f"MQTT broker at {self.address} did not accept the connection") from None
        if self._refusal is not None:
            refusal, user = self._refusal, self.address.username or "anonymous"
            self._connected.clear()
            await self.close()
            raise BusError(f"MQTT broker at {self.address} refused the login as {user}: {refusal}")

    async def close(self) -> None:
        self._closing = True
        if self._loop is None:
            return
        if self._client.is_connected():
            self._client.disconnect()
        if self._misc_task is not None:
            self._misc_task.cancel()
            await asyncio.gather(self._misc_task, return_exceptions=True)
        if self._sock is not None:
            self._unhook(self._sock)

    async def _misc_loop(self) -> None:
        """paho's periodic duties (keep-alive pings, timeouts) and reconnecting after a loss."""
        backoff = 0.5
        while not self._closing:
            await asyncio.sleep(1.0 if self._client.is_connected() else backoff)
            if self._closing:
                return
            if self._client.is_connected() or self._sock is not None:
                self._client.loop_misc()
                backoff = 0.5
                continue
            try:
                self._client.reconnect()
            except OSError as exc:
                log.warning("MQTT broker at %s unreachable (%s); retrying in %.1f s", self.address, exc, backoff)
                backoff = min(backoff * 2, 10.0)

    # -- paho socket callbacks: run paho on the event loop, no network thread -------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        if not self.address.socket_path:
            # Small MQTT packets must not wait for Nagle's algorithm (40 ms stalls against delayed ACKs).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, client.loop_read)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._unhook(sock)

    def _unhook(self, sock: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._sock = None

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, client.loop_write)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    # -- publishing -------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=self.qos, retain=retain)
        if self._sock is not None:
            # Write now instead of on the next loop iteration; whatever the socket does not take
            # stays queued and goes out through the registered writer.
            self._client.loop_write()

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Subscription:
        sub = Subscription(topic_filter, callback)
        first = not self._has_filter(topic_filter)
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.append(sub)
            self._wildcard_cache.clear()
        else:
            self._exact.setdefault(topic_filter, []).append(sub)
        if first:
            # The broker handles one client's packets in order, so a publish sent after this
            # subscribe is matched against it: no need to wait for SUBACK.
            self._client.subscribe(topic_filter, qos=self.qos)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._wildcard:
            self._wildcard.remove(sub)
            self._wildcard_cache.clear()
        else:
            subs = self._exact.get(sub.topic_filter, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._exact.pop(sub.topic_filter, None)
        if not self._has_filter(sub.topic_filter):
            self._client.unsubscribe(sub.topic_filter)

    def _has_filter(self, topic_filter: str) -> bool:
        return topic_filter in self._exact or any(s.topic_filter == topic_filter for s in self._wildcard)

    # -- paho callbacks (on the event loop) ----------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            self._refusal = str(reason)
            self._connected.set()  # connect() says why instead of waiting for its timeout
            return
        self._refusal = None
        # Re-subscribe after a reconnect: the broker forgot our clean session.
        for topic_filter in list(self._exact) + [s.topic_filter for s in self._wildcard]:
            client.subscribe(topic_filter, qos=self.qos)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._closing or self._loop is None:
            return
        log.warning("lost the MQTT broker connection (%s); reconnecting", reason)
        self._connected.clear()
        if self.on_connection_lost is not None:
            self._loop.call_soon(self.on_connection_lost)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._in_callback = True  # paho holds its callback lock: publishes go through the writer
        try:
            # paho types the payload bytes | bytearray; received ones are bytes, for which bytes() is a no-op
            self._dispatch(message.topic, bytes(message.payload))
        except Exception:  # a subscriber's bug must not break paho's read loop for everyone else
            log.exception("subscriber failed on %s", message.topic)
        finally:
            self._in_callback = False

    def _dispatch(self, topic: str, payload: bytes) -> None:
        for sub in tuple(self._exact.get(topic, ())):
            sub.deliver(topic, payload)
        if self._wildcard:
            matches = self._wildcard_cache.get(topic)
            if matches is None:
                matches = tuple(s for s in self._wildcard if topic_matches(s.topic_filter, topic))
                if len(self._wildcard_cache) > 4096:  # topics are few in practice; bound it anyway
                    self._wildcard_cache.clear()
                self._wildcard_cache[topic] = matches
            for sub in matches:
                sub.deliver(topic, payload)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    filter_parts = topic_filter.split("/")
    topic_parts = topic.split("/")
    for i, part in enumerate(filter_parts):
        if part == "#":
            return True
        if i >= len(topic_parts) or (part != "+" and part != topic_parts[i]):
            return False
    return len(filter_parts) == len(topic_parts)
