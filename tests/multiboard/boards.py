"""Boards as separate processes for the multi-board tests: each board has its own mosquitto and its own
`everpy run` process, like a real charger made of several controller boards. A probe on each board's bus
calls commands and watches vars/errors as a module would. A TCP proxy between boards injects link faults
(drop, silence, delay) on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from everpy.core.broker import PrivateBroker
from everpy.core.bus import BrokerAddress, Bus, BusError
from everpy.testing import Probe

PSK = "6576657270792d746573742d6b65792d3031323334353637383961626364656630"
RUN_EVERPY = "import sys; from everpy.cli import main; sys.exit(main())"
LOOPBACK_MDNS = {"mdns_interfaces": "lo", "mdns_allow_loopback": True}
FAULT = "generic/CommunicationFault"


def is_fault(state: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a generic/CommunicationFault error event in ``state`` (Active or ClearedByModule)."""
    return lambda e: e["type"] == FAULT and e["state"] == state


def new_serial() -> str:
    return "SAT-" + uuid.uuid4().hex[:10]


def satellite_config(serial: str, *, psk: str = PSK, port: int = 0, **agent: Any) -> dict[str, Any]:
    """A satellite: one simulated EVSE (board + EvseManager) served by a SatelliteAgent."""
    return {
        "settings": {"heartbeat_interval_s": 1},
        "active_modules": {
            "evse": {"module": "EvseManager",
                     "config_module": {"energy_management": False},
                     "connections": {"bsp": [{"module_id": "board", "implementation_id": "board_support"}],
                                     "powermeter": [{"module_id": "board", "implementation_id": "powermeter"}]}},
            "board": {"module": "BoardSupportSimulator", "config_module": {"meter_interval_s": 1}},
            "agent": {"module": "SatelliteAgent",
                      "config_module": {"serial": serial, "psk": psk, "port": port, "bind_host": "127.0.0.1",
                                        "controller_timeout_s": 3, **LOOPBACK_MDNS, **agent},
                      "connections": {
                          "evse_manager": [{"module_id": "evse", "implementation_id": "evse"}],
                          "energy": [{"module_id": "evse", "implementation_id": "energy_grid"}],
                          "powermeter": [{"module_id": "board", "implementation_id": "powermeter"}]}},
        },
    }


def controller_entry(serial: str, *, psk: str = PSK, **config: Any) -> dict[str, Any]:
    return {"module": "SatelliteController",
            "config_module": {"serial": serial, "psk": psk, "heartbeat_interval_s": 0.2,
                              "heartbeat_timeout_s": 0.6, "reconnect_max_s": 0.5, "startup_wait_s": 15,
                              **LOOPBACK_MDNS, **config}}


def main_config(controllers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"settings": {"heartbeat_interval_s": 1, "ready_timeout_s": 60}, "active_modules": controllers}


class UnixSocketBroker:
    """mosquitto listening on a unix socket only: reachable from every network namespace of the host, so a
    board inside a namespace and the test's probe outside share one bus."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "mqtt.sock"
        self.conf = directory / "mosquitto.conf"
        self.address: BrokerAddress | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 10.0) -> BrokerAddress:
        # user root: mosquitto would otherwise drop to its own user, which cannot enter pytest's tmp dirs
        self.conf.write_text(f"listener 0 {self.path}\nallow_anonymous true\npersistence false\nuser root\n")
        self._process = await asyncio.create_subprocess_exec(
            "mosquitto", "-c", str(self.conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        address = BrokerAddress(socket_path=str(self.path))
        async with asyncio.timeout(timeout):
            while True:
                bus = Bus(address, f"probe-wait-{uuid.uuid4().hex[:6]}")
                try:
                    await bus.connect(timeout=1)
                    await bus.close()
                    break
                except BusError:
                    await asyncio.sleep(0.05)  # mosquitto gives no readiness signal but its socket
        self.address = address
        return address

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()


class Board:
    """One board: a private mosquitto (kept across restarts of the stack) and an `everpy run` process,
    optionally inside a network namespace (then the broker listens on a unix socket)."""

    def __init__(self, name: str, config: dict[str, Any], workdir: Path, netns: str | None = None) -> None:
        self.name = name
        self.config = config
        self.workdir = workdir
        self.netns = netns
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.broker: PrivateBroker | UnixSocketBroker
        if netns:
            (workdir / name).mkdir(exist_ok=True)
            self.broker = UnixSocketBroker(workdir / name)
        else:
            self.broker = PrivateBroker()
        self.process: asyncio.subprocess.Process | None = None
        self.probe: Probe | None = None
        self._bus: Bus | None = None
        self.starts = 0

    async def start(self, ready_timeout: float = 60.0) -> None:
        if self._bus is None:
            address = await self.broker.start()
            self._bus = Bus(address, f"probe-{self.name}-{uuid.uuid4().hex[:6]}")
            await self._bus.connect()
            self.probe = Probe(self._bus, self.config.get("settings", {}).get("mqtt_everest_prefix", "everest"))
        assert self.probe is not None
        self.config_path.write_text(yaml.safe_dump(self.config))
        global_ready = asyncio.Event()
        sub = self._bus.subscribe(self.probe.topics.global_ready, lambda t, p: global_ready.set())
        await self.probe.flush()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} =====\n".encode())
            log.flush()
            prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.process = await asyncio.create_subprocess_exec(
                *prefix, sys.executable, "-c", RUN_EVERPY, "run", str(self.config_path), "--broker",
                self._broker_arg(), stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self._login()})
        ready = asyncio.ensure_future(global_ready.wait())
        exited = asyncio.ensure_future(self.process.wait())
        try:
            await asyncio.wait({ready, exited}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
            self._bus.unsubscribe(sub)
        if not global_ready.is_set():
            why = (f"exited with code {self.process.returncode}" if self.process.returncode is not None
                   else f"not ready in {ready_timeout:g} s")
            raise AssertionError(f"board {self.name} {why}:\n{self.log_tail()}")

    def _login(self) -> dict[str, str]:
        """The broker's login for `everpy run --broker` (the test's PrivateBroker takes no anonymous client)."""
        address = self.broker.address
        assert address is not None
        if address.username is None:
            return {}
        return {"EVERPY_MQTT_USER": address.username, "EVERPY_MQTT_PASSWORD": address.password or ""}

    def _broker_arg(self) -> str:
        address = self.broker.address
        assert address is not None
        return f"unix:{address.socket_path}" if address.socket_path else f"{address.host}:{address.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL: the board's stack dies without a goodbye."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: the stack shuts down in order (the agent says bye, mDNS goodbye)."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def close(self) -> None:
        await self.stop()
        if self._bus is not None:
            await self._bus.close()
            self._bus = None
        await self.broker.stop()


class FaultProxy:
    """A TCP proxy between main board and satellite that can drop, silence or delay the link."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay_s = 0.0  # applied to satellite -> main bytes (the answers)
        self.silent = False  # forward nothing, close nothing: a cut cable
        self._server: asyncio.base_events.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        link = (writer, up_writer)
        self._links.add(link)
        for task in (self._pump(reader, up_writer, lambda: 0.0), self._pump(up_reader, writer, lambda: self.delay_s)):
            t = asyncio.ensure_future(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    delay: Callable[[], float]) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.silent:
                    continue
                d = delay()
                if d:
                    loop.call_later(d, self._write_later, writer, data)
                else:
                    writer.write(data)
        writer.close()

    def _write_later(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not writer.is_closing() and not self.silent:
            writer.write(data)

    def drop_all(self) -> None:
        """Closes every proxied connection at once (both sides see the TCP connection end)."""
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def make_pki(directory: Path) -> dict[str, str]:
    """A CA, a satellite certificate signed by it, and an unrelated CA, made with the openssl CLI."""
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=charger CA")
    openssl("req", *ec, "-keyout", "sat.key", "-out", "sat.csr", "-subj", "/CN=satellite")
    openssl("x509", "-req", "-in", "sat.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "sat.pem", "-days", "2")
    openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other")
    return {name: str(directory / f"{name}.pem") for name in ("ca", "sat", "other")} | {
        "sat_key": str(directory / "sat.key")}
