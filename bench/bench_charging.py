"""Charging benchmarks: pilot change -> relay command through the bus, and CPU of an idle session.

1. Relay reaction (in-process system, real clock, private mosquitto): the simulated board sees the
   car go B->C (or C->B), publishes the pilot event; EvseManager decides and sends allow_power_on
   back to the board. Measured from the board's handler of the car's pilot change to the board's
   handler of allow_power_on: one var hop plus one command hop through mosquitto. Floor: a plain
   command round trip (request + response = also two hops) from a client to the same board.
   IEC 61851-1 allows 3 s for closing after B->C and 100 ms for opening after C->B.

2. CPU (separate `everpy run` process, real clock): the SIL system with a car that charges at 16 A
   forever (meter every 1 s, energy requests every 1 s, status line every 5 s). CPU seconds of the
   everpy process over the window, as % of one core; target < 2 %. Floor: `everpy run` with one
   idle Example module, same window.

Run: `python bench/bench_charging.py [--cycles N] [--window S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from everpy.testing import run_system

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.charging.sil_system import sil_config  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ 1. relay reaction
async def relay_reaction(cycles: int) -> dict[str, list[float]]:
    config = sil_config(evse={"pwm_min_change_interval_s": 0})
    async with run_system(config) as system:
        board = system.instances["board"]
        pilot_changed_at: list[float] = []
        relay_commands: list[tuple[float, bool]] = []
        got_command = asyncio.Event()

        original_set_cp_state, original_allow = board.set_cp_state, board.allow_power_on

        def set_cp_state(cp_state: str) -> None:
            pilot_changed_at.append(time.perf_counter())
            original_set_cp_state(cp_state)

        def allow_power_on(value: dict[str, Any]) -> None:
            relay_commands.append((time.perf_counter(), value["allow_power_on"]))
            original_allow(value)
            got_command.set()

        board.set_cp_state, board.allow_power_on = set_cp_state, allow_power_on
        events = system.watch("evse", "evse", "session_event")

        async def car(state: str, expect_allow: bool | None) -> float | None:
            got_command.clear()
            relay_commands.clear()
            await system.call("board", "ev_board_support", "set_cp_state", cp_state=state)
            if expect_allow is None:
                return None
            while not any(allow == expect_allow for _, allow in relay_commands):
                await asyncio.wait_for(got_command.wait(), 10)
                got_command.clear()
            at = next(t for t, allow in relay_commands if allow == expect_allow)
            return at - pilot_changed_at[-1]

        await system.call("board", "ev_board_support", "set_ac_max_current", current=16)
        await car("B", None)
        await events.wait_for(lambda e: e["event"] == "AuthRequired", 10)
        await system.call("rfid", "control", "present_token", token="BENCH", authorization_type="")
        await events.wait_for(lambda e: e["event"] == "PrepareCharging", 10)
        await system.call("evse", "evse", "get_evse")  # barrier: PWM is on once this answers

        close, open_ = [], []
        for _ in range(cycles):
            close.append(await car("C", True))
            open_.append(await car("B", False))

        floor = []
        for _ in range(cycles):
            started = time.perf_counter()
            await system.call("board", "board_support", "ac_set_overcurrent_limit_A", value=16)
            floor.append(time.perf_counter() - started)
    return {"close": close, "open": open_, "floor": floor}  # type: ignore[dict-item]


# ------------------------------------------------------------------ 2. CPU of an idle session
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_and_measure(config: dict[str, Any], ready_marker: str, window: float) -> float:
    """Start `everpy run config`, wait for ready_marker in its log, return CPU % over `window`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        log_path = Path(tmp) / "log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "everpy.cli", "run", str(path)],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while ready_marker not in log_path.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{ready_marker!r} not seen:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            time.sleep(1)  # let start-up work finish before the window opens
            cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            cpu = cpu_seconds(proc.pid) - cpu_before
            return 100 * cpu / (time.monotonic() - wall_before)
        finally:
            proc.terminate()
            proc.wait(10)


def charging_config() -> dict[str, Any]:
    config = sil_config(evse={"status_interval_s": 5})
    modules = config["active_modules"]
    modules["car"]["config_module"] = {
        "auto_exec": True,
        "auto_exec_commands": "iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 1000000",
    }
    modules["rfid"]["config_module"] = {"present_on_auth_required": True, "auth_required_delay_s": 0.5}
    return config


def idle_config() -> dict[str, Any]:
    return {"active_modules": {"example": {"module": "Example"}}}


# ------------------------------------------------------------------ table
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300, help="B->C->B cycles for the latency part")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of CPU measurement")
    args = parser.parse_args()

    print(f"\n## Relay reaction through the bus ({args.cycles} cycles)\n")
    print(f"| {'measurement':<66} | {'p50 ms':>8} | {'p99 ms':>8} | {'p50 / floor':>11} |")
    print(f"|{'-' * 68}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    latencies = asyncio.run(relay_reaction(args.cycles))
    floor_p50 = percentile(latencies["floor"], 0.5)
    rows = [
        ("floor: command round trip client -> board -> client", latencies["floor"]),
        ("B->C at board -> allow_power_on(true) at board", latencies["close"]),
        ("C->B at board -> allow_power_on(false) at board", latencies["open"]),
    ]
    for name, values in rows:
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"| {name:<66} | {p50 * 1000:8.2f} | {p99 * 1000:8.2f} | {p50 / floor_p50:10.2f}x |")

    print(f"\n## CPU, {args.window:g} s window (% of one core, everpy process; mosquitto not included)\n")
    idle = run_and_measure(idle_config(), "up and running", args.window)
    charging = run_and_measure(charging_config(), "ChargingStarted", args.window)
    print(f"| {'system':<52} | {'CPU %':>8} | {'vs floor':>9} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 11}|")
    print(f"| {'floor: everpy run, one idle Example module':<52} | {idle:8.2f} | {1:8.2f}x |")
    ratio = charging / idle if idle > 0 else float("inf")
    print(f"| {'SIL, one session charging at 16 A (7 modules)':<52} | {charging:8.2f} | {ratio:8.2f}x |")
    print(f"\ntarget: charging session < 2 % of one core -> {'met' if charging < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
