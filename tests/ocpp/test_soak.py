"""Bounded memory: a simulated day of the SIL station on a FakeClock grows by no sample, timer or reconnect.

Every hour alike: a charging session (plug, swipe, Charging, unplug) with MeterValues every
MeterValueSampleInterval (60 s; 30 s for five minutes, set by ChangeConfiguration and set back), the CSMS
dropping the connection while charging (the samples meanwhile are queued and delivered), HeartbeatInterval
changed, heartbeats while idle, and the CSMS restarting (connects refused for a while, then a new
websocket). Python memory (tracemalloc, from before the warm-up hour on) is compared after the warm-up
hour and after the day, and sampled after every hour for a trend.

What the test process keeps on purpose is not counted: every hour the development CSMS's and the bus
recorders' records are emptied, and so are the log records pytest captured (which keep their text but not
their arguments: a logged exception would keep its traceback and so a whole finished session alive). The
fake clock drops cancelled timers as asyncio's loop does (FakeClock itself keeps them until they are due,
e.g. smart charging's 12-hour refresh re-armed at every change). The SIL periphery (simulated meter, energy
manager, EVSE energy requests) ticks every 5 minutes instead of every second so the day runs in under a
minute; the OCPP timers (samples, heartbeats, reconnect backoff) run as configured.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.csms import Behaviour, Csms
from everpy.testing import Recorder, run_system

from .sil import sil_ocpp_config
from .station import WAIT_S, Station

HOURS = 24  # after the warm-up hour
GROWTH_BOUND = 200_000  # bytes from after the warm-up hour to after the day
TREND_BOUND = 5_000  # bytes per hour, least-squares slope of the hourly samples (120 KB a day)
PERIPHERY_S = 300.0
STEP_S = 300.0
KEYS = {"MeterValueSampleInterval": "60", "HeartbeatInterval": "300",
        "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"}
NOT_COUNTED = (tracemalloc.Filter(False, tracemalloc.__file__),)


@asynccontextmanager
async def soak_station(tmp_path: Path, csms: Csms, clock: FakeClock) -> AsyncIterator[Station]:
    """sil_station with the periphery's 1 s ticks slowed down (its limits and timeouts scaled alike)."""
    config = sil_ocpp_config(
        tmp_path, csms.url, car_script=None, swipe=False, keys=KEYS, board={"meter_interval_s": PERIPHERY_S},
        evse={"energy_request_interval_s": PERIPHERY_S, "powermeter_timeout_s": 6 * PERIPHERY_S})
    config["active_modules"]["energy_manager"]["config_module"] = {
        "update_interval": PERIPHERY_S, "limits_valid_for_s": int(6 * PERIPHERY_S),
        "request_timeout_s": 3 * PERIPHERY_S}
    async with run_system(config, clock=clock) as running:
        station = Station(running, csms)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
        yield station


class Day:
    def __init__(self, station: Station, csms: Csms, clock: FakeClock) -> None:
        self.station, self.csms, self.clock = station, csms, clock
        self.recorders: list[Recorder] = [station.evse_events, station.transactions]

    async def advance(self, seconds: float, step: float = STEP_S) -> None:
        """Fake time in steps; each ends with a bus round trip, so what the timers caused has settled."""
        remaining = seconds
        while remaining > 1e-9:
            delta = min(step, remaining)
            await self.clock.advance(delta)
            await self.station.system.flush()
            remaining -= delta

    async def until(self, what: str, predicate: Callable[[], Any], step: float = 1.0, limit_s: float = 120.0) -> None:
        spent = 0.0
        while not predicate():
            assert spent < limit_s, f"{what}: not within {limit_s} s of fake time"
            await self.advance(step, step)
            spent += step

    def since(self, mark: int, action: str) -> list[Any]:
        return [r for r in self.csms.received[mark:] if r.action == action]

    def online(self) -> bool:
        return "CP1" in self.csms.sessions and self.station.ocpp.cp.session.online

    async def configure(self, key: str, value: str) -> None:
        assert (await self.station.call("ChangeConfiguration", key=key, value=value))["status"] == "Accepted"

    async def reconnected(self, connections: int) -> None:
        await self.until("reconnected", lambda: self.csms.connections > connections and self.online(), step=0.5)

    async def hour(self) -> None:
        """One hour of fake time."""
        started, mark = self.clock.monotonic(), len(self.csms.received)
        await self.station.plug_in()
        await self.station.swipe("TAG1")
        await self.until("charging", lambda: any(r.payload["status"] == "Charging"
                                                 for r in self.since(mark, "StatusNotification")))
        await self.advance(10 * 60)
        connections = self.csms.connections
        await self.csms.disconnect("CP1")  # while charging: samples are queued, then delivered
        await self.reconnected(connections)
        await self.advance(10 * 60)
        await self.configure("MeterValueSampleInterval", "30")
        await self.advance(5 * 60)
        await self.configure("MeterValueSampleInterval", "60")
        await self.advance(15 * 60)
        await self.station.unplug()
        await self.until("stopped", lambda: self.since(mark, "StopTransaction")
                         and self.station.ocpp.store.queue_length() == 0)
        heartbeat = await self.station.config_key("HeartbeatInterval")
        await self.configure("HeartbeatInterval", "240" if heartbeat == "300" else "300")
        await self.advance(5 * 60)
        connections = self.csms.connections
        await self.csms.stop()  # the CSMS restarts: connects are refused meanwhile
        await self.advance(5.0, 0.5)
        await self.csms.start()
        await self.reconnected(connections)
        await self.advance(started + 3600 - self.clock.monotonic())
        self.check_hour(mark)

    def check_hour(self, mark: int) -> None:
        """The hour did what it should: ~35 samples at 60 s and 10 at 30 s, all delivered, idle, online."""
        samples = {r.unique_id for r in self.since(mark, "MeterValues") if "transactionId" in r.payload}
        assert 40 <= len(samples) <= 50, len(samples)
        assert len(self.since(mark, "StartTransaction")) == len(self.since(mark, "StopTransaction")) == 1
        assert self.since(mark, "Heartbeat")
        assert self.station.ocpp.store.queue_length() == 0
        assert self.online()

    def forget_records(self) -> None:
        """Empty what the test keeps on purpose: every frame the CSMS saw, every value a recorder got, the
        log records pytest captured; """
        for handler in logging.getLogger().handlers:  # pytest's LogCaptureHandlers (caplog, report)
            if hasattr(handler, "records") and callable(getattr(handler, "reset", None)):
                handler.reset()
        self.csms.forget()  # everything was delivered: no resend needs its answer
        for recorder in self.recorders:
            recorder.forget()


class Flatten(logging.Filter):
    """A record keeps its text, not its arguments (as logging.handlers.QueueHandler.prepare does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


@contextmanager
def flattened_log_records() -> Iterator[None]:
    flatten, handlers = Flatten(), list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(flatten)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(flatten)


@contextmanager
def tracing() -> Iterator[None]:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def python_memory() -> tuple[int, tracemalloc.Snapshot]:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(NOT_COUNTED)
    return sum(stat.size for stat in snapshot.statistics("filename")), snapshot


def slope(values: list[int]) -> float:
    """Least-squares growth per sample."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / sum((x - mean_x) ** 2 for x in range(n))


async def test_a_simulated_day_keeps_memory_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    with flattened_log_records():
        async with Csms(behaviour=Behaviour(boot_interval=300)) as csms:
            async with soak_station(tmp_path, csms, clock) as station:
                day = Day(station, csms, clock)
                with tracing():
                    await day.hour()  # warm-up: caches, validators, the first of every kind of event
                    day.forget_records()
                    warm, before = python_memory()
                    tasks, timers = len(asyncio.all_tasks()), clock.pending_timers
                    sizes = []
                    for _ in range(HOURS):
                        await day.hour()
                        day.forget_records()
                        sizes.append(python_memory()[0])
                    after = python_memory()[1]
                    # nothing piles up per session, sample, timer or reconnect: tasks and timers stay level
                    assert len(asyncio.all_tasks()) <= tasks + 2, (tasks, asyncio.all_tasks())
                    assert clock.pending_timers <= timers + 2, (timers, clock.pending_timers)
    report = (f"after warm-up {warm / 1000:.0f} KB; after each hour "
              + ", ".join(f"{(size - warm) / 1000:+.0f}" for size in sizes) + " KB; most grown:\n"
              + "\n".join(map(str, after.compare_to(before, "lineno")[:12])))
    assert sizes[-1] - warm < GROWTH_BOUND, report
    assert slope(sizes) < TREND_BOUND, report
