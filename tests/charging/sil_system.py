"""A complete simulated charging point on the real bus, and the bounded waits the session tests use."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.testing import Recorder, RunningSystem, run_system

WAIT_S = 15.0  # generous: other engineers run their suites on the same two cores


def conn(module_id: str, impl_id: str) -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": impl_id}


def sil_config(
    evse: dict[str, Any] | None = None,
    board: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    with_energy_manager: bool = True,
) -> dict[str, Any]:
    """EvseManager + simulated board/meter + car + RFID reader + Auth (+ EnergyManager behind a 32 A fuse).

    Energy limits are made valid for long so that advancing the fake clock by minutes in one step
    does not expire them while bus messages are still on their way (limit expiry has its own test).
    """
    modules: dict[str, Any] = {
        "evse": {
            "module": "EvseManager",
            "config_module": {"status_interval_s": 0, "energy_management": True, **(evse or {})},
            "connections": {"bsp": [conn("board", "board_support")], "powermeter": [conn("board", "powermeter")]},
        },
        # no register file: each test's meter starts at its configured reading, nothing left in run/
        "board": {"module": "BoardSupportSimulator", "config_module": {"state_file": "", **(board or {})}},
        "car": {"module": "EvSimulator", "connections": {"ev_board_support": [conn("board", "ev_board_support")]}},
        "rfid": {"module": "TokenProviderSimulator", "connections": {"evse": [conn("evse", "evse")]}},
        "auth": {
            "module": "Auth",
            "config_module": {"connection_timeout": 10, **(auth or {})},
            "connections": {
                "token_provider": [conn("rfid", "main"), conn("evse", "token_provider")],
                "token_validator": [conn("rfid", "validator")],
                "evse_manager": [conn("evse", "evse")],
            },
        },
    }
    if with_energy_manager:
        modules["grid"] = {
            "module": "EnergyNode",
            "config_module": {"fuse_limit_A": 32, "child_request_timeout_s": 3600},
            "connections": {"energy_consumer": [conn("evse", "energy_grid")]},
        }
        modules["energy_manager"] = {
            "module": "EnergyManager",
            "config_module": {"limits_valid_for_s": 3600, "request_timeout_s": 3600},
            "connections": {"energy_trunk": [conn("grid", "energy_grid")]},
        }
    return {"active_modules": modules}


async def until(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    """Wait (bounded) for a condition on in-process module state."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.005)


class Sil:
    """Handles on a running SIL system: the car, the RFID reader, and recorders of what the EVSE says."""

    def __init__(self, system: RunningSystem, clock: FakeClock) -> None:
        self.system = system
        self.clock = clock
        self.evse = system.instances["evse"]
        self.events = system.watch("evse", "evse", "session_event")
        self.board_events = system.watch("board", "board_support", "event")
        self.car_sees = system.watch("board", "ev_board_support", "bsp_measurement")
        self.evse_errors = system.watch_errors("evse", "evse")
        self.board_errors = system.watch_errors("board", "board_support")
        self.auth_status = system.watch("auth", "main", "token_validation_status")

    async def car(self, script: str) -> None:
        assert await self.system.call("car", "main", "execute_charging_session", value=script) is True

    async def swipe(self, token: str = "CARD1") -> None:
        await self.system.call("rfid", "control", "present_token", token=token, authorization_type="")

    async def expect(self, *names: str, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        """The next session events are exactly `names`, in order."""
        got = []
        for name in names:
            event = await self.events.next(timeout)
            got.append(event)
            assert event["event"] == name, f"expected {list(names)}, got {[e['event'] for e in got]}"
        return got

    async def skip_to(self, name: str, timeout: float = WAIT_S) -> dict[str, Any]:
        return await self.events.wait_for(lambda e: e["event"] == name, timeout)

    async def relays(self, closed: bool) -> None:
        want = "PowerOn" if closed else "PowerOff"
        await self.board_events.wait_for(lambda e: e["event"] == want, WAIT_S)

    async def charging(self, script_tail: str = "sleep 3600") -> None:
        """Plug in, swipe, charge at up to 16 A on three phases until the relays are closed."""
        await self.car(f"iec_wait_pwr_ready;draw_power_regulated 16,3;{script_tail}")
        await self.expect("SessionStarted", "AuthRequired")
        await self.swipe()
        await self.skip_to("ChargingStarted")
        await self.relays(True)

    async def advance(self, seconds: float, step: float = 2.0) -> None:
        """Move the fake clock in steps, letting the bus traffic caused by each step arrive first.

        Without this, fake time runs ahead of messages still on their way (a meter reading of t=4
        arriving at t=12 looks like a silent meter).
        """
        remaining = seconds
        while remaining > 1e-9:
            delta = min(step, remaining)
            await self.clock.advance(delta)
            await self.settle()
            remaining -= delta

    async def settle(self, rounds: int = 2) -> None:
        """Wait until messages the in-process modules published so far came back to them.

        One client (the runtime's) carries all in-process modules, and the broker keeps each
        client's messages in order: a marker sent by the runtime and echoed back by the probe
        arrives after everything the runtime published before it. Each round covers one more
        hop of reactions.
        """
        bus = self.system.runtime.host.bus
        for _ in range(rounds):
            out_topic = f"{self.system.topics.prefix}evse-test/{uuid.uuid4().hex}"
            back_topic = out_topic + "/back"
            back = asyncio.Event()
            echo = self.system.bus.subscribe(
                out_topic, lambda t, p, back_topic=back_topic: self.system.publish_raw(back_topic, p)
            )
            await self.system.flush()
            sub = bus.subscribe(back_topic, lambda t, p, back=back: back.set())
            bus.publish(out_topic, b"1")
            await asyncio.wait_for(back.wait(), WAIT_S)
            bus.unsubscribe(sub)
            self.system.bus.unsubscribe(echo)


def error_types(recorder: Recorder) -> list[tuple[str, str]]:
    return [(e["type"], e["state"]) for e in recorder.drain()]


@asynccontextmanager
async def sil(run_config: dict[str, Any] | Path | None = None, **config: Any) -> AsyncIterator[Sil]:
    """A running SIL system on a FakeClock: `run_config` as given, else sil_config(**config)."""
    clock = FakeClock()
    async with run_system(run_config or sil_config(**config), clock=clock) as system:
        handles = Sil(system, clock)
        await until(lambda: handles.evse.charger.started, what="EVSE started")
        # A reply from the EVSE comes after everything it published before (one connection, in
        # order), so after it the recorders hold the start-up messages, which are then dropped.
        await system.call("evse", "evse", "get_evse")
        for recorder in (handles.events, handles.board_events, handles.car_sees, handles.evse_errors,
                         handles.board_errors, handles.auth_status):
            recorder.drain()
        yield handles
