"""Functional blocks: how one OCPP feature is built, for every version.

A block is a class constructed with a narrow :class:`BlockContext` (a sender, a configuration view, the
store, the Station, a clock, a log) plus only the other blocks it truly needs, and the repository of its
OCPP version when it keeps rows in that version's own tables (``everpy.ocpp.v16.repository``); it never
sees the whole charge point. Its CSMS->station messages are methods marked ``@handles("Action")``; the charge point
collects them (:func:`handlers_of`), so adding a message that needs no new charger capability is one
method in one file. Blocks that only need to hear of something subscribe to :class:`Signal`\\ s.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from everpy.core.clock import Clock
from everpy.ocpp.rpc import Handler, Reply
from everpy.ocpp.station import Station
from everpy.ocpp.store import OcppStore

T = TypeVar("T")
ConfigT = TypeVar("ConfigT")
_HANDLES = "_ocpp_handles"


class Sender(Protocol):
    """The session's sending face (see :class:`everpy.ocpp.session.Session`)."""

    @property
    def online(self) -> bool: ...

    @property
    def accepted(self) -> bool: ...

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def call_or_log(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None: ...

    def queue(self, action: str, payload: dict[str, Any], tx_key: str | None) -> None: ...

    async def wait_queue_empty(self, timeout: float) -> bool: ...

    def request_reconnect(self) -> None: ...

    def request_boot_notification(self) -> bool: ...


@dataclass
class BlockContext(Generic[ConfigT]):
    sender: Sender
    config: ConfigT
    store: OcppStore
    station: Station
    clock: Clock
    log: logging.Logger
    jobs: Jobs


class Jobs:
    """Background work of the blocks; a crash is logged, never silently lost, and close() ends all."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("OCPP background job failed", exc_info=task.exception())

    async def wait_idle(self) -> None:
        """Until every job spawned so far has finished (tests, and orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


HandlerMethod = TypeVar("HandlerMethod", bound=Callable[..., Awaitable[Reply]])


def handles(action: str) -> Callable[[HandlerMethod], HandlerMethod]:
    """Mark a block method as the handler of a CSMS->station message. It returns a :class:`Reply` (typed, so
    that mypy finds a handler returning a bare payload)."""

    def mark(method: HandlerMethod) -> HandlerMethod:
        setattr(method, _HANDLES, action)
        return method

    return mark


def handlers_of(*blocks: object) -> dict[str, Handler]:
    """Every ``@handles`` method of the blocks; a message handled twice is a wiring bug."""
    found: dict[str, Handler] = {}
    for block in blocks:
        for _, method in inspect.getmembers(block, inspect.ismethod):
            action = getattr(method, _HANDLES, None)
            if action is None:
                continue
            if action in found:
                raise ValueError(f"{action} is handled by two blocks")
            found[action] = method
    return found


class Signal(Generic[T]):
    """One kind of in-process event between blocks; subscribers run in subscription order."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[T], None]] = []

    def subscribe(self, subscriber: Callable[[T], None]) -> None:
        self._subscribers.append(subscriber)

    def emit(self, value: T) -> None:
        for subscriber in self._subscribers:
            subscriber(value)
