"""The MQTT bus: one paho client per process, bridged into asyncio.

paho runs its network loop in its own thread; every received message is handed to the event loop
with ``call_soon_threadsafe`` and dispatched there, so module code never runs on paho's thread.
Messages on one topic are delivered to a subscriber in order; an async subscriber callback is
awaited before that subscriber sees the next message of the same subscription.

This file knows MQTT and topics; the EVerest message envelope is in :mod:`everpy.core.wire`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.on_connection_lost: Callable[[], None] | None = None
        transport = "unix" if address.socket_path else "tcp"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, transport=transport
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    async def connect(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        host = self.address.socket_path or self.address.host
        try:
            await asyncio.to_thread(self._client.connect, host, self.address.port, 20)
        except OSError as exc:
            raise BusError(f"cannot reach the MQTT broker at {self.address}: {exc}") from exc
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            self._client.loop_stop()
            raise BusError(f"MQTT broker at {self.address} did not accept the connection") from None

    async def close(self) -> None:
        self._closing = True
        if self._loop is None:
            return
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # -- publishing -------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=self.qos, retain=retain)

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, callback: MessageCallback) -> Subscription:
        sub = Subscription(topic_filter, callback)
        first = not self._has_filter(topic_filter)
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.append(sub)
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

    # -- paho callbacks (paho's thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        # Re-subscribe after a reconnect: the broker forgot our clean session.
        for topic_filter in list(self._exact) + [s.topic_filter for s in self._wildcard]:
            client.subscribe(topic_filter, qos=self.qos)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._closing or self._loop is None:
            return
        log.warning("lost the MQTT broker connection (%s); paho reconnects", reason)
        self._loop.call_soon_threadsafe(self._connected.clear)
        if self.on_connection_lost is not None:
            self._loop.call_soon_threadsafe(self.on_connection_lost)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._dispatch, message.topic, message.payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        for sub in tuple(self._exact.get(topic, ())):
            sub.deliver(topic, payload)
        for sub in tuple(self._wildcard):
            if mqtt.topic_matches_sub(sub.topic_filter, topic):
                sub.deliver(topic, payload)
