"""The simulated meter's energy register survives a restart of the stack, as a real meter's does.

Real runs of BoardSupportSimulator on the bus (fake clock for the energy), stopped and started again
with the same state_file; and state files that cannot be a reading, which must never stop the module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from everpy_modules.BoardSupportSimulator.board_simulator import BoardSupportSimulator
from everpy_modules.BoardSupportSimulator.register_file import (
    BadRegisterFile,
    read_register,
    write_register,
)

from everpy.core.clock import FakeClock
from everpy.testing import Recorder, RunningSystem, run_system

WAIT_S = 15.0  # generous: the two cores are shared with other suites
SAVE_EVERY_WH = 100.0
CHARGING_W = 16 * 3 * 230  # 16 A on three phases at 230 V


def board_config(state_file: Path, **extra: Any) -> dict[str, Any]:
    config = {"state_file": str(state_file), "state_save_interval_Wh": SAVE_EVERY_WH, "meter_interval_s": 1, **extra}
    return {"active_modules": {"board": {"module": "BoardSupportSimulator", "config_module": config}}}


def total(reading: dict[str, Any]) -> float:
    return reading["energy_Wh_import"]["total"]


def kept_total(path: Path) -> float:
    return sum(read_register(path))


async def relays(system: RunningSystem, closed: bool) -> None:
    events = system.watch("board", "board_support", "event")
    await system.flush()
    if closed:
        # As a manager does: a lease first (real time: long enough for the whole test), then permission.
        await system.call("board", "board_support", "renew_power_lease", valid_for_ms=60_000)
        await system.call("board", "ev_board_support", "set_ac_max_current", current=16.0)
        await system.call("board", "ev_board_support", "set_cp_state", cp_state="C")
    reason = "FullPowerCharging" if closed else "PowerOff"
    await system.call("board", "board_support", "allow_power_on", value={"allow_power_on": closed, "reason": reason})
    want = "PowerOn" if closed else "PowerOff"
    await events.wait_for(lambda e: e["event"] == want, WAIT_S)


async def charge(system: RunningSystem, clock: FakeClock, readings: Recorder, seconds: int) -> dict[str, Any]:
    """Close the relays, let `seconds` of fake time pass one meter interval at a time, return the last reading."""
    await relays(system, closed=True)
    start = clock.monotonic()
    for _ in range(seconds):
        await clock.advance(1)
    # the reading of the last step, whatever bus latency: it is the first with the final sample time
    expected_wh = (clock.monotonic() - start) * CHARGING_W / 3600
    return await readings.wait_for(lambda r: total(r) >= expected_wh - 1e-3, WAIT_S)


async def first_reading(system: RunningSystem, clock: FakeClock) -> dict[str, Any]:
    # Subscribed after start-up: the reading published in ready() may be gone, the next one is not.
    readings = system.watch("board", "powermeter", "powermeter")
    await system.flush()
    await clock.advance(1)
    return await readings.next(WAIT_S)


async def test_register_continues_after_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "run" / "meter.json"  # its folder does not exist yet: created on the first save
    config = board_config(state_file)
    clock = FakeClock()
    async with run_system(config, clock=clock) as system:
        assert total(await first_reading(system, clock)) == 0
        assert not state_file.exists()  # nothing counted, nothing written
        readings = system.watch("board", "powermeter", "powermeter")
        await system.flush()
        charged = total(await charge(system, clock, readings, seconds=60))
        assert charged == pytest.approx(60 * CHARGING_W / 3600, abs=1e-3)  # 184 Wh
        # While charging, the file lags behind by less than one save interval (what a crash would lose).
        assert charged - SAVE_EVERY_WH < kept_total(state_file) <= charged
        await clock.advance(30)
        await relays(system, closed=False)
        await clock.advance(1)  # the next reading, now without power
        # Relays open: the register stands still and the file has it exactly.
        at_stop = total(await readings.wait_for(lambda r: r["power_W"]["total"] == 0, WAIT_S))
        assert at_stop == pytest.approx(90 * CHARGING_W / 3600, abs=1e-3)
        assert kept_total(state_file) == pytest.approx(at_stop, abs=1e-3)
        await relays(system, closed=True)
        await clock.advance(5)  # charging when the stack stops: only shutdown() can keep these 5 s
        at_shutdown = system.instance("board", BoardSupportSimulator).port.energy_wh

    clock = FakeClock()  # a new process: its clock starts over, the register does not
    async with run_system(config, clock=clock) as system:
        after = total(await first_reading(system, clock))
    assert after >= at_stop
    assert after == pytest.approx(at_shutdown, abs=1e-3)
    assert at_shutdown == pytest.approx(95 * CHARGING_W / 3600, abs=1e-3)


async def test_per_phase_registers_are_kept(tmp_path: Path) -> None:
    state_file = tmp_path / "meter.json"
    write_register(state_file, [1000.0, 2000.0, 3000.5])
    clock = FakeClock()
    async with run_system(board_config(state_file), clock=clock) as system:
        reading = await first_reading(system, clock)
    assert reading["energy_Wh_import"] == {"total": 6000.5, "L1": 1000.0, "L2": 2000.0, "L3": 3000.5}


async def test_initial_energy_applies_when_above_the_kept_register(tmp_path: Path) -> None:
    state_file = tmp_path / "meter.json"
    write_register(state_file, [10.0, 10.0, 10.0])
    clock = FakeClock()
    async with run_system(board_config(state_file, initial_energy_Wh=3000), clock=clock) as system:
        assert total(await first_reading(system, clock)) == 3000
    write_register(state_file, [2000.0, 2000.0, 2000.0])
    clock = FakeClock()
    async with run_system(board_config(state_file, initial_energy_Wh=3000), clock=clock) as system:
        assert total(await first_reading(system, clock)) == 6000  # the register never goes back


async def test_empty_state_file_keeps_nothing(tmp_path: Path) -> None:
    config = board_config(tmp_path / "unused.json")
    config["active_modules"]["board"]["config_module"]["state_file"] = ""
    clock = FakeClock()
    async with run_system(config, clock=clock) as system:
        readings = system.watch("board", "powermeter", "powermeter")
        await system.flush()
        assert total(await charge(system, clock, readings, seconds=60)) > SAVE_EVERY_WH
    assert list(tmp_path.iterdir()) == []
    clock = FakeClock()
    async with run_system(config, clock=clock) as system:
        assert total(await first_reading(system, clock)) == 0


UNUSABLE = {
    "not JSON": b"energy: 12 Wh",
    "binary": b"\xff\xfe\x00garbage",
    "empty": b"",
    "a list": b"[1, 2, 3]",
    "no registers": b'{"energy_Wh_export": {"L1": 1, "L2": 2, "L3": 3}}',
    "a phase missing": b'{"energy_Wh_import": {"L1": 1, "L2": 2}}',
    "a string": b'{"energy_Wh_import": {"L1": "1", "L2": 2, "L3": 3}}',
    "a boolean": b'{"energy_Wh_import": {"L1": true, "L2": 2, "L3": 3}}',
    "negative": b'{"energy_Wh_import": {"L1": -5, "L2": 2, "L3": 3}}',
    "NaN": b'{"energy_Wh_import": {"L1": NaN, "L2": 2, "L3": 3}}',
    "infinite": b'{"energy_Wh_import": {"L1": Infinity, "L2": 2, "L3": 3}}',
    "absurd": b'{"energy_Wh_import": {"L1": 4e11, "L2": 4e11, "L3": 4e11}}',
}


@pytest.mark.parametrize("content", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_content_is_refused_with_a_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "meter.json"
    path.write_bytes(content)
    with pytest.raises(BadRegisterFile):
        read_register(path)


def test_largest_plausible_register_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    write_register(path, [1e12 / 3] * 3)
    assert kept_total(path) == pytest.approx(1e12)
    assert json.loads(path.read_text()) == {"energy_Wh_import": {"L1": 1e12 / 3, "L2": 1e12 / 3, "L3": 1e12 / 3}}


@pytest.mark.parametrize("content", [UNUSABLE["binary"], UNUSABLE["negative"], UNUSABLE["absurd"], None],
                         ids=["garbage", "negative", "absurd", "a directory"])
async def test_module_starts_at_zero_from_an_unusable_file_and_replaces_it(
    tmp_path: Path, content: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    state_file = tmp_path / "meter.json"
    if content is None:
        state_file.mkdir()  # unreadable as a file (and cannot be replaced either)
    else:
        state_file.write_bytes(content)
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="everpy.board"):
        async with run_system(board_config(state_file), clock=clock) as system:
            assert total(await first_reading(system, clock)) == 0
            readings = system.watch("board", "powermeter", "powermeter")
            await system.flush()
            charged = total(await charge(system, clock, readings, seconds=60))
    messages = [r.getMessage() for r in caplog.records if r.name == "everpy.board"]
    assert any(m.startswith(f"ignoring meter register file {state_file}") for m in messages), messages
    if content is None:  # still a directory: saving fails, logged once, and the module kept running
        assert len([m for m in messages if m.startswith("cannot keep the meter register")]) == 1, messages
        assert state_file.is_dir()
    else:
        assert kept_total(state_file) == pytest.approx(charged, abs=1e-3)
    assert [p.name for p in tmp_path.iterdir()] == ["meter.json"]  # no temporary file left behind
