"""Backoff always: the reconnect backoff (exponential, with jitter) also holds when the websocket opens.

A CSMS that accepts the websocket and closes it at once, or answers BootNotification Accepted and then
closes, must not be hammered: before the fix a successful connect reset the backoff, and the station
opened ~48 sessions a minute at reconnect_min 1 s. Only a session that lasted HEALTHY_SESSION_S proves
the CSMS works and starts the backoff over.

Through real websockets (everpy.ocpp.transport on 127.0.0.1): the shared Session with a tiny binding, on
a real-time clock that records what the session sleeps (so jitter and growth are checked exactly, not
through scheduling noise), and the SIL station against the same misbehaving CSMS. Gaps are measured
where the CSMS sees the connections; a loaded machine only makes them longer, so only lower bounds on
gaps (upper bounds on the session rate) are asserted in real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from everpy.core.clock import Clock
from everpy.ocpp import transport
from everpy.ocpp.rpc import Dialect
from everpy.ocpp.security import ConnectionParameters
from everpy.ocpp.session import HEALTHY_SESSION_S, Session, SessionSettings
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.dialect import DIALECT

from .station import WAIT_S, Address, sil_station

MIN_S, MAX_S = 0.05, 0.4
JITTER = 0.5  # a backoff is base x (1 .. 1 + JITTER)
EARLY_S = 0.005  # timer granularity: a gap may look this much shorter than the sleep behind it
CONNECTIONS = 8  # the backoff reaches the cap after 4 failures: 4 gaps below and 3 at the cap
LOG = logging.getLogger("tests.ocpp.backoff")


def base(failures: int) -> float:
    """The backoff before the next attempt after `failures` short sessions in a row (before jitter)."""
    return min(MAX_S, MIN_S * 2 ** (failures - 1))


def most_connections(window: float, first_failures: int = 1) -> int:
    """The most connections exponential backoff allows within `window` seconds of a connection that
    followed `first_failures - 1` failures (the first one included)."""
    count, spent, failures = 1, 0.0, first_failures
    while spent + base(failures) <= window + EARLY_S:
        spent += base(failures)
        failures += 1
        count += 1
    return count


# ------------------------------------------------------------------ a CSMS that gives up on every session
@dataclass
class Misbehaving:
    """A websocket CSMS: "close" closes every connection at once; "answer" answers the first CALL
    (BootNotification Accepted, or an empty conf) and then closes; "hold" keeps the connection until
    ``release`` is set. ``plan`` lists the modes of the next connections; the last one repeats."""

    plan: list[str]
    opened: list[float] = field(default_factory=list)  # time.monotonic() of each accepted websocket
    first_action: list[str | None] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, connection: Any, path: str, headers: Any) -> None:
        self.opened.append(time.monotonic())
        mode = self.plan[min(len(self.opened) - 1, len(self.plan) - 1)]
        action = None
        try:
            if mode in ("answer", "hold"):
                frame = json.loads(await asyncio.wait_for(connection.recv(), WAIT_S))
                action = frame[2]
                answer = ({"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}
                          if action == "BootNotification" else {})
                await connection.send(json.dumps([3, frame[1], answer]))
            if mode == "hold":
                await self.release.wait()
        except (transport.ConnectionClosed, TimeoutError):
            pass
        finally:
            self.first_action.append(action)
            await connection.close()

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.opened, self.opened[1:], strict=False)]

    async def wait_connections(self, count: int, timeout: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout):
            while len(self.opened) < count:
                await asyncio.sleep(0.02)  # polled: the server has no event to wait on; the bound is asserted


@asynccontextmanager
async def misbehaving(*plan: str) -> AsyncIterator[Misbehaving]:
    csms = Misbehaving(list(plan))
    server = await transport.serve(csms.handle, "127.0.0.1", 0, subprotocols=[DIALECT.subprotocol])
    csms.url = f"ws://127.0.0.1:{transport.server_port(server)}/ocpp"
    try:
        yield csms
    finally:
        csms.release.set()
        server.close()
        await server.wait_closed()


def assert_backoff_bounds_the_sessions(csms: Misbehaving, first_failures: int = 1) -> None:
    """Every gap is at least the backoff's base for its failure count, so the session rate is bounded."""
    gaps = csms.gaps()
    for number, gap in enumerate(gaps):
        assert gap >= base(first_failures + number) - EARLY_S, (number, gap, gaps)
    for start in range(len(csms.opened)):  # every window, counted from every connection
        for end in range(start + 1, len(csms.opened)):
            window = csms.opened[end] - csms.opened[start]
            assert end - start + 1 <= most_connections(window, first_failures + start), (start, end, gaps)


# ------------------------------------------------------------------ the shared Session with a tiny binding
class RecordingClock(Clock):
    """Real time; records every sleep (the session sleeps only for its backoff here) and can jump its
    monotonic time forward (to make a session look as long as a healthy one)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class Security:
    def __init__(self, url: str) -> None:
        self.url = url

    def parameters(self) -> ConnectionParameters:
        return ConnectionParameters(f"{self.url}/CP1", {}, None)

    def failed(self, error: Exception) -> None:
        pass

    def succeeded(self) -> None:
        pass


class Binding:
    """The least a version tells the session; once accepted, a connection sends one StatusNotification
    (as a station reports its connectors), so every session exchanges a message before it is closed."""

    dialects: tuple[Dialect, ...] = (DIALECT,)  # the subprotocols offered, preferred first

    def __init__(self) -> None:
        self.session: Session | None = None

    def refuses_before_acceptance(self, boot_status: str, action: str) -> bool:
        return False

    def boot_payload(self) -> dict[str, Any]:
        return {"chargePointVendor": "everpy", "chargePointModel": "backoff-test"}

    def boot_accepted(self, result: dict[str, Any]) -> None:
        pass

    def heartbeat_interval(self) -> int:
        return 300

    def ping_interval(self) -> int | None:
        return None

    async def wait_heartbeat_change(self) -> None:
        await asyncio.Event().wait()

    async def after_connect(self) -> None:
        assert self.session is not None
        await self.session.call_or_log(
            "StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"})

    async def take_time(self, current_time: str) -> None:
        pass

    def quarantined(self, what: str, reason: str) -> None:
        pass


@asynccontextmanager
async def running_session(tmp_path: Path, url: str) -> AsyncIterator[tuple[Session, RecordingClock, list[str]]]:
    clock, states, binding = RecordingClock(), [], Binding()
    store = OcppStore(tmp_path / "ocpp.db")
    session = Session(binding, Security(url), store,  # type: ignore[arg-type]  # the parts the session uses
                      SessionSettings(reconnect_min_s=MIN_S, reconnect_max_s=MAX_S, response_timeout_s=5.0),
                      clock, LOG, states.append)
    binding.session = session
    runner = asyncio.ensure_future(session.run())
    try:
        yield session, clock, states
    finally:
        session.halt()
        await asyncio.wait_for(runner, WAIT_S)
        store.close()


def assert_backoffs(sleeps: list[float], first_failures: int = 1) -> None:
    """Each backoff drawn within base x [1, 1.5], doubling up to the cap, with jitter."""
    ratios = []
    for number, slept in enumerate(sleeps):
        expected = base(first_failures + number)
        assert expected <= slept <= expected * (1 + JITTER), (number, slept, sleeps)
        ratios.append(slept / expected)
    # jitter: uniform factors; 7 draws all within 0.05 of each other has a chance of about 1e-5
    assert max(ratios) - min(ratios) > 0.05, ratios


@pytest.mark.parametrize("mode", ["close", "answer"])
async def test_backoff_grows_when_the_csms_closes_every_session(tmp_path: Path, mode: str) -> None:
    """"close": the websocket opens and is closed at once; "answer": BootNotification (then, once
    accepted, StatusNotification) is answered and the connection closed."""
    async with misbehaving(mode) as csms:
        async with running_session(tmp_path, csms.url) as (session, clock, states):
            await csms.wait_connections(CONNECTIONS)
        sleeps = clock.sleeps[:CONNECTIONS - 1]
    assert len(clock.sleeps) >= CONNECTIONS - 1
    assert_backoffs(sleeps)
    for gap, slept in zip(csms.gaps(), sleeps, strict=False):  # the drawn backoff was really waited
        assert gap >= slept - EARLY_S, (csms.gaps(), sleeps)
    assert_backoff_bounds_the_sessions(csms)
    assert session.sessions >= CONNECTIONS - 1  # the websocket did open every time
    if mode == "answer":  # the CSMS accepted the station, and every later session reached Accepted
        assert csms.first_action[0] == "BootNotification"
        assert set(csms.first_action[1:CONNECTIONS - 1]) == {"StatusNotification"}
        assert states.count("Accepted") >= CONNECTIONS - 2  # the first may see the close before the answer


async def test_only_a_healthy_session_starts_the_backoff_over(tmp_path: Path) -> None:
    """Three sessions closed at once, a 4th that lasts HEALTHY_SESSION_S, then closed ones again: the
    backoff grows, starts over from reconnect_min after the long session, and grows again."""
    async with misbehaving("close", "close", "close", "hold", "close") as csms:
        async with running_session(tmp_path, csms.url) as (session, clock, _):
            await csms.wait_connections(4)
            async with asyncio.timeout(WAIT_S):
                while not session.online:  # polled: the held session has booted and is Accepted
                    await asyncio.sleep(0.02)
            clock.offset += HEALTHY_SESSION_S  # the held session "lasted" a minute
            csms.release.set()
            await csms.wait_connections(7)
    assert len(clock.sleeps) >= 6
    for number, (slept, failures) in enumerate(zip(clock.sleeps, [1, 2, 3, 1, 2, 3], strict=False)):
        assert base(failures) <= slept <= base(failures) * (1 + JITTER), (number, clock.sleeps)


# ------------------------------------------------------------------ the SIL station
async def test_sil_station_backs_off_from_a_csms_that_accepts_and_closes(tmp_path: Path) -> None:
    ocpp = {"reconnect_min_s": MIN_S, "reconnect_max_s": MAX_S}
    async with misbehaving("answer") as csms:
        async with sil_station(tmp_path, Address(csms.url), ocpp=ocpp, wait_boot=False):
            await csms.wait_connections(CONNECTIONS, timeout=2 * WAIT_S)
    assert csms.first_action[0] == "BootNotification"
    assert "StatusNotification" in csms.first_action[1:]  # accepted: later sessions report connectors
    assert_backoff_bounds_the_sessions(csms)
    gaps = csms.gaps()[:CONNECTIONS - 1]
    assert min(gaps[3:]) >= MAX_S - EARLY_S  # grown to the cap, where the old code stayed at reconnect_min
    assert len({round(gap, 3) for gap in gaps[3:]}) > 1  # not one fixed period
