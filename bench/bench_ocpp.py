"""OCPP benchmarks: OCPP-J round trips over a loopback websocket, and the persistent message queue.

1. Round trips (everpy.ocpp.transport websockets on 127.0.0.1, two processes): the "CSMS" is this
   process, a plain websocket server that sends CALL frames and awaits the answer. The station is a
   child process that connects to it as OCPP stations do, with an RpcPeer (everpy.ocpp.rpc, the version's
   dialect and schemas) and trivial handlers. Floor: the same child also connects a raw websocket that echoes every
   frame; the CSMS sends it the very same CALL frames. Both are timed by identical CSMS code (send a
   prebuilt frame, await one frame), interleaved, so the ratio is the cost of the station's RPC layer
   (parse, schema checks, task per CALL, handler, encode). The other direction: this process is the
   station (RpcPeer.call) and the child is a CSMS that answers each CALL with a raw CALLRESULT; its floor
   is the child's raw echo of the same CALL frame, timed from this process.

2. Persistent queue (everpy.ocpp.store.OcppStore, WAL + synchronous=FULL, on a temp file): enqueue as
   the station does (uuid4 + one store.atomic() per message), deliver as the station's queue drain does
   (queue_head, then dequeue in its own store.atomic()), and deliver end to end (queue_head, RpcPeer.call
   of the queued message to the child CSMS, dequeue). Floors: raw sqlite3 on the same disk, WAL +
   synchronous=FULL, BEGIN IMMEDIATE / INSERT / COMMIT (and SELECT head / DELETE / COMMIT; and SELECT +
   raw websocket echo of the same frame + DELETE / COMMIT for end to end).

Each OCPP version runs both parts with its own messages: 1.6 GetConfiguration / DataTransfer / MeterValues,
2.0.1 GetVariables / DataTransfer / TransactionEvent (the station->CSMS round trip and the queue both carry a
TransactionEvent with meter values, as a charging 2.0.1 station sends them), on a store opened for that version.

Run: `python bench/bench_ocpp.py [--ocpp 1.6 2.0.1] [--calls 2000] [--queue 1000] [--dir DIR] [--profile]`.
Prints markdown tables; no timed asserts. `--profile` runs cProfile on the station side instead of the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import faulthandler
import importlib
import json
import logging
import multiprocessing
import os
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from everpy.ocpp import transport  # noqa: E402
from everpy.ocpp.rpc import Reply  # noqa: E402
from everpy.ocpp.store import OcppStore  # noqa: E402

LOG = logging.getLogger("bench.ocpp")


ROUNDS = 10  # measurements are interleaved in this many rounds, so drifting load hits all cases alike
WARM_UP = 200
TARGET = 1.5
WATCHDOG_S = 300.0  # a lost frame must not hang the bench: both processes dump their stacks and exit

DATA_TRANSFER = {"vendorId": "org.everpy.bench", "messageId": "SessionInfo",
                 "data": json.dumps({"evse": 1, "state": "Charging", "power_W": 7360.5, "soc": 42})}
TIMESTAMP = "2026-05-09T07:35:25.123Z"
Message = tuple[str, dict[str, Any], dict[str, Any]]  # action, payload, the answer it gets


@dataclass(frozen=True)
class Protocol:
    """One OCPP version's messages for the bench: what the CSMS asks the station (answered by trivial
    station handlers), what the station sends now, and what it queues."""

    version: str
    subprotocol: str
    dialect_module: str
    csms_calls: tuple[Message, Message]
    station_call: Message
    queued: Message

    def dialect(self) -> Any:
        return importlib.import_module(self.dialect_module).DIALECT

    def csms_answers(self) -> dict[str, dict[str, Any]]:
        return {action: answer for action, _, answer in (self.station_call, self.queued)}

    def station_answers(self) -> dict[str, dict[str, Any]]:
        return {action: answer for action, _, answer in self.csms_calls}


METER_VALUES_16 = {"connectorId": 1, "transactionId": 42, "meterValue": [{
    "timestamp": TIMESTAMP,
    "sampledValue": [
        {"value": "12345.6", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"},
        {"value": "7360.5", "context": "Sample.Periodic", "measurand": "Power.Active.Import",
         "location": "Outlet", "unit": "W"},
    ]}]}
TRANSACTION_EVENT = {
    "eventType": "Updated", "timestamp": TIMESTAMP, "triggerReason": "MeterValuePeriodic", "seqNo": 3,
    "transactionInfo": {"transactionId": "6f1c2a4e-0b7d-4c36-9a51-2f4e8d9b7c10", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": [
        {"value": 12345.6, "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unitOfMeasure": {"unit": "Wh"}},
        {"value": 7360.5, "context": "Sample.Periodic", "measurand": "Power.Active.Import",
         "location": "Outlet", "unitOfMeasure": {"unit": "W"}},
    ]}]}
HEARTBEAT_VARIABLE = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
ACCEPTED = {"status": "Accepted"}

PROTOCOLS = {
    "1.6": Protocol("1.6", "ocpp1.6", "everpy.ocpp.v16.dialect", (
        ("GetConfiguration", {"key": ["HeartbeatInterval"]},
         {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}),
        ("DataTransfer", DATA_TRANSFER, ACCEPTED)),
        ("DataTransfer", DATA_TRANSFER, ACCEPTED), ("MeterValues", METER_VALUES_16, {})),
    "2.0.1": Protocol("2.0.1", "ocpp2.0.1", "everpy.ocpp.v201.dialect", (
        ("GetVariables", {"getVariableData": [HEARTBEAT_VARIABLE]},
         {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "300", **HEARTBEAT_VARIABLE}]}),
        ("DataTransfer", DATA_TRANSFER, ACCEPTED)),
        ("TransactionEvent", TRANSACTION_EVENT, {}), ("TransactionEvent", TRANSACTION_EVENT, {})),
}


def make_peer(protocol: Protocol, connection: Any, handlers: dict[str, Any]) -> Any:
    """The one place that builds a station RpcPeer; adapt here when its constructor changes."""
    from everpy.ocpp.rpc import RpcPeer

    return RpcPeer(connection, protocol.dialect(), handlers, LOG, 10.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def call_frames(action: str, payload: dict[str, Any], n: int) -> list[str]:
    """n CALL frames with distinct 36-character unique ids (the length of the uuid4 ids RpcPeer.call uses),
    so every frame of an action has the size of the station's own."""
    return [json.dumps([2, f"bench-{i:030d}", action, payload], separators=(",", ":")) for i in range(n)]


# ------------------------------------------------------------------ child: station clients + raw CSMS
def station_handlers(protocol: Protocol) -> dict[str, Any]:
    """Trivial station handlers: each answers its prebuilt payload."""
    def handler(answer: dict[str, Any]) -> Any:
        async def handle(payload: dict[str, Any]) -> Reply:
            return Reply(answer)
        return handle

    return {action: handler(answer) for action, answer in protocol.station_answers().items()}


async def _echo(connection: Any) -> None:
    while True:
        await connection.send(await connection.recv())


async def _raw_csms(connection: Any, answers: dict[str, dict[str, Any]]) -> None:
    while True:
        frame = json.loads(await connection.recv())
        await connection.send(json.dumps([3, frame[1], answers[frame[2]]], separators=(",", ":")))


async def _profile_control(connection: Any, profile_path: str) -> None:
    """In --profile mode: "start" / "stop" from the parent around the measured station round trips."""
    profiler = cProfile.Profile()
    while True:
        command = await connection.recv()
        if command == "start":
            profiler.enable()
        else:
            profiler.disable()
            profiler.dump_stats(profile_path)
        await connection.send("ok")


async def _child_main(version: str, parent_port: int, ports: Any, profile_path: str | None) -> None:
    protocol = PROTOCOLS[version]
    subprotocols = [protocol.subprotocol]

    async def csms_handler(connection: Any, path: str, headers: Any) -> None:
        try:
            await (_echo(connection) if path == "/echo" else _raw_csms(connection, protocol.csms_answers()))
        except transport.ConnectionClosed:
            pass

    server = await transport.serve(csms_handler, "127.0.0.1", 0, subprotocols=subprotocols)
    base = f"ws://127.0.0.1:{parent_port}/station"
    rpc = await transport.connect(f"{base}/rpc", subprotocols=subprotocols)
    side = await transport.connect(f"{base}/{'control' if profile_path else 'echo'}", subprotocols=subprotocols)
    tasks = [make_peer(protocol, rpc, station_handlers(protocol)).run(),
             _profile_control(side, profile_path) if profile_path else _echo(side)]
    ports.put(transport.server_port(server))
    await asyncio.gather(*tasks)  # a station that fails must end this process loudly, not stop answering


def child_process(version: str, parent_port: int, ports: Any, profile_path: str | None, watchdog: float) -> None:
    faulthandler.dump_traceback_later(watchdog, exit=True)
    asyncio.run(_child_main(version, parent_port, ports, profile_path))


class Child:
    """This process's CSMS server (the child's station connects to it) and the child's raw CSMS."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.subprotocols = [protocol.subprotocol]

    async def connect(self, path: str) -> Any:
        """A connection to the child's raw CSMS ("/csms") or its echo ("/echo")."""
        return await transport.connect(f"ws://127.0.0.1:{self.csms_port}{path}", subprotocols=self.subprotocols)

    def peer(self, connection: Any) -> Any:
        return make_peer(self.protocol, connection, {})

    async def __aenter__(self) -> Child:
        loop = asyncio.get_running_loop()
        self._arrivals: dict[str, asyncio.Future[Any]] = {
            p: loop.create_future() for p in ("/station/rpc", "/station/echo", "/station/control")}
        self._closed = asyncio.Event()

        async def handler(connection: Any, path: str, headers: Any) -> None:
            self._arrivals[path].set_result(connection)
            await self._closed.wait()

        self._server = await transport.serve(handler, "127.0.0.1", 0, subprotocols=self.subprotocols)
        return self

    async def start(self, profile_path: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: this process already runs an event loop
        ports = context.Queue()
        args = (self.protocol.version, transport.server_port(self._server), ports, profile_path, WATCHDOG_S)
        self._process = context.Process(target=child_process, args=args, daemon=True)
        self._process.start()
        self.csms_port = await asyncio.to_thread(ports.get, True, 60)
        self.station_rpc = await self._arrivals["/station/rpc"]
        self.station_side = await self._arrivals["/station/control" if profile_path else "/station/echo"]

    async def __aexit__(self, *exc: object) -> None:
        self._closed.set()
        self._server.close()
        if getattr(self, "_process", None) is not None:
            self._process.terminate()
            self._process.join(10)


# ------------------------------------------------------------------ 1. round trips
async def frame_round_trips(connection: Any, frames: list[str], n: int, expect: str) -> list[float]:
    """Send prebuilt frames one at a time and await one frame back (the CSMS side, or a raw station)."""
    samples = []
    for i in range(n):
        frame = frames[i % len(frames)]
        t = time.perf_counter()
        await connection.send(frame)
        reply = await connection.recv()
        samples.append(time.perf_counter() - t)
        if not reply.startswith(expect):  # e.g. a CALLERROR would mean we measure the error path
            raise RuntimeError(f"unexpected answer {reply[:200]!r} to {frame[:200]!r}")
    return samples


async def peer_calls(peer: Any, action: str, payload: dict[str, Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await peer.call(action, payload)
        samples.append(time.perf_counter() - t)
    return samples


async def round_trips(child: Child, n: int) -> tuple[list[tuple[str, str, Any]], dict[str, list[float]]]:
    """Rows (label, floor label or "", frame sizes) and their samples."""
    protocol = child.protocol
    (first, first_payload, first_answer), (second, second_payload, second_answer) = protocol.csms_calls
    sent, sent_payload, sent_answer = protocol.station_call
    first_frames, second_frames = call_frames(first, first_payload, n), call_frames(second, second_payload, n)
    sent_frames = call_frames(sent, sent_payload, n)
    echo, csms = await child.connect("/echo"), await child.connect("/csms")
    peer = child.peer(csms)
    runner = asyncio.ensure_future(peer.run())
    floor_a = f"floor: raw ws echo, station process, {first} CALL"
    floor_b = f"floor: raw ws echo, station process, {second} CALL"
    floor_c = f"floor: raw ws echo, CSMS process, {sent} CALL"
    cases: list[tuple[str, str, Callable[[int], Awaitable[list[float]]]]] = [
        (floor_a, "", lambda k: frame_round_trips(child.station_side, first_frames, k, "[2,")),
        (f"CSMS -> station RpcPeer {first} -> CSMS", floor_a,
         lambda k: frame_round_trips(child.station_rpc, first_frames, k, "[3,")),
        (floor_b, "", lambda k: frame_round_trips(child.station_side, second_frames, k, "[2,")),
        (f"CSMS -> station RpcPeer {second} -> CSMS", floor_b,
         lambda k: frame_round_trips(child.station_rpc, second_frames, k, "[3,")),
        (floor_c, "", lambda k: frame_round_trips(echo, sent_frames, k, "[2,")),
        (f"station RpcPeer.call {sent} -> raw CSMS -> station", floor_c,
         lambda k: peer_calls(peer, sent, sent_payload, k)),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    try:
        for _, _, run in cases:
            await run(WARM_UP)
        for _ in range(ROUNDS):
            for label, _, run in cases:
                samples[label] += await run(n // ROUNDS)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await echo.close()
        await csms.close()

    def answer(payload: dict[str, Any]) -> int:
        return len(json.dumps([3, str(uuid.uuid4()), payload], separators=(",", ":")))

    frames = {floor_a: first_frames, floor_b: second_frames, floor_c: sent_frames}
    sizes = {label: (len(frames[label][0]), len(frames[label][0])) for label in frames}
    sizes |= {cases[1][0]: (len(first_frames[0]), answer(first_answer)),
              cases[3][0]: (len(second_frames[0]), answer(second_answer)),
              cases[5][0]: (len(sent_frames[0]), answer(sent_answer))}
    return [(label, floor, sizes[label]) for label, floor, _ in cases], samples


# ------------------------------------------------------------------ 2. persistent queue
_QUEUE_TABLE = """CREATE TABLE queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL,
    payload TEXT NOT NULL, tx_key TEXT, unique_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)"""


def raw_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(_QUEUE_TABLE)
    return db


class Queues:
    """The station's store and a raw sqlite floor side by side in one directory (the same disk)."""

    def __init__(self, directory: Path, protocol: Protocol, peer: Any, echo: Any) -> None:
        self.store = OcppStore(directory / "ocpp.db", ocpp_version=protocol.version)
        self.db = raw_db(directory / "floor.db")
        self.peer, self.echo = peer, echo
        self.action, self.payload, _ = protocol.queued
        self.payload_text = json.dumps(self.payload)

    def raw_insert(self, k: int) -> list[float]:
        samples = []
        for i in range(k):
            unique_id = f"{i:036d}"
            t = time.perf_counter()
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO queue (action, payload, tx_key, unique_id) VALUES (?, ?, ?, ?)",
                            (self.action, self.payload_text, "bench-tx", unique_id))
            self.db.execute("COMMIT")
            samples.append(time.perf_counter() - t)
        return samples

    def raw_delete(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            row = self.db.execute("SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue"
                                  " ORDER BY seq LIMIT 1").fetchone()
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM queue WHERE seq = ?", (row[0],))
            self.db.execute("COMMIT")
            samples.append(time.perf_counter() - t)
        return samples

    async def raw_deliver(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            row = self.db.execute("SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue"
                                  " ORDER BY seq LIMIT 1").fetchone()
            await self.echo.send(f'[2,"{row[4]}","{row[1]}",{row[2]}]')
            await self.echo.recv()
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM queue WHERE seq = ?", (row[0],))
            self.db.execute("COMMIT")
            samples.append(time.perf_counter() - t)
        return samples

    def enqueue(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            with self.store.atomic():  # as ChargePoint.queue_persistent inside the caller's atomic()
                self.store.enqueue(self.action, self.payload, str(uuid.uuid4()), "bench-tx")
            samples.append(time.perf_counter() - t)
        return samples

    def deliver(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            message = self.store.queue_head()  # as ChargePoint._drain_queue: read, then dequeue atomically
            assert message is not None
            with self.store.atomic():
                self.store.dequeue(message.seq)
            samples.append(time.perf_counter() - t)
        return samples

    async def deliver_end_to_end(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            message = self.store.queue_head()
            assert message is not None
            await self.peer.call(message.action, message.payload, unique_id=message.unique_id)
            with self.store.atomic():
                self.store.dequeue(message.seq)
            samples.append(time.perf_counter() - t)
        return samples

    def close(self) -> None:
        self.store.close()
        self.db.close()


ENQ_FLOOR = "floor: raw sqlite BEGIN IMMEDIATE + INSERT + COMMIT"
DEQ_FLOOR = "floor: raw sqlite SELECT head + DELETE + COMMIT"
E2E_FLOOR = "floor: raw SELECT head + ws echo of the CALL + DELETE + COMMIT"
ENQ, DEQ, E2E = ("OcppStore enqueue (uuid4 + own atomic())", "OcppStore deliver (queue_head + atomic() dequeue)",
                 "deliver end to end (queue_head + RpcPeer.call + dequeue)")


async def queue_rates(child: Child, n: int, directory: str | None) -> dict[str, list[float]]:
    echo, csms = await child.connect("/echo"), await child.connect("/csms")
    peer = child.peer(csms)
    runner = asyncio.ensure_future(peer.run())
    samples: dict[str, list[float]] = {label: [] for label in (ENQ_FLOOR, ENQ, DEQ_FLOOR, DEQ, E2E_FLOOR, E2E)}
    with tempfile.TemporaryDirectory(prefix="everpy-bench-ocpp-", dir=directory) as tmp:
        queues = Queues(Path(tmp), child.protocol, peer, echo)
        try:
            for rounds, k in ((1, WARM_UP // 4), (ROUNDS, n // ROUNDS)):  # warm-up round first, not kept
                for _ in range(rounds):
                    got = {ENQ_FLOOR: queues.raw_insert(k), ENQ: queues.enqueue(k),
                           DEQ_FLOOR: queues.raw_delete(k), DEQ: queues.deliver(k)}
                    queues.raw_insert(k), queues.enqueue(k)  # refill, untimed
                    got[E2E_FLOOR] = await queues.raw_deliver(k)
                    got[E2E] = await queues.deliver_end_to_end(k)
                    if rounds == ROUNDS:
                        for label, values in got.items():
                            samples[label] += values
            if queues.store.queue_length() != 0:
                raise RuntimeError("queue not drained")
        finally:
            queues.close()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await echo.close()
            await csms.close()
    return samples


# ------------------------------------------------------------------ --profile
def _func_name(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name
    path = Path(file)
    try:
        short = str(path.relative_to(ROOT))
    except ValueError:
        parts = path.parts
        short = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else path.name
    return f"{short}:{line}({name})"


def print_profile(stats: pstats.Stats, title: str, top: int = 18) -> None:
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    idle = sum(v[2] for k, v in entries.items() if "poll" in k[2] and ("epoll" in k[2] or "select" in k[2]))
    busy = sum(v[2] for v in entries.values()) - idle
    print(f"\n### {title}\n")
    print(f"busy CPU under the profiler {busy:.3f} s (event-loop poll wait {idle:.3f} s left out)\n")
    for heading, column in (("own time (tottime)", 2), ("cumulative time (cumtime)", 3)):
        rows = sorted(entries.items(), key=lambda kv: kv[1][column], reverse=True)
        rows = [(k, v) for k, v in rows if not (k[0] == "~" and "poll" in k[2])]
        if column == 3:  # the event loop's own frames contain everything: skip them
            rows = [(k, v) for k, v in rows if "asyncio" not in k[0] and "Context.run" not in k[2]
                    and v[3] < 0.98 * busy]
        print(f"| {heading:<88} | {'calls':>8} | {'% busy':>7} |")
        print(f"|{'-' * 90}|{'-' * 10}|{'-' * 9}|")
        for key, value in rows[:top]:
            print(f"| {_func_name(key)[:88]:<88} | {value[1]:>8} | {100 * value[column] / busy:6.1f}% |")
        print()


async def profile_station(protocol: Protocol, n: int) -> None:
    first, first_payload, _ = protocol.csms_calls[0]
    sent, sent_payload, _ = protocol.station_call
    with tempfile.TemporaryDirectory(prefix="everpy-bench-ocpp-") as tmp:
        path = str(Path(tmp) / "station.prof")
        async with Child(protocol) as child:
            await child.start(profile_path=path)
            frames = call_frames(first, first_payload, n)
            await frame_round_trips(child.station_rpc, frames, WARM_UP, "[3,")
            await child.station_side.send("start")
            await child.station_side.recv()
            await frame_round_trips(child.station_rpc, frames, n, "[3,")
            await child.station_side.send("stop")
            await child.station_side.recv()
            print_profile(pstats.Stats(path), f"OCPP {protocol.version} station process, {n} CSMS -> station "
                                              f"{first} round trips")

            csms = await child.connect("/csms")
            peer = child.peer(csms)
            runner = asyncio.ensure_future(peer.run())
            await peer_calls(peer, sent, sent_payload, WARM_UP)
            profiler = cProfile.Profile()
            profiler.enable()
            await peer_calls(peer, sent, sent_payload, n)
            profiler.disable()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await csms.close()
            print_profile(pstats.Stats(profiler), f"station side of {n} RpcPeer.call({sent}) round trips "
                                                  "(this process; the CSMS is the child)")


# ------------------------------------------------------------------ tables
def _tree_state() -> str:
    """The commit measured (and whether the working tree differs from it)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "(no git)"
    except (OSError, subprocess.SubprocessError):
        return "(no git)"


async def measure(protocol: Protocol, args: argparse.Namespace
                  ) -> tuple[Any, dict[str, list[float]], dict[str, list[float]]]:
    async with Child(protocol) as child:
        await child.start()
        rows, trips = await round_trips(child, args.calls)
        queue = await queue_rates(child, args.queue, args.dir)
    return rows, trips, queue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="round trips per case")
    parser.add_argument("--queue", type=int, default=1000, help="queued messages per case")
    parser.add_argument("--dir", default=None, help="directory for the databases (default: the temp dir)")
    parser.add_argument("--profile", action="store_true", help="cProfile the station side instead")
    parser.add_argument("--ocpp", nargs="+", choices=sorted(PROTOCOLS), default=sorted(PROTOCOLS),
                        help="the OCPP versions to measure (default: all)")
    args = parser.parse_args()
    for version in args.ocpp:
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
        if args.profile:
            asyncio.run(profile_station(PROTOCOLS[version], max(args.calls, 5000)))
        else:
            print_tables(PROTOCOLS[version], args)


def print_tables(protocol: Protocol, args: argparse.Namespace) -> None:
    import websockets

    rows, trips, queue = asyncio.run(measure(protocol, args))
    print(f"\n## OCPP {protocol.version}: OCPP-J round trips over a loopback websocket ({args.calls} each, "
          f"{ROUNDS} interleaved rounds)\n")
    print(f"everpy {_tree_state()}, python {sys.version.split()[0]}, websockets {websockets.__version__}, "
          f"{os.cpu_count()} cores; ratio = against the floor row above it\n")
    print(f"| {'measurement':<62} | {'CALL/answer B':>13} | {'p50 us':>7} | {'p99 us':>7} | {'trips/s':>7} "
          f"| {'p50 ratio':>9} | {'p99 ratio':>9} | {'target':<12} |")
    print(f"|{'-' * 64}|{'-' * 15}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 11}|{'-' * 14}|")
    verdicts = []
    for label, floor, (out_b, in_b) in rows:
        values = trips[label]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        rate = len(values) / sum(values)
        ratio50 = ratio99 = "1.00x"
        target = ""
        if floor:
            f50, f99 = percentile(trips[floor], 0.5), percentile(trips[floor], 0.99)
            ratio50, ratio99, target = f"{p50 / f50:.2f}x", f"{p99 / f99:.2f}x", f"p50 <= {TARGET}x"
            verdicts.append((label, p50 / f50))
        print(f"| {label:<62} | {f'{out_b}/{in_b}':>13} | {p50 * 1e6:7.1f} | {p99 * 1e6:7.1f} | {rate:7,.0f} "
              f"| {ratio50:>9} | {ratio99:>9} | {target:<12} |")
    print()
    for label, ratio in verdicts:
        print(f"- {label}: {ratio:.2f}x -> target {'met' if ratio <= TARGET else 'NOT met'}")

    where = args.dir or tempfile.gettempdir()
    action, payload, _ = protocol.queued
    print(f"\n## OCPP {protocol.version}: persistent message queue ({args.queue} {action} each, "
          f"{len(json.dumps(payload))} B payload, "
          f"WAL + synchronous=FULL in {where})\n")
    print(f"| {'measurement':<62} | {'p50 us':>8} | {'p99 us':>8} | {'msg/s':>7} | {'p50 ratio':>9} "
          f"| {'vs INSERT floor':>15} |")
    print(f"|{'-' * 64}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 11}|{'-' * 17}|")
    insert50 = percentile(queue[ENQ_FLOOR], 0.5)
    for label, floor in ((ENQ_FLOOR, None), (ENQ, ENQ_FLOOR), (DEQ_FLOOR, None), (DEQ, DEQ_FLOOR),
                         (E2E_FLOOR, None), (E2E, E2E_FLOOR)):
        values = queue[label]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        versus_floor = "1.00x" if floor is None else f"{p50 / percentile(queue[floor], 0.5):.2f}x"
        print(f"| {label:<62} | {p50 * 1e6:8.1f} | {p99 * 1e6:8.1f} | {len(values) / sum(values):7,.0f} "
              f"| {versus_floor:>9} | {f'{p50 / insert50:.2f}x':>15} |")
    print("\n(p50 ratio: against the floor row above it; msg/s = messages / summed time, one at a time)")


if __name__ == "__main__":
    main()
