"""Var latency from a satellite board to a subscriber on the main board, 8 satellites connected at once.

Nine boards run as separate processes, each with its own mosquitto (as on a real multi-board charger):
8 satellites (simulated EVSE + SatelliteAgent) and a main board with 8 SatelliteControllers. A probe on a
satellite's bus publishes `evse_id` as that satellite's EvseManager would; a probe on the main board's bus
waits for it on the controller's `evse_manager` implementation. Path: satellite MQTT -> agent -> RPC
notification -> controller -> main MQTT. Floor: the same publish -> receive over one board's MQTT.

    python bench/bench_satellite.py [--samples 200] [--satellites 8]

Also: a command (get_evse) from the main board's bus through the controller to the satellite, against the
same command on the satellite's own bus.

Target: satellite -> main p50 <= 5 ms (remotechargeport polls every 25 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The board harness of the multi-board tests starts the processes; the bench reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "multiboard"))

from boards import Board, controller_entry, main_config, new_serial, satellite_config


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def one_hop(board: Board, samples: int) -> list[float]:
    """Floor: publish -> receive on a single board's MQTT (what any local subscriber pays)."""
    probe = board.probe
    seen = probe.watch("evse", "evse", "evse_id")
    await probe.flush()
    out = []
    for n in range(samples):
        value = f"floor-{n}"
        start = time.perf_counter()
        await probe.publish_var("evse", "evse", "evse_id", value)
        await seen.wait_for(lambda v, value=value: v == value, timeout=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def satellite_to_main(sats: list[Board], main: Board, samples: int, burst: bool) -> list[float]:
    watchers = [main.probe.watch(f"sat{i}", "evse_manager", "evse_id") for i in range(len(sats))]
    await main.probe.flush()
    out: list[float] = []

    async def measure(i: int, n: int) -> None:
        value = f"{'burst' if burst else 'seq'}-{i}-{n}"
        start = time.perf_counter()
        await sats[i].probe.publish_var("evse", "evse", "evse_id", value)
        await watchers[i].wait_for(lambda v, value=value: v == value, timeout=10)
        out.append((time.perf_counter() - start) * 1000)

    for n in range(samples):
        if burst:  # every satellite publishes at the same moment
            await asyncio.gather(*(measure(i, n) for i in range(len(sats))))
        else:
            await measure(n % len(sats), n)
    return out


async def command_round_trips(probe, module_id: str, impl_id: str, samples: int) -> list[float]:
    """get_evse from a probe on a board's bus: local (floor) or through a controller to a satellite."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        await probe.call(module_id, impl_id, "get_evse")
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(samples: int, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="everpy-bench-sat-") as tmp:
        serials = [new_serial() for _ in range(count)]
        sats = [Board(f"sat{i}", satellite_config(s), Path(tmp)) for i, s in enumerate(serials)]
        main = Board("main", main_config({f"sat{i}": controller_entry(s) for i, s in enumerate(serials)}),
                     Path(tmp))
        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(sat.start() for sat in sats))
            t1 = time.perf_counter()
            await main.start()
            t2 = time.perf_counter()
            connected = [await main.probe.call(f"sat{i}", "satellite", "is_connected") for i in range(count)]
            assert all(connected), connected
            results = {
                "local MQTT hop (floor)": await one_hop(sats[0], samples),
                f"satellite -> main, 1 of {count}": await satellite_to_main(sats, main, samples, burst=False),
                f"satellite -> main, {count} at once": await satellite_to_main(sats, main, max(1, samples // count),
                                                                          burst=True),
                "command on the satellite's bus": await command_round_trips(sats[0].probe, "evse", "evse", samples),
                "command main -> satellite": await command_round_trips(main.probe, "sat0", "evse_manager", samples),
            }
        finally:
            await main.close()
            for sat in sats:
                await sat.close()
    var_floor = summary(results["local MQTT hop (floor)"])
    command_floor = summary(results["command on the satellite's bus"])
    floors = {name: command_floor if name.startswith("command") else var_floor for name in results}
    print(f"{count} satellites started in {t1 - t0:.1f} s (parallel); main board ready with all of them "
          f"connected {t2 - t1:.1f} s later")
    print(f"{'path':<32} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10}")
    for name, values in results.items():
        p50, p99 = summary(values)
        floor_p50, floor_p99 = floors[name]
        print(f"{name:<32} {len(values):>5} {p50:>8.2f} {p99:>8.2f} {p50 / floor_p50:>9.2f}x {p99 / floor_p99:>9.2f}x")
    print("(var rows: ratio to the local MQTT hop; command rows: ratio to the same command on the satellite's bus)")
    p50, _ = summary(results[f"satellite -> main, {count} at once"])
    print(f"target p50 <= 5 ms with {count} satellites at once: {'meets' if p50 <= 5 else 'MISSES'} ({p50:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--satellites", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.samples, args.satellites))


if __name__ == "__main__":
    main()
