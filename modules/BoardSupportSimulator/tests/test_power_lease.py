"""The simulated board keeps its relays closed only while a power lease is valid, on real time.

BoardSupportSimulator alone on the real bus, with this test in the manager's seat: it renews the lease
(or stops renewing) and allows power itself. The module clock is a FakeClock that the tests jump by
hours: the lease must not notice, as it watches real liveness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from everpy_modules.BoardSupportSimulator.board_simulator import BoardSupportSimulator

from everpy.core.clock import FakeClock
from everpy.core.config_errors import ConfigError
from everpy.core.exceptions import CommandError
from everpy.testing import Recorder, RunningSystem, run_system

WAIT_S = 15.0  # generous: the two cores are shared with other suites
SHORT_LEASE_MS = 500  # the shortest the interface allows: expiry tests stay fast
LONG_LEASE_MS = 60_000
LEASE_LOST = "evse_board_support/CommunicationFault"


class Board:
    """The simulator on the bus, a fake clock, and recorders of what the manager side hears."""

    def __init__(self, system: RunningSystem, clock: FakeClock) -> None:
        self.system = system
        self.clock = clock
        self.module = system.instance("board", BoardSupportSimulator)
        self.events = system.watch("board", "board_support", "event")
        self.errors = system.watch_errors("board", "board_support")

    async def renew(self, valid_for_ms: int) -> None:
        await self.system.call("board", "board_support", "renew_power_lease", valid_for_ms=valid_for_ms)

    async def allow(self, allowed: bool) -> None:
        reason = "FullPowerCharging" if allowed else "PowerOff"
        await self.system.call("board", "board_support", "allow_power_on",
                               value={"allow_power_on": allowed, "reason": reason})

    async def car(self, cp_state: str) -> None:
        await self.system.call("board", "ev_board_support", "set_ac_max_current", current=16.0)
        await self.system.call("board", "ev_board_support", "set_cp_state", cp_state=cp_state)

    async def relay_event(self, want: str) -> dict[str, Any]:
        return await self.events.wait_for(lambda e: e["event"] == want, WAIT_S)

    async def heard(self) -> list[str]:
        """Every board event since the last look: a reply comes after what the module published before it
        (one connection, in order). The meter's stop_transaction is the call without side effects."""
        await self.system.call("board", "powermeter", "stop_transaction", transaction_id="")
        return [e["event"] for e in self.events.drain()]


@pytest.fixture
async def board(request: pytest.FixtureRequest) -> AsyncIterator[Board]:
    config = getattr(request, "param", {})
    clock = FakeClock()
    async with run_system({"active_modules": {"board": {
        "module": "BoardSupportSimulator", "config_module": {"state_file": "", **config},
    }}}, clock=clock) as system:
        handles = Board(system, clock)
        await system.flush()
        yield handles


async def charging(board: Board, lease_ms: int) -> None:
    """Lease first, then permission, as a manager does; the car asks for power; the relays close."""
    await board.renew(lease_ms)
    await board.car("C")
    await board.allow(True)
    await board.relay_event("PowerOn")


def lease_errors(recorder: Recorder) -> list[tuple[str, str, str]]:
    return [(e["type"], e["sub_type"], e["state"]) for e in recorder.drain() if e["type"] == LEASE_LOST]


async def test_permission_without_a_lease_is_remembered_and_closes_nothing(
    board: Board, caplog: pytest.LogCaptureFixture,
) -> None:
    await board.car("C")
    with caplog.at_level(logging.WARNING, logger="everpy.board"):
        await board.allow(True)
    assert "PowerOn" not in await board.heard()
    assert not board.module.port.relays_closed()
    assert "allow_power_on(true) without a valid power lease" in caplog.text
    await board.renew(LONG_LEASE_MS)  # the lease arrives: the remembered permission takes effect
    await board.relay_event("PowerOn")


async def test_an_expired_lease_opens_the_relays_and_reports_it(
    board: Board, caplog: pytest.LogCaptureFixture,
) -> None:
    await charging(board, SHORT_LEASE_MS)
    renewed_at = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="everpy.board"):
        await board.relay_event("PowerOff")  # nobody renews
        opened_after_s = time.monotonic() - renewed_at
        raised = await board.errors.wait_for(lambda e: e["type"] == LEASE_LOST, WAIT_S)
    assert opened_after_s >= SHORT_LEASE_MS / 1000 - 0.05  # not before the lease ran out
    assert raised["state"] == "Active" and raised["sub_type"] == "PowerLease"
    assert f"no renewal within {SHORT_LEASE_MS} ms" in raised["message"]
    assert any(r.levelno == logging.WARNING and "power lease expired" in r.getMessage()
               and "relays opened" in r.getMessage() for r in caplog.records)
    port = board.module.port
    assert not port.relays_closed() and not port.power_allowed  # the permission is forgotten

    await board.renew(LONG_LEASE_MS)  # the manager is back: the renewal clears the error...
    cleared = await board.errors.wait_for(lambda e: e["type"] == LEASE_LOST, WAIT_S)
    assert cleared["state"] == "ClearedByModule" and cleared["sub_type"] == "PowerLease"
    assert "PowerOn" not in await board.heard()  # ...but closes nothing on its own
    await board.allow(True)
    await board.relay_event("PowerOn")
    assert lease_errors(board.errors) == []  # raised once, cleared once


async def test_renewals_keep_the_relays_closed_past_the_lease(board: Board) -> None:
    await charging(board, SHORT_LEASE_MS)
    started = time.monotonic()
    while time.monotonic() - started < 4 * SHORT_LEASE_MS / 1000:
        # The renewal pace of a manager (a third of the lease), not a synchronisation.
        await asyncio.sleep(SHORT_LEASE_MS / 3000)
        await board.renew(SHORT_LEASE_MS)
    assert "PowerOff" not in await board.heard()
    assert board.module.port.relays_closed()
    assert lease_errors(board.errors) == []


async def test_fake_clock_jumps_do_not_touch_the_lease(board: Board) -> None:
    await charging(board, LONG_LEASE_MS)
    readings = board.system.watch("board", "powermeter", "powermeter")
    await board.system.flush()
    await board.clock.advance(3 * 3600)  # hours of module time within a second of real time
    reading = await readings.wait_for(lambda r: r["energy_Wh_import"]["total"] > 0, WAIT_S)
    assert reading["power_W"]["total"] > 0  # still charging
    assert "PowerOff" not in await board.heard()
    assert board.module.power_lease.remaining_s() > 0


async def test_a_lease_ending_after_power_was_withdrawn_is_no_fault(board: Board) -> None:
    await charging(board, SHORT_LEASE_MS)
    await board.allow(False)
    await board.relay_event("PowerOff")
    lease = board.module.power_lease
    await asyncio.wait_for(_until_invalid(board), WAIT_S)
    assert not lease.valid
    assert await board.heard() == []
    assert lease_errors(board.errors) == []
    assert not board.module.power_lease_lost


async def test_expiry_while_allowed_but_car_not_asking_withdraws_the_permission(board: Board) -> None:
    await board.renew(SHORT_LEASE_MS)
    await board.car("B")
    await board.allow(True)
    await board.relay_event("PowerOff")  # the relays were open, the permission is gone all the same
    raised = await board.errors.wait_for(lambda e: e["type"] == LEASE_LOST, WAIT_S)
    assert raised["state"] == "Active"
    await board.renew(LONG_LEASE_MS)
    await board.car("C")  # the car asks now: no permission any more
    assert "PowerOn" not in await board.heard()


@pytest.mark.parametrize("board", [{"max_power_lease_ms": 2000}], indirect=True)
async def test_a_lease_longer_than_the_board_allows_is_refused(board: Board) -> None:
    await board.renew(1000)
    with pytest.raises(CommandError, match="max_power_lease_ms 2000"):
        await board.renew(2001)
    lease = board.module.power_lease
    assert lease.valid and lease.last_valid_for_ms == 1000  # the running lease stays as it was
    with pytest.raises(CommandError):
        await board.renew(100)  # below the interface's minimum: refused before the handler
    assert lease.last_valid_for_ms == 1000


async def test_out_of_range_cap_is_a_config_error() -> None:
    config = {"active_modules": {"board": {"module": "BoardSupportSimulator",
                                           "config_module": {"max_power_lease_ms": 100}}}}
    with pytest.raises(ConfigError, match="max_power_lease_ms"):
        async with run_system(config):
            pass


async def _until_invalid(board: Board) -> None:
    # The expiry is a timer inside this loop: each pass lets it run, the bound is the caller's.
    while board.module.power_lease.valid:
        await asyncio.sleep(0.01)
