"""A private mosquitto for one run, used when the config names no broker.

It takes no anonymous client: every process logs in with its own user and password
(:mod:`everpy.core.bus_access`), and an ACL derived from the module graph limits what each may publish.
The password and ACL files live in a directory only this user can enter (0700), and hold hashes only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import signal
import socket
import tempfile
from pathlib import Path

from everpy.core.bus import BrokerAddress
from everpy.core.bus_access import OPERATOR_USER, RUNTIME_USER, Credentials
from everpy.core.logs import LogThrottle
from everpy.core.private_files import write_private
from everpy.core.sdnotify import SYSTEMD_ENVIRONMENT
from everpy.core.subprocesses import own_session

log = logging.getLogger("everpy.broker")

INSTALL_HINT = (
    "mosquitto is not installed. Install it (Debian/Ubuntu: `apt-get install mosquitto`; "
    "Yocto: add `mosquitto` from meta-networking), or name a running broker with "
    "settings.mqtt_broker_host/mqtt_broker_port or `everpy run --broker HOST:PORT`."
)


class BrokerError(Exception):
    """The private broker could not be started; the run cannot go on without a bus."""


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )


def _same_user() -> str:
    """Keep mosquitto under our own user: started as root it would switch to user `mosquitto`, and a
    change of user clears the parent-death signal that takes it down with a killed runtime. It only
    listens on loopback for this run, so it needs no more and no less than the runtime has."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry is not root; mosquitto changes user only as root
        return ""
    return f"user {name}\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """mosquitto on a free loopback port, alive for the lifetime of this object."""

    def __init__(self) -> None:
        self.address: BrokerAddress | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._stderr_reader: asyncio.Task[None] | None = None
        self._warnings = LogThrottle(log)
        self.credentials: Credentials | None = None

    async def start(self, timeout: float = 10.0, port: int | None = None, *, credentials: Credentials | None = None,
                    acl: str | None = None, open_bus: bool = False) -> BrokerAddress:
        """Start mosquitto; the address returned logs in as the runtime. Without ``acl`` the runtime's user
        may do anything below any topic (the tests' brokers); ``credentials`` gains the runtime's user.
        ``open_bus`` takes anonymous clients and checks nothing: only for measuring what the login and the
        ACL cost (bench/bench_core.py), never for a charger."""
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(INSTALL_HINT)
        self.credentials = credentials or self.credentials or Credentials()
        runtime_password = self.credentials.user(RUNTIME_USER)
        self.credentials.user(OPERATOR_USER)
        self._dir = self._dir or tempfile.TemporaryDirectory(prefix="everpy-mqtt-")
        folder = Path(self._dir.name)
        folder.chmod(0o700)
        port = port or _free_port()
        passwords, access = folder / "passwords", folder / "acl"
        write_private(passwords, self.credentials.password_file())
        write_private(access, acl if acl is not None else f"user {RUNTIME_USER}\ntopic readwrite #\n"
                                                           f"user {OPERATOR_USER}\ntopic readwrite #\n")
        conf = folder / "mosquitto.conf"
        access_lines = "allow_anonymous true\n" if open_bus else \
            f"allow_anonymous false\npassword_file {passwords}\nacl_file {access}\n"
        conf.write_text(
            f"per_listener_settings false\n{access_lines}"
            f"listener {port} 127.0.0.1\npersistence false\nset_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nmax_queued_messages 100000\n"
            + _same_user()
        )
        self._process = await asyncio.create_subprocess_exec(
            binary, "-c", str(conf),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            # Debian's mosquitto speaks sd_notify itself: with NOTIFY_SOCKET it would tell systemd READY=1
            # before any module is up (and break NotifyAccess=main). Only the runtime notifies.
            env={k: v for k, v in os.environ.items() if k not in SYSTEMD_ENVIRONMENT},
            # SIGKILL if the runtime dies: the broker holds no state worth a clean exit
            **own_session(signal.SIGKILL),
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self._process.returncode is not None:
                err = (await self._process.stderr.read()).decode(errors="replace") if self._process.stderr else ""
                raise BrokerError(f"mosquitto exited at start (code {self._process.returncode}): {err.strip()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout:g} s") from None
                await asyncio.sleep(0.02)  # polling the port is the only readiness signal mosquitto gives
        self.address = BrokerAddress("127.0.0.1", port) if open_bus else \
            BrokerAddress("127.0.0.1", port, username=RUNTIME_USER, password=runtime_password)
        if self._process.stderr is not None:
            self._stderr_reader = asyncio.ensure_future(self._forward_stderr(self._process.stderr))
        log.info("private mosquitto on %s (pid %s)", self.address, self._process.pid)
        return self.address

    async def _forward_stderr(self, stderr: asyncio.StreamReader) -> None:
        """Read mosquitto's warnings for as long as it runs: an unread pipe fills up after 64 KiB of
        them (e.g. messages dropped for a slow client) and then blocks the broker, and the whole bus."""
        while line := await stderr.readline():
            self._warnings("mosquitto", logging.WARNING, "mosquitto: %s", line.decode(errors="replace").strip())

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def wait(self) -> int | None:
        """Until mosquitto exits; its exit code."""
        assert self._process is not None
        return await self._process.wait()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._stderr_reader is not None:
            self._stderr_reader.cancel()
            await asyncio.gather(self._stderr_reader, return_exceptions=True)
            self._stderr_reader = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
