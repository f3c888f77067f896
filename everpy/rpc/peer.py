"""A two-way msgpack-RPC peer over one asyncio stream.

Both ends of a connection are the same class: each can call, notify, and answer the other's calls, so a
server pushes notifications to its clients on the same socket. Requests are served concurrently (answers
go out in completion order, matched by id); notifications are handled strictly in arrival order.

What the peer does with bad input (it never raises out of the read loop, never kills the process):

| input                                       | reaction                                               |
|---------------------------------------------|--------------------------------------------------------|
| bytes that are not msgpack, frame > limit   | log, close the connection                              |
| msgpack object that is not an RPC message   | log, close the connection (the peer speaks something else) |
| request with a valid id but bad method/params | ``InvalidRequest`` error response, connection stays  |
| unknown method                              | ``NoSuchMethod`` error response                        |
| wrong number of params                      | ``InvalidParams`` error response                       |
| handler raises                              | ``HandlerError`` error response (traceback logged here) |
| response to an unknown / timed-out id       | dropped (debug log)                                    |
| bad notification params or failing notification handler | logged, dropped                           |
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from everpy.rpc import protocol
from everpy.rpc.errors import ConnectionLost, RpcError, RpcTimeout
from everpy.rpc.protocol import BadMessage, Notification, Request, Response
from everpy.rpc.registry import MethodRegistry

DEFAULT_CALL_TIMEOUT = 30.0
READ_CHUNK = 64 * 1024

_log = logging.getLogger("everpy.rpc")


class RpcPeer:
    """One msgpack-RPC connection. Create with ``connect()`` / ``RpcServer``, or directly on a stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        registry: MethodRegistry | None = None,
        *,
        name: str = "",
        max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        log: logging.Logger | None = None,
        initial_data: bytes = b"",
    ) -> None:
        self.registry = registry if registry is not None else MethodRegistry()
        self.call_timeout = call_timeout
        self.max_frame_size = max_frame_size
        self._reader = reader
        self._writer = writer
        self._read_chunk = min(READ_CHUNK, max_frame_size + 1)
        self._unpacker = protocol.new_unpacker(max_frame_size, self._read_chunk)
        self._initial_data = initial_data  # bytes read by the handshake that belong to the first messages
        self._total_fed = 0  # bytes fed to the unpacker
        self._frame_start = 0  # stream offset where the frame in progress began
        self._packer = protocol.new_packer()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._notifications: asyncio.Queue[Notification | None] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self._notification_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._close_callbacks: list[Callable[[RpcPeer], None]] = []
        self.close_reason = ""
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        self.remote_address: tuple[str, int] | None = tuple(peer[:2]) if peer else None
        self.local_address: tuple[str, int] | None = tuple(sock[:2]) if sock else None
        self.name = name or (f"{self.remote_address[0]}:{self.remote_address[1]}" if self.remote_address else "peer")
        self.log = log or _log

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Starts reading. Set ``registry`` (and close callbacks) before, so no early call is missed."""
        if self._reader_task is None:
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())
            self._notification_task = asyncio.get_running_loop().create_task(self._notification_loop())

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    @property
    def output_buffer_size(self) -> int:
        """Bytes written but not yet sent (a peer that stops reading makes this grow)."""
        return 0 if self.is_closed else self._writer.transport.get_write_buffer_size()

    def on_close(self, callback: Callable[[RpcPeer], None]) -> None:
        """``callback(peer)`` runs once when the connection closes (at once if it already has)."""
        if self.is_closed:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def close(self, reason: str = "closed locally", *, cancel_handlers: bool = False) -> None:
        """Closes the connection; pending calls fail with ``ConnectionLost(reason)``.

        Running request handlers finish (their answers are dropped) unless ``cancel_handlers`` — the
        work they do on the local board should not be cut in half because the link dropped.
        """
        if self.is_closed:
            return
        self.close_reason = reason
        self._closed.set()
        self._writer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(f"{self.name}: {reason}"))
        self._pending.clear()
        current = asyncio.current_task()
        if self._reader_task is not None and self._reader_task is not current:
            self._reader_task.cancel()
        self._notifications.put_nowait(None)
        if cancel_handlers:
            for task in self._handler_tasks:
                task.cancel()
        for callback in self._close_callbacks:
            callback(self)
        self._close_callbacks.clear()

    async def aclose(self, reason: str = "closed locally") -> None:
        """Closes, cancels running handlers and waits until the socket and tasks are gone."""
        self.close(reason, cancel_handlers=True)
        tasks = [t for t in (self._reader_task, self._notification_task, *self._handler_tasks) if t]
        current = asyncio.current_task()
        tasks = [t for t in tasks if t is not current]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    # ------------------------------------------------------------------ outgoing
    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Calls ``method(*params)`` on the peer and returns its result.

        Raises ``RpcError`` (peer answered with an error), ``RpcTimeout`` (no answer within ``timeout``,
        default ``call_timeout``; the connection stays), ``ConnectionLost`` (closed before the answer),
        ``TypeError`` (params cannot be packed; nothing was sent).
        """
        if self.is_closed:
            raise ConnectionLost(f"{self.name}: {self.close_reason}")
        msgid = next(self._ids) & protocol.MAX_MSGID
        frame = self._packer.pack(protocol.request(msgid, method, params))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[msgid] = future
        limit = self.call_timeout if timeout is None else timeout
        timer = loop.call_later(limit, self._expire, msgid, method, limit)
        try:
            self._writer.write(frame)
            await self._drain()
            return await future
        finally:
            timer.cancel()
            self._pending.pop(msgid, None)

    def notify(self, method: str, *params: Any) -> None:
        """Sends a notification (no answer).

        Raises ``ConnectionLost`` if closed, ``TypeError`` if a param cannot be packed.
        """
        if self.is_closed:
            raise ConnectionLost(f"{self.name}: {self.close_reason}")
        self._writer.write(self._packer.pack(protocol.notification(method, params)))

    async def drain(self) -> None:
        """Waits until the send buffer is below the high-water mark (back-pressure for notifiers)."""
        await self._drain()

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self.close(f"write failed: {exc}")
            raise ConnectionLost(f"{self.name}: write failed: {exc}") from exc

    def _expire(self, msgid: int, method: str, limit: float) -> None:
        future = self._pending.pop(msgid, None)
        if future is not None and not future.done():
            future.set_exception(RpcTimeout(f"{self.name}: {method} got no answer within {limit:g} s"))

    def _send(self, message: list[Any]) -> None:
        if not self.is_closed:
            self._writer.write(self._packer.pack(message))

    # ------------------------------------------------------------------ incoming
    async def _read_loop(self) -> None:
        reason = "connection closed by peer"
        try:
            while True:
                data = self._initial_data or await self._reader.read(self._read_chunk)
                self._initial_data = b""
                if not data:
                    break
                violation = self._feed(data)
                if violation:
                    reason = violation
                    self.log.warning("rpc %s: %s; closing the connection", self.name, violation)
                    break
                # answers written while handling this chunk: a peer that does not read them is not
                # read from either (back-pressure instead of an ever-growing send buffer)
                await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        self.close(reason)

    def _feed(self, data: bytes) -> str:
        """Unpacks and dispatches what ``data`` completes. Returns a reason to close, or ''."""
        unpacker = self._unpacker
        unpacker.feed(data)
        self._total_fed += len(data)
        try:
            for obj in unpacker:
                # tell() is only meaningful after a complete object (mid-frame it may have moved on)
                end = unpacker.tell()
                if end - self._frame_start > self.max_frame_size:
                    return (f"frame of {end - self._frame_start} bytes exceeds the limit of "
                            f"{self.max_frame_size}")
                self._frame_start = end
                violation = self._dispatch(obj)
                if violation:
                    return violation
        except (ValueError, TypeError) as exc:
            # msgpack's FormatError, StackError, BufferFull, size limits, invalid UTF-8 are ValueErrors;
            # unhashable map keys are TypeErrors. Framing is lost after any of them, so close.
            return f"undecodable data ({type(exc).__name__}: {exc})"
        if self._total_fed - self._frame_start > self.max_frame_size:
            return f"incomplete frame already exceeds the limit of {self.max_frame_size} bytes"
        return ""

    def _dispatch(self, obj: Any) -> str:
        message = protocol.classify(obj)
        if type(message) is Response:
            future = self._pending.pop(message.msgid, None)
            if future is None or future.done():
                self.log.debug("rpc %s: dropping answer to unknown/expired id %d", self.name, message.msgid)
            elif message.error is not None:
                future.set_exception(RpcError.from_wire(message.error))
            else:
                future.set_result(message.result)
        elif type(message) is Request:
            self._serve(message)
        elif type(message) is Notification:
            self._notifications.put_nowait(message)
        else:
            assert isinstance(message, BadMessage)
            if message.answer_msgid is None:
                return f"not a msgpack-RPC message ({message.reason})"
            self.log.warning("rpc %s: invalid request: %s", self.name, message.reason)
            self._send(protocol.response(message.answer_msgid,
                                         RpcError("InvalidRequest", message.reason).to_wire(), None))
        return ""

    def _serve(self, request: Request) -> None:
        """Answers a request: plain handlers run right here (no task, no extra loop turn), coroutine
        handlers in their own task so slow ones do not hold up the others (answers go out of order)."""
        try:
            entry = self.registry.lookup(request.method, len(request.params))
            if entry.is_async:
                self._spawn_handler(request, entry.handler(*request.params))
                return
            result = entry.handler(*request.params)
        except RpcError as exc:
            self._answer_error(request, exc)
            return
        except Exception as exc:  # boundary: a handler fault becomes an error answer, never a dead peer
            self._answer_fault(request, exc)
            return
        if inspect.isawaitable(result):  # a plain function that returned an awaitable
            self._spawn_handler(request, result)
        else:
            self._answer(request, result)

    def _spawn_handler(self, request: Request, awaitable: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._await_handler(request, awaitable))
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _await_handler(self, request: Request, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except RpcError as exc:
            self._answer_error(request, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # boundary: as in _serve
            self._answer_fault(request, exc)
        else:
            self._answer(request, result)
            with contextlib.suppress(ConnectionLost):
                await self._drain()

    def _answer(self, request: Request, result: Any) -> None:
        if self.is_closed:
            self.log.debug("rpc %s: connection gone, answer to %s dropped", self.name, request.method)
            return
        try:
            frame = self._packer.pack(protocol.response(request.msgid, None, result))
        except (TypeError, ValueError, OverflowError) as exc:
            self.log.error("rpc %s: result of %s cannot be packed: %s", self.name, request.method, exc)
            self._answer_error(request, RpcError("ResultNotSerialisable", f"{request.method}: {exc}"))
            return
        self._writer.write(frame)

    def _answer_error(self, request: Request, error: RpcError) -> None:
        self.log.debug("rpc %s: %s -> %s", self.name, request.method, error)
        self._send(protocol.response(request.msgid, error.to_wire(), None))

    def _answer_fault(self, request: Request, exc: Exception) -> None:
        self.log.error("rpc %s: handler of %s raised", self.name, request.method, exc_info=exc)
        self._send(protocol.response(request.msgid,
                                     RpcError("HandlerError", f"{type(exc).__name__}: {exc}").to_wire(), None))

    async def _notification_loop(self) -> None:
        while True:
            message = await self._notifications.get()
            if message is None:
                return
            try:
                await self.registry.invoke(message.method, message.params)
            except RpcError as exc:
                self.log.warning("rpc %s: notification %s dropped: %s", self.name, message.method, exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # boundary: one bad notification must not stop the ones after it
                self.log.exception("rpc %s: notification handler %s raised", self.name, message.method)

