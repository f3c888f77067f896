"""The SIL charger with OCPP on the real bus, in the test's process, and what a scenario does with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everpy.core.clock import Clock, FakeClock
from everpy.csms import Csms
from everpy.testing import RunningSystem, run_system

from .sil import SilDriver, sil_ocpp_config

WAIT_S = 20.0  # other engineers' suites share the two cores


async def wait_file(path: Path, timeout: float = WAIT_S) -> None:
    """Bounded wait for a file another process or module creates (polled: there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.05)


async def advance(station: Station, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Move fake time in steps; bus traffic each step causes settles before the next."""
    remaining = seconds
    while remaining > 1e-9:
        delta = min(step, remaining)
        await clock.advance(delta)
        await station.system.flush()
        remaining -= delta


@dataclass
class Address:
    """A CSMS known only by its URL: an independent peer in another process, or nothing listening."""

    url: str


class Station(SilDriver):
    def __init__(self, system: RunningSystem, csms: Any) -> None:
        super().__init__(system)
        self.csms = csms
        self.ocpp = system.instances["ocpp"]
        self.transactions = system.watch("ocpp", "main", "ocpp_transaction_event")

    async def wait_event(self, name: str) -> dict[str, Any]:
        return await self.evse_events.wait_for(lambda e: e["event"] == name, WAIT_S)

    async def charging(self, token: str = "TAG1") -> int:
        """Plug in, swipe, wait for Charging at the CSMS; returns the transaction id."""
        mark = len(self.csms.received)
        await self.plug_in()
        await self.swipe(token)
        await self.csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", WAIT_S, after=mark)
        start = await self.csms.wait_for("StartTransaction", after=mark)
        return int(self.csms.answer_to(start)["transactionId"])

    async def status(self, status: str, after: int = 0, connector: int = 1) -> dict[str, Any]:
        found = await self.csms.wait_for(
            "StatusNotification", lambda p: p["status"] == status and p["connectorId"] == connector, WAIT_S,
            after=after)
        return found.payload

    async def call(self, action: str, **payload: Any) -> dict[str, Any]:
        """A CSMS request; returns the answer payload as the station sent it (camelCase)."""
        await self.csms.call_action("CP1", action, payload)
        return self.csms.last_answer("CP1", action)

    async def config_key(self, name: str) -> str | None:
        result = await self.system.call("ocpp", "main", "get_configuration", keys=[name])
        return result["configuration_key"][0].get("value") if result["configuration_key"] else None


@asynccontextmanager
async def sil_station(tmp_path: Path, csms: Csms | Address, keys: dict[str, str] | None = None,
                      clock: Clock | None = None, ocpp: dict[str, Any] | None = None,
                      system: dict[str, Any] | None = None, evse: dict[str, Any] | None = None,
                      board: dict[str, Any] | None = None, wait_boot: bool = True) -> AsyncIterator[Station]:
    config = sil_ocpp_config(tmp_path, csms.url, car_script=None, swipe=False, keys=keys, ocpp=ocpp, system=system,
                             evse=evse, board=board)
    async with run_system(config, clock=clock) as running:
        station = Station(running, csms)
        if wait_boot:
            await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
        yield station
