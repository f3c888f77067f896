"""systemd service notification (``sd_notify``) and watchdog, without libsystemd.

systemd starts a ``Type=notify`` service with ``NOTIFY_SOCKET`` in its environment: the path of an
AF_UNIX datagram socket (``@name`` means Linux's abstract namespace). The service sends newline-separated
``KEY=VALUE`` assignments to it. With ``WatchdogSec=`` set, systemd also passes ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``) and restarts the service if no ``WATCHDOG=1`` arrives within that time.

How the runtime uses this module (the whole API)::

    from everpy.core import sdnotify

    # once every module has reported ready (global ready):
    sdnotify.notify("READY=1", "STATUS=running 12 modules")

    # while running: ping the watchdog at half of WatchdogSec, but only while healthy
    watchdog = sdnotify.Watchdog.from_environment(is_healthy=runtime.is_healthy)
    if watchdog is not None:
        watchdog.start()

    # on SIGTERM / stop, before tearing modules down:
    sdnotify.notify("STOPPING=1")
    if watchdog is not None:
        await watchdog.stop()

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op that returns False, so the runtime calls
these unconditionally. Processes the runtime spawns for modules must not inherit the variables in
``SYSTEMD_ENVIRONMENT`` (the unit sets ``NotifyAccess=main``, and a child pinging the watchdog would hide
a hung main process).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger("everpy.sdnotify")

#: Environment variables systemd sets for the notify protocol; strip them from child processes.
SYSTEMD_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

# A datagram to a stuck receiver blocks; bound that so a wedged systemd cannot freeze the event loop
# for long (systemd's own watchdog handling would restart us anyway).
SEND_TIMEOUT_S = 1.0

HealthCheck = Callable[[], bool] | Callable[[], Awaitable[bool]]


def _socket_address(notify_socket: str) -> str | bytes | None:
    """Translate NOTIFY_SOCKET into a sockaddr for AF_UNIX, or None if it is not one we can use."""
    if notify_socket.startswith("@"):
        # Abstract namespace: the leading '@' stands for a NUL byte.
        return b"\0" + notify_socket[1:].encode()
    if notify_socket.startswith("/"):
        return notify_socket
    return None  # e.g. "vsock:CID:PORT" (VMs); not used on charger boards


def notify(*states: str) -> bool:
    """Send state assignments such as ``"READY=1"`` or ``"STATUS=..."`` to systemd.

    Returns True if the datagram was sent, False if not running under a notify-type unit
    (``NOTIFY_SOCKET`` unset) or the send failed (logged). Never raises for environment or socket
    problems; raises ``ValueError`` for a malformed state (a programming error).
    """
    for state in states:
        if "=" not in state or "\n" in state:
            raise ValueError(f"sd_notify state must be one KEY=VALUE line, got {state!r}")
    notify_socket = os.environ.get("NOTIFY_SOCKET", "")
    if not notify_socket or not states:
        return False
    address = _socket_address(notify_socket)
    if address is None:
        log.warning("NOTIFY_SOCKET=%r is not an AF_UNIX socket address; not notifying", notify_socket)
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendto(message, address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", notify_socket, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """The watchdog timeout systemd expects (seconds), or None if no watchdog applies to this process.

    None when ``WATCHDOG_USEC`` is unset, zero or malformed, or when ``WATCHDOG_PID`` names another
    process (the variables were inherited by a child: the watchdog is the parent's).
    """
    usec_text = os.environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = os.environ.get("WATCHDOG_PID")
    if pid_text:
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_PID=%r", pid_text)
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec_text)
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000


class Watchdog:
    """Sends ``WATCHDOG=1`` every ``interval / 2`` seconds while ``is_healthy()`` returns True.

    When the check returns False (or raises) the ping is skipped, so systemd restarts the service after
    ``WatchdogSec`` unless health comes back in time. A blocked event loop stops the pings too, which is
    the point: it is what catches a hung runtime. ``is_healthy`` may be a plain or an async function.
    """

    def __init__(self, interval: float, is_healthy: HealthCheck) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval}")
        self.interval = interval
        self.ping_period = interval / 2
        self._is_healthy = is_healthy
        self._task: asyncio.Task[None] | None = None
        self._was_healthy = True

    @classmethod
    def from_environment(cls, is_healthy: HealthCheck) -> Watchdog | None:
        """A watchdog for the interval systemd asked for, or None if the unit has no watchdog."""
        interval = watchdog_interval()
        if interval is None:
            return None
        return cls(interval, is_healthy)

    async def _check_health(self) -> bool:
        try:
            result = self._is_healthy()
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            # Any fault in the health check means "not healthy": stop pinging and let systemd restart
            # us, rather than keep a broken service alive.
            log.exception("health check failed; withholding watchdog ping")
            return False
        return bool(result)

    async def run(self) -> None:
        """Ping forever (until cancelled). Use ``start()``/``stop()`` to run it as a task."""
        while True:
            healthy = await self._check_health()
            if healthy:
                notify("WATCHDOG=1")
                if not self._was_healthy:
                    log.warning("health restored; watchdog pings resumed")
            elif self._was_healthy:
                log.error("unhealthy; withholding watchdog pings (systemd restarts after %.1f s)", self.interval)
            self._was_healthy = healthy
            await asyncio.sleep(self.ping_period)

    def start(self) -> asyncio.Task[None]:
        """Run the ping loop as a task of the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="sd-watchdog")
        return self._task

    async def stop(self) -> None:
        """Stop pinging (call after ``notify("STOPPING=1")``)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we ourselves are being cancelled, not just the watchdog task
