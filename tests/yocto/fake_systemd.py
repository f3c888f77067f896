"""A stand-in for systemd's notify socket: an AF_UNIX datagram socket that records what services send.

Like systemd it turns on SO_PASSCRED, so every message carries the sender's PID (systemd uses it to
enforce ``NotifyAccess=main``) and the tests can check who sent it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Notification:
    received_at: float  # time.monotonic()
    sender_pid: int
    states: tuple[str, ...]  # the KEY=VALUE lines, in order


class FakeSystemd:
    """Bind with ``FakeSystemd.at_path(p)`` or ``FakeSystemd.abstract(name)``; use as async context."""

    def __init__(self, bind_address: str | bytes, notify_socket: str) -> None:
        self.notify_socket = notify_socket  # what systemd would put into NOTIFY_SOCKET
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.bind(bind_address)
        self._sock.setblocking(False)
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()
        self.received: list[Notification] = []

    @classmethod
    def at_path(cls, path: Path) -> FakeSystemd:
        return cls(str(path), str(path))

    @classmethod
    def abstract(cls, name: str) -> FakeSystemd:
        return cls(b"\0" + name.encode(), "@" + name)

    async def __aenter__(self) -> FakeSystemd:
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._drain)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()

    def _drain(self) -> None:
        while True:
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                return
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(payload[: _UCRED.size])[0]
            note = Notification(time.monotonic(), pid, tuple(data.decode().split("\n")))
            self.received.append(note)
            self._queue.put_nowait(note)

    async def next(self, timeout: float = 10.0) -> Notification:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def wait_for_state(self, state: str, timeout: float = 10.0) -> Notification:
        """The next notification containing ``state`` (others are skipped but kept in ``received``)."""

        async def scan() -> Notification:
            while True:
                note = await self._queue.get()
                if state in note.states:
                    return note

        return await asyncio.wait_for(scan(), timeout)
