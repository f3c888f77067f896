"""Fail safe without the bus: the board opens its relays itself when the manager's power lease runs out.

The bus is frozen for real (SIGSTOP of the mosquitto this test started, so it has its pid): the
manager's renewals stop reaching the board, and the board must open the relays within the lease on its
own authority, raise CommunicationFault/PowerLease, and after the bus is back (SIGCONT) clear it at the
next renewal; the manager then resumes charging. Once through a real `everpy run` process, watched from
outside (its stderr log and a test client on the bus), and once in-process where the board's state can
be read directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from everpy_modules.BoardSupportSimulator.board_simulator import BoardSupportSimulator
from everpy_modules.EvseManager.evse_manager import EvseManager

from everpy.core.broker import find_mosquitto
from everpy.core.bus import BrokerAddress, Bus
from everpy.core.clock import FakeClock
from everpy.testing import Probe, Recorder, run_system

from .sil_system import WAIT_S, Sil, conn, sil_config, until

LEASE_LOST = "evse_board_support/CommunicationFault"
LEASE_MS = 1500
LEASE_S = LEASE_MS / 1000
# How late the board's own opening may be seen after the lease ran out: timer, log write and pipe on a
# loaded two-core machine. A board that waited for the bus would not open at all until SIGCONT.
MARGIN_S = 1.0
STARTUP_S = 60.0  # an `everpy run` process importing everything on cores shared with other suites

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")


class LineWatch:
    """Every line of a process's output as it arrives (read all along, so the pipe never fills)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[tuple[float, str]] = []  # (time.monotonic() when read, line)
        self._next = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> tuple[float, str]:
        """The first line not looked at yet that matches, with the moment it was read."""
        async with asyncio.timeout(timeout):
            while True:
                while self._next < len(self.lines):
                    seen = self.lines[self._next]
                    self._next += 1
                    if predicate(seen[1]):
                        return seen
                if self._reader.done():
                    raise EOFError("the process closed its output")
                self._changed.clear()
                await self._changed.wait()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGCONT (a stopped process would not handle SIGTERM), SIGTERM, and SIGKILL if it does not end."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), WAIT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def own_mosquitto(workdir: Path) -> AsyncIterator[tuple[BrokerAddress, asyncio.subprocess.Process]]:
    """A mosquitto of this test's own on a free port (port 0 is not possible: mosquitto does not say
    which port it got), ready once it logs that it is running."""
    binary = find_mosquitto()
    assert binary is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\nlog_type information\n")
    process = await asyncio.create_subprocess_exec(binary, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert process.stderr is not None
    output = LineWatch(process.stderr)
    try:
        await output.wait_for(lambda line: " running" in line, WAIT_S)
        yield BrokerAddress("127.0.0.1", port), process
    finally:
        await stop_process(process)
        await output.close()


@contextlib.contextmanager
def frozen(broker: asyncio.subprocess.Process) -> Iterator[float]:
    """The bus stalls (SIGSTOP of the broker) until the block ends, whatever happens in it; yields when."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(broker.pid, signal.SIGCONT)


class BusWitness:
    """A test client on the bus: the board's relay events and errors, and when each lease renewal passed."""

    def __init__(self, bus: Bus, prefix: str = "everest") -> None:
        self.probe = Probe(bus, prefix)
        self.board_events = self.probe.watch("board", "board_support", "event")
        self.board_errors = self.probe.watch_errors("board", "board_support")
        self.renewals: list[float] = []
        bus.subscribe(self.probe.topics.cmd("board", "board_support", "renew_power_lease"),
                      lambda topic, payload: self.renewals.append(time.monotonic()))

    async def relays(self, want: str, timeout: float = WAIT_S) -> None:
        await self.board_events.wait_for(lambda e: e["event"] == want, timeout)


async def lease_error(errors: Recorder, state: str) -> dict[str, Any]:
    error: dict[str, Any] = await errors.wait_for(lambda e: e["type"] == LEASE_LOST, WAIT_S)
    assert (error["sub_type"], error["state"]) == ("PowerLease", state)
    return error


async def bus_back_lease_cleared_charging_again(witness: BusWitness) -> None:
    """After SIGCONT: what the board did while the bus was frozen arrives, then the manager's recovery."""
    await witness.relays("PowerOff")
    raised = await lease_error(witness.board_errors, "Active")
    assert f"no renewal within {LEASE_MS} ms" in raised["message"]
    await lease_error(witness.board_errors, "ClearedByModule")  # a renewal arrived
    await witness.relays("PowerOn")  # the manager allowed power again: charging resumed


def free_charging_config(broker: BrokerAddress) -> dict[str, Any]:
    """EvseManager (free charging, a short lease) + simulated board + a car that charges for an hour."""
    return {
        "settings": {"mqtt_broker_host": broker.host, "mqtt_broker_port": broker.port},
        "active_modules": {
            "evse": {
                "module": "EvseManager",
                "config_module": {"disable_authentication": True, "energy_management": False,
                                  "status_interval_s": 0, "power_lease_ms": LEASE_MS},
                "connections": {"bsp": [conn("board", "board_support")], "powermeter": [conn("board", "powermeter")]},
            },
            "board": {"module": "BoardSupportSimulator", "config_module": {"state_file": ""}},
            "car": {
                "module": "EvSimulator",
                "config_module": {"auto_exec": True,
                                  "auto_exec_commands": "iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 3600"},
                "connections": {"ev_board_support": [conn("board", "ev_board_support")]},
            },
        },
    }


async def test_frozen_bus_everpy_run_board_opens_relays_within_the_lease(tmp_path: Path) -> None:
    async with own_mosquitto(tmp_path) as (broker, mosquitto):
        bus = Bus(broker, "lease-test-witness")
        await bus.connect()
        witness = BusWitness(bus)
        await witness.probe.flush()  # subscribed before the station says anything
        config = tmp_path / "station.yaml"
        config.write_text(yaml.safe_dump(free_charging_config(broker)))
        station = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "everpy.cli", "run", str(config), cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert station.stderr is not None
        log = LineWatch(station.stderr)
        try:
            await witness.relays("PowerOn", STARTUP_S)  # the car charges
            renewals_seen = len(witness.renewals)
            await until(lambda: len(witness.renewals) > renewals_seen, what="a lease renewal while charging")
            with frozen(mosquitto) as frozen_at:
                last_renewal = witness.renewals[-1]
                opened_at, line = await log.wait_for(
                    lambda text: "power lease expired" in text and "relays opened" in text, WAIT_S)
                # Still frozen: nothing of this went over the bus; the board acted on its own.
            print(f"relays opened {opened_at - frozen_at:.3f} s after the bus froze, "
                  f"{opened_at - last_renewal:.3f} s after the last renewal the bus carried")
            assert "WARNING" in line and "everpy.board" in line
            assert opened_at - frozen_at <= LEASE_S + MARGIN_S
            assert opened_at - last_renewal >= LEASE_S - 0.1  # not before the lease ran out
            await bus_back_lease_cleared_charging_again(witness)
        except BaseException:
            print(log.text()[-6000:])  # the station's side of a failure
            raise
        finally:
            await stop_process(station)
            await log.close()
            await bus.close()


async def test_frozen_bus_in_process_board_opens_relays_and_the_session_resumes(tmp_path: Path) -> None:
    async with own_mosquitto(tmp_path) as (broker, mosquitto):
        clock = FakeClock()
        async with run_system(sil_config(evse={"power_lease_ms": LEASE_MS}), clock=clock, broker=broker) as system:
            s = Sil(system, clock)
            evse = system.instance("evse", EvseManager)
            await until(lambda: evse.charger.started, what="EVSE started")
            witness = BusWitness(system.bus, system.topics.prefix)
            # The EVSE's reply comes after everything it published at start-up (one connection, in order).
            await system.call("evse", "evse", "get_evse")
            s.events.drain()
            await s.charging()
            port = system.instance("board", BoardSupportSimulator).port
            with frozen(mosquitto) as frozen_at:
                # Nobody's renewal reaches the board now; its state is read here, not over the bus.
                await until(lambda: not port.relays_closed(), timeout=LEASE_S + WAIT_S, what="relays open")
                opened_after_s = time.monotonic() - frozen_at
                assert not port.power_allowed  # the permission is forgotten with the lease
            assert opened_after_s <= LEASE_S + MARGIN_S
            await bus_back_lease_cleared_charging_again(witness)
            await s.skip_to("ChargingResumed")
            assert port.relays_closed() and port.lease_valid
