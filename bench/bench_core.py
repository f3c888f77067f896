"""Core benchmarks: command round trip, var throughput, start-up time and memory.

Every figure is compared with a floor measured in the same run on the same mosquitto:
raw paho publish -> reply -> on_message (QoS 0) for latency, raw paho publish -> on_message for
throughput. The bus's login and ACL are measured as the cross-process command round trip on the private
broker the runtime makes, against the same on an open broker (anonymous, no ACL).
Run: `python bench/bench_core.py` (prints a table).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from everpy.core.broker import PrivateBroker
from everpy.core.bus import BrokerAddress
from everpy.testing import run_system

ROUND_TRIPS = 2000
VARS = 20000
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- floors: raw paho --------------------------------------------------------------------------------
def _client(name: str, address: BrokerAddress) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


class RawRoundTrip:
    """Two raw paho clients: one echoes, one measures publish -> echo -> on_message."""

    def __init__(self, address: BrokerAddress) -> None:
        self.server, self.client = _client("floor-server", address), _client("floor-client", address)
        self.got = threading.Event()
        self.server.on_message = lambda c, u, m: self.server.publish("floor/resp", m.payload, qos=0)
        self.client.on_message = lambda c, u, m: self.got.set()
        self.server.subscribe("floor/req", qos=0)
        self.client.subscribe("floor/resp", qos=0)
        time.sleep(0.3)  # let the subscriptions settle before measuring (not synchronisation of results)

    def measure(self, n: int) -> list[float]:
        samples = []
        for i in range(n):
            self.got.clear()
            t = time.perf_counter()
            self.client.publish("floor/req", b'{"i":%d}' % i, qos=0)
            self.got.wait(5)
            samples.append(time.perf_counter() - t)
        return samples

    def close(self) -> None:
        for c in (self.server, self.client):
            c.loop_stop()
            c.disconnect()


def raw_throughput(address: BrokerAddress, n: int) -> float:
    sender, receiver = _client("tp-send", address), _client("tp-recv", address)
    count = 0
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    receiver.on_message = on_message
    receiver.subscribe("floor/var", qos=0)
    time.sleep(0.3)
    t = time.perf_counter()
    for i in range(n):
        sender.publish("floor/var", b'{"msg_type":"Var","data":{"data":%d}}' % i, qos=0)
    done.wait(60)
    elapsed = time.perf_counter() - t
    for c in (sender, receiver):
        c.loop_stop()
        c.disconnect()
    return count / elapsed


# -- everpy ---------------------------------------------------------------------------------------------
PAIR = {
    "active_modules": {
        "a": {"module": "Example", "connections": {"peer": [{"module_id": "b", "implementation_id": "main"}]}},
        "b": {"module": "Example"},
    }
}


def pair_config(own_process: bool, validate: bool, prefix: str = "everest") -> dict:
    # Systems measured side by side share one broker: each gets its own prefix so none sees another's calls.
    config = {"settings": {"validate_schema": validate, "mqtt_everest_prefix": prefix},
              "active_modules": dict(PAIR["active_modules"])}
    if own_process:
        config["active_modules"]["b"] = {"module": "Example", "process": "own"}
    return config


async def measure_calls(peer: object, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await peer.call("add", a=i, b=1)  # type: ignore[attr-defined]
        samples.append(time.perf_counter() - t)
    return samples


async def round_trips(address: BrokerAddress, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Interleave floor and everpy measurements so drifting machine load hits all of them alike."""
    floor = await asyncio.to_thread(RawRoundTrip, address)
    results: dict[str, list[float]] = {"floor": [], "in-process": [], "no validation": [], "across processes": []}
    async with AsyncExitStack() as stack:
        peers = {}
        for label, own, validate in (("in-process", False, True), ("no validation", False, False),
                                     ("across processes", True, True)):
            config = pair_config(own, validate, prefix=f"bench-{len(peers)}")
            system = await stack.enter_async_context(run_system(config, broker=address))
            peers[label] = system.instances["a"].require("peer")
            await measure_calls(peers[label], 100)  # warm-up
        await asyncio.to_thread(floor.measure, 100)
        for _ in range(rounds):
            results["floor"] += await asyncio.to_thread(floor.measure, per_round)
            for label, peer in peers.items():
                results[label] += await measure_calls(peer, per_round)
    floor.close()
    return results


async def everpy_throughput(address: BrokerAddress, n: int) -> float:
    async with run_system(PAIR, broker=address) as system:
        a, b = system.instances["a"], system.instances["b"]
        got = asyncio.Event()
        count = 0

        def on_value(v: int) -> None:
            nonlocal count
            count += 1
            if count == n:
                got.set()

        a.require("peer").subscribe("value", on_value)
        await system.flush()
        t = time.perf_counter()
        for i in range(n):
            b.publish("main", "value", i)
        await asyncio.wait_for(got.wait(), 60)
        return n / (time.perf_counter() - t)


def _write_config(n: int, own: bool) -> Path:
    modules = {f"m{i}": {"module": "Example"} for i in range(n)}
    for i in range(1, n):
        modules[f"m{i}"]["connections"] = {"peer": [{"module_id": f"m{i - 1}", "implementation_id": "main"}]}
        if own:
            modules[f"m{i}"]["process"] = "own"
    path = Path(tempfile.mkstemp(prefix="everpy-bench-", suffix=".yaml")[1])
    path.write_text(yaml.safe_dump({"active_modules": modules}))
    return path


def startup_and_rss(n: int, own: bool, broker: BrokerAddress) -> tuple[float, float]:
    """Run `everpy run` as a user would; seconds to 'up and running' and total RSS (MB) of its tree."""
    config = _write_config(n, own)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "everpy.cli", "run", str(config), "--broker", f"{broker.host}:{broker.port}"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "EVERPY_LOG_LEVEL": "INFO", **login_env(broker)},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "up and running" in line:
            break
    else:
        raise RuntimeError("everpy run ended before global ready")
    wall = time.perf_counter() - t  # from exec of `everpy run` (interpreter start included) to global ready
    time.sleep(0.5)
    rss = tree_rss_mb(proc.pid)
    proc.terminate()
    proc.wait(10)
    config.unlink()
    return wall, rss


def login_env(address: BrokerAddress) -> dict[str, str]:
    """The broker's login for `everpy run --broker` (the private broker takes logged-in clients only)."""
    if address.username is None:
        return {}
    return {"EVERPY_MQTT_USER": address.username, "EVERPY_MQTT_PASSWORD": address.password or ""}


async def bus_security_cost(open_address: BrokerAddress, rounds: int, per_round: int) -> dict[str, list[float]]:
    """The same cross-process pair on an open broker (anonymous, no ACL: the floor) and on the private broker
    the runtime makes (a login per process and the ACL of the graph), interleaved round by round."""
    results: dict[str, list[float]] = {"open": [], "login+ACL": []}
    async with AsyncExitStack() as stack:
        open_system = await stack.enter_async_context(run_system(pair_config(True, True, "bench-open"),
                                                                 broker=open_address))
        secured = await stack.enter_async_context(run_system(pair_config(True, True, "bench-acl")))
        peers = {"open": open_system.instances["a"].require("peer"),
                 "login+ACL": secured.instances["a"].require("peer")}
        for peer in peers.values():
            await measure_calls(peer, 100)  # warm-up
        for _ in range(rounds):
            for label, peer in peers.items():
                results[label] += await measure_calls(peer, per_round)
    return results


def tree_rss_mb(pid: int) -> float:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


async def main() -> None:
    broker, open_broker = PrivateBroker(), PrivateBroker()
    address = await broker.start()
    open_address = await open_broker.start(open_bus=True)
    try:
        security = await bus_security_cost(open_address, rounds=10, per_round=ROUND_TRIPS // 10)
        trips = await round_trips(address, rounds=10, per_round=ROUND_TRIPS // 10)
        floor_tp = await asyncio.to_thread(raw_throughput, address, VARS)
        tp = await everpy_throughput(address, VARS)
        ready20, rss20 = await asyncio.to_thread(startup_and_rss, 20, False, address)
        _, rss10 = await asyncio.to_thread(startup_and_rss, 10, False, address)
        _, rss10own = await asyncio.to_thread(startup_and_rss, 10, True, address)
    finally:
        await broker.stop()
        await open_broker.stop()

    floor = trips["floor"]
    f50, f99 = percentile(floor, 0.5), percentile(floor, 0.99)
    rows = [
        ("floor: raw paho round trip p50 / p99", f"{f50*1e3:.3f} / {f99*1e3:.3f} ms", "1.00x", ""),
    ]
    for label in ("in-process", "no validation", "across processes"):
        samples = trips[label]
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        rows.append((f"cmd round trip, {label} p50 / p99", f"{p50*1e3:.3f} / {p99*1e3:.3f} ms",
                     f"{p50/f50:.2f}x / {p99/f99:.2f}x", "p50 <= 1.5x"))
    o50, o99 = percentile(security["open"], 0.5), percentile(security["open"], 0.99)
    s50, s99 = percentile(security["login+ACL"], 0.5), percentile(security["login+ACL"], 0.99)
    rows.append(("floor: cmd across processes, open broker p50 / p99", f"{o50*1e3:.3f} / {o99*1e3:.3f} ms",
                 "1.00x", ""))
    rows.append(("cmd across processes, login + ACL p50 / p99", f"{s50*1e3:.3f} / {s99*1e3:.3f} ms",
                 f"{s50/o50:.2f}x / {s99/o99:.2f}x", "p50 <= 1.05x"))
    rows.append(("floor: raw paho var throughput", f"{floor_tp:,.0f} msg/s", "1.00x", ""))
    rows.append(("var throughput module -> module", f"{tp:,.0f} msg/s", f"{tp/floor_tp:.2f}x", ">= 0.5x"))
    rows.append(("`everpy run` start -> global ready, 20 modules", f"{ready20:.3f} s", "", "<= 1.0 s"))
    rows.append(("RSS, 10 modules, one process", f"{rss10:.1f} MB", "", "<= 60 MB"))
    rows.append(("RSS, 10 modules, each own process", f"{rss10own:.1f} MB", f"{rss10own/rss10:.1f}x", ""))
    rows.append(("(RSS, 20 modules, one process)", f"{rss20:.1f} MB", "", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>24}  {'ratio':>14}  target")
    for name, value, ratio, target in rows:
        print(f"{name:<{width}}  {value:>24}  {ratio:>14}  {target}")
    print(f"(statistics: {ROUND_TRIPS} round trips, {VARS} vars; mean floor {statistics.mean(floor)*1e3:.3f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
