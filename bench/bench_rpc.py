"""msgpack-RPC call round trip vs. a raw msgpack echo over the same kind of socket.

Both servers run in one child process (its own event loop), the client in this process; both use asyncio
TCP streams on loopback, so the ratio is the cost of the RPC layer (ids, dispatch, validation, futures).

    python bench/bench_rpc.py [--calls 5000]

Target: RPC p50 <= 1.5 x raw echo p50.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time

import msgpack

from everpy.rpc import MethodRegistry, RpcServer, connect

PAYLOAD = {"evse": 1, "state": "Charging", "power_W": 7360.5, "phases": [16.0, 16.0, 16.0]}


async def raw_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    unpacker = msgpack.Unpacker(raw=False)
    while data := await reader.read(65536):
        unpacker.feed(data)
        for obj in unpacker:
            writer.write(msgpack.packb(obj, use_bin_type=True))


async def serve(ports: multiprocessing.Queue) -> None:
    raw = await asyncio.start_server(raw_echo, "127.0.0.1", 0)
    registry = MethodRegistry()
    registry.register("echo", lambda value: value)
    rpc = RpcServer(registry)
    await rpc.start("127.0.0.1", 0)
    ports.put((raw.sockets[0].getsockname()[1], rpc.port))
    await asyncio.Event().wait()


def server_process(ports: multiprocessing.Queue) -> None:
    asyncio.run(serve(ports))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def measure(raw_port: int, rpc_port: int, calls: int) -> dict[str, list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", raw_port)
    unpacker = msgpack.Unpacker(raw=False)

    async def raw_round_trip() -> None:
        writer.write(msgpack.packb([0, 1, "echo", [PAYLOAD]], use_bin_type=True))
        while True:
            for _ in unpacker:
                return
            unpacker.feed(await reader.read(65536))

    peer = await connect("127.0.0.1", rpc_port)

    async def rpc_round_trip() -> None:
        await peer.call("echo", PAYLOAD)

    results: dict[str, list[float]] = {"raw msgpack echo": [], "msgpack-RPC call": []}
    runners = {"raw msgpack echo": raw_round_trip, "msgpack-RPC call": rpc_round_trip}
    for _ in range(500):  # warm-up
        for run in runners.values():
            await run()
    for _ in range(calls):  # interleaved, so both see the same machine load
        for name, run in runners.items():
            start = time.perf_counter()
            await run()
            results[name].append((time.perf_counter() - start) * 1e6)
    writer.close()
    await peer.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=server_process, args=(ports,), daemon=True)
    child.start()
    try:
        raw_port, rpc_port = ports.get(timeout=20)
        results = asyncio.run(measure(raw_port, rpc_port, args.calls))
    finally:
        child.terminate()
        child.join(10)
    floor_p50, floor_p99 = percentiles(results["raw msgpack echo"])
    print(f"round trip over TCP loopback, {args.calls} calls each, payload {len(msgpack.packb(PAYLOAD))} B")
    print(f"{'case':<20} {'p50 us':>9} {'p99 us':>9} {'p50 ratio':>10} {'p99 ratio':>10}")
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{name:<20} {p50:>9.1f} {p99:>9.1f} {p50 / floor_p50:>9.2f}x {p99 / floor_p99:>9.2f}x")
    p50, _ = percentiles(results["msgpack-RPC call"])
    verdict = "meets" if p50 / floor_p50 <= 1.5 else "MISSES"
    print(f"target p50 ratio <= 1.5x: {verdict} ({p50 / floor_p50:.2f}x)")


if __name__ == "__main__":
    main()
