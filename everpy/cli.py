"""The `everpy` command line: check, run, modules, interfaces, graph, call, monitor, csms."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from everpy.core import wire
from everpy.core.config_errors import ConfigError
from everpy.core.exceptions import ModuleStartupError
from everpy.core.loading import LoadedSystem, load_catalog, load_system
from everpy.core.logs import parse_level_overrides, setup_logging
from everpy.core.manifest import load_manifest
from everpy.core.private_files import write_private

if TYPE_CHECKING:  # the bus stack (paho) is imported only by the commands that talk to a bus,
    from everpy.core.bus import BrokerAddress  # so `everpy check` runs with the loader's dependencies only
    from everpy.core.runtime import Runtime

EXIT_CONFIG = 1
EXIT_RUNTIME = 2


def state_file(prefix: str = "everest") -> Path:
    """Where a running system records its broker, so `everpy call/monitor` find it."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"everpy-{os.getuid()}"
    return base / f"{prefix.strip('/').replace('/', '_')}.json"


def write_state_record(record: Path, runtime: Runtime, prefix: str, config: Path) -> None:
    """Where `everpy call` / `monitor` find the running system, with the operator's login to its private
    broker: readable by the service's user and its group only (0640 in a 0750 directory)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    record.parent.chmod(0o750)
    info: dict[str, Any] = {"host": runtime.broker.host, "port": runtime.broker.port, "pid": os.getpid(),
                            "prefix": prefix, "config": str(config)}
    login = runtime.operator_login
    if login is not None:
        info["user"], info["password"] = login
    write_private(record, json.dumps(info), 0o640)


def _dirs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    return list(args.modules_dir or []), list(args.definitions_dir or [])


def _load(args: argparse.Namespace) -> LoadedSystem:
    return load_system(Path(args.config), *_dirs(args))


# -- check ---------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    try:
        system = _load(args)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.issues)} problem(s):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_CONFIG
    missing = [
        f"{mid} ({m.module})"
        for mid, m in system.run_config.modules.items()
        if system.module_types[m.module].class_path is None
    ]
    print(f"{args.config}: OK ({len(system.run_config.modules)} modules)")
    if missing:
        print(f"note: validated, but these have no Python implementation and cannot run: {', '.join(missing)}")
    return 0


# -- run -----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    # Until the runtime's own handlers are in place (imports and loading take seconds on a small board)
    # SIGTERM, like SIGINT, ends the start-up quietly: nothing runs yet that needs an orderly stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("everpy: stopped during start-up", file=sys.stderr)
        return 0


def _run(args: argparse.Namespace) -> int:
    from everpy.core.broker import BrokerError
    from everpy.core.bus import BusError
    from everpy.core.runtime import Runtime

    try:
        system = _load(args)
    except ConfigError as exc:
        print(f"{args.config}: configuration invalid, not starting:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    settings = system.settings
    levels = dict(settings.log_levels)
    levels.update({mid: m.log_level for mid, m in system.run_config.modules.items() if m.log_level})
    try:
        levels.update(parse_level_overrides(args.log or []))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(args.log_level or settings.log_level, levels)
    from everpy.core.runtime import login_from_environment

    broker = login_from_environment(_parse_broker(args.broker)) if args.broker else None
    runtime = Runtime(system, broker=broker, log_levels=levels)

    async def main() -> int:
        task = asyncio.ensure_future(runtime.run_forever())
        up = asyncio.ensure_future(runtime.up.wait())
        await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        record = state_file(settings.mqtt_everest_prefix)
        if runtime.global_ready:
            write_state_record(record, runtime, settings.mqtt_everest_prefix, Path(args.config).resolve())
        try:
            return await task
        finally:
            record.unlink(missing_ok=True)

    try:
        code = asyncio.run(main())
    except (ModuleStartupError, BrokerError, BusError) as exc:
        print(f"everpy: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    _flush_or_drop_output()
    if runtime.restart_requested:  # a module asked for a soft reset: start afresh, same arguments
        os.execv(sys.executable, [sys.executable, "-m", "everpy.cli", *sys.argv[1:]])
    return code


def _flush_or_drop_output() -> None:
    """Flush stdout/stderr; one whose reader went away is pointed at /dev/null instead.

    Otherwise the flush at interpreter exit fails and turns a clean stop into exit status 120 (and a
    soft reset would not get to exec). While running, a broken pipe costs only the lines written to it:
    SIGPIPE stays ignored for `run`, so a write fails with EPIPE, which logging swallows.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # BrokenPipeError and friends: nobody reads this stream any more
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def _parse_broker(text: str) -> BrokerAddress:
    from everpy.core.bus import BrokerAddress

    if text.startswith("unix:"):
        return BrokerAddress(socket_path=text[5:])
    host, _, port = text.rpartition(":")
    return BrokerAddress(host or "localhost", int(port))


def _running_broker(args: argparse.Namespace) -> tuple[BrokerAddress, str]:
    if args.broker:
        return _parse_broker(args.broker), args.prefix
    record = state_file(args.prefix)
    if not record.is_file():
        raise SystemExit(
            f"everpy: no running system found ({record} missing); start one with `everpy run CONFIG` "
            "or pass --broker HOST:PORT"
        )
    try:
        info = json.loads(record.read_text())
    except PermissionError:
        raise SystemExit(
            f"everpy: {record} (the running system's address and operator login) is not readable by you; "
            "the bus takes only logged-in clients. Run as the service's user, or join its group "
            f"(`usermod -aG $(stat -c %G {record}) $USER`, then log in again)") from None
    address = _parse_broker(f"{info['host']}:{info['port']}")
    if "user" in info:
        address = address.as_user(info["user"], info["password"])
    return address, info["prefix"]


# -- call ----------------------------------------------------------------------------------------
def cmd_call(args: argparse.Namespace) -> int:
    try:
        module_id, impl_id, cmd = args.target.split(".")
    except ValueError:
        print(f"expected MODULE_ID.IMPL.CMD, got {args.target!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        call_args = json.loads(args.args) if args.args else {}
    except json.JSONDecodeError as exc:
        print(f"arguments are not JSON: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not isinstance(call_args, dict):
        print("arguments must be a JSON object", file=sys.stderr)
        return EXIT_CONFIG
    address, prefix = _running_broker(args)
    from everpy.core.bus import Bus

    async def main() -> int:
        topics = wire.Topics(prefix)
        caller = f"cli{uuid.uuid4().hex[:8]}"
        bus = Bus(address, caller)
        await bus.connect()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call_id = str(uuid.uuid4())

        def on_result(topic: str, payload: bytes) -> None:
            _, data = wire.decode(payload, wire.CMD_RESULT)
            if data["data"]["id"] == call_id and not done.done():
                done.set_result(data["data"])

        bus.subscribe(topics.cmd_response(module_id, impl_id, cmd, caller), on_result)
        bus.publish(topics.cmd(module_id, impl_id, cmd), wire.cmd_request(call_id, call_args, caller))
        try:
            result = await asyncio.wait_for(done, args.timeout)
        except TimeoutError:
            print(f"no reply from {args.target} within {args.timeout:g} s", file=sys.stderr)
            return EXIT_RUNTIME
        finally:
            await bus.close()
        if "error" in result:
            err = result["error"]
            print(f"{err.get(wire.ERROR_TYPE_KEY)}: {err.get(wire.ERROR_MSG_KEY)}", file=sys.stderr)
            return EXIT_RUNTIME
        print(json.dumps(result.get("retval"), indent=2))
        return 0

    return asyncio.run(main())


# -- monitor -------------------------------------------------------------------------------------
def cmd_monitor(args: argparse.Namespace) -> int:
    address, prefix = _running_broker(args)
    topic_filter = args.filter or f"{prefix.rstrip('/')}/#"
    if not topic_filter.startswith(prefix.rstrip("/")):
        topic_filter = f"{prefix.rstrip('/')}/{topic_filter}"
    from everpy.core.bus import Bus

    async def main() -> int:
        bus = Bus(address, "everpy-monitor")
        await bus.connect()
        count = 0
        finished = asyncio.Event()

        def show(topic: str, payload: bytes) -> None:
            nonlocal count
            if args.count and count >= args.count:
                return  # already enough; more may arrive before the loop gets to stop
            print(describe(topic, payload, prefix), flush=True)
            count += 1
            if args.count and count >= args.count:
                finished.set()

        bus.subscribe(topic_filter, show)
        try:
            if args.count:
                await finished.wait()
            else:
                await asyncio.Event().wait()
        finally:
            await bus.close()
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def describe(topic: str, payload: bytes, prefix: str = "everest") -> str:
    """One readable line for a bus message."""
    short = topic[len(prefix.rstrip("/")) + 1 :] if topic.startswith(prefix.rstrip("/") + "/") else topic
    short = short.replace("modules/", "").replace("/impl/", ".")
    try:
        msg_type, data = wire.decode(payload)
    except wire.WireError:
        return f"{short}  (not everpy JSON) {payload[:200]!r}"
    if msg_type == wire.VAR and isinstance(data, dict):
        data = data.get("data")
    return f"{short}  {msg_type}  {json.dumps(data, separators=(',', ':'))[:400]}"


# -- catalog ---------------------------------------------------------------------------------------
def cmd_modules(args: argparse.Namespace) -> int:
    types, _, problems = load_catalog(*_dirs(args))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    for name, mtype in sorted(types.items()):
        try:
            manifest = load_manifest(mtype.manifest_path, name=name)
        except ConfigError as exc:
            print(f"{name}: invalid manifest\n{exc}")
            continue
        runnable = "" if mtype.class_path else "  (manifest only)"
        print(f"{name}{runnable}  [{mtype.source}]")
        print(f"  {manifest.description.strip().splitlines()[0][:110]}")
        for impl, p in manifest.provides.items():
            print(f"  provides {impl}: {p.interface}")
        for req, r in manifest.requires.items():
            print(f"  requires {req}: {r.interface} [{r.min_connections}..{r.max_connections}]")
    return 0


def cmd_interfaces(args: argparse.Namespace) -> int:
    try:
        _, definitions, _ = load_catalog(*_dirs(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if not args.name:
        for name, listed in sorted(definitions.interfaces.items()):
            print(f"{name:28} {listed.description.strip().splitlines()[0] if listed.description else ''}")
        return 0
    iface = definitions.interfaces.get(args.name)
    if iface is None:
        print(f"unknown interface {args.name!r}", file=sys.stderr)
        return EXIT_CONFIG
    doc = {
        "description": iface.description,
        "cmds": {n: {"arguments": c.arguments, "result": c.result} for n, c in iface.cmds.items()},
        "vars": iface.vars,
        "errors": sorted(iface.error_types),
    }
    print(yaml.safe_dump({iface.name: doc}, sort_keys=False, width=110))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    try:
        system = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    print(render_graph(system, args.format))
    return 0


def render_graph(system: LoadedSystem, fmt: str) -> str:
    modules = system.run_config.modules
    edges = [
        (mid, req, conn.module_id, conn.implementation_id)
        for mid, m in modules.items()
        for req, conns in m.connections.items()
        for conn in conns
    ]
    if fmt == "dot":
        lines = ["digraph everpy {", "  rankdir=LR;", "  node [shape=box];"]
        lines += [f'  "{mid}" [label="{mid}\\n({m.module})"];' for mid, m in modules.items()]
        lines += [f'  "{a}" -> "{b}" [label="{req} -> {impl}"];' for a, req, b, impl in edges]
        return "\n".join([*lines, "}"])
    lines = ["flowchart LR"]
    lines += [f'  {_mid(mid)}["{mid}<br/>({m.module})"]' for mid, m in modules.items()]
    lines += [f'  {_mid(a)} -- "{req} → {impl}" --> {_mid(b)}' for a, req, b, impl in edges]
    return "\n".join(lines)


def _mid(module_id: str) -> str:
    return "m_" + "".join(c if c.isalnum() else "_" for c in module_id)


def cmd_csms(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from everpy import csms

    return int(csms.main(list(rest)))


# -- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everpy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dirs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--modules-dir", action="append", type=Path, help="extra module folder (repeatable)")
        p.add_argument("--definitions-dir", action="append", type=Path,
                       help="extra folder with interfaces/ types/ errors/ (repeatable)")
        return p

    def with_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--broker", help="HOST:PORT or unix:PATH (default: the running system's)")
        p.add_argument("--prefix", default="everest", help="MQTT everest prefix")
        return p

    p = with_dirs(sub.add_parser("check", help="validate a run config; exit 0 if valid, 1 if not"))
    p.add_argument("config")
    p = with_dirs(sub.add_parser("run", help="start the module graph of a run config"))
    p.add_argument("config")
    p.add_argument("--broker", help="use this broker instead of a private mosquitto (HOST:PORT or unix:PATH)")
    p.add_argument("--log-level", help="default log level (DEBUG, INFO, WARNING, ERROR)")
    p.add_argument("--log", action="append", metavar="MODULE=LEVEL", help="log level of one module (repeatable)")
    with_dirs(sub.add_parser("modules", help="list discovered modules with what they provide and require"))
    p = with_dirs(sub.add_parser("interfaces", help="list interfaces, or show one"))
    p.add_argument("name", nargs="?")
    p = with_dirs(sub.add_parser("graph", help="print the module graph of a run config"))
    p.add_argument("config")
    p.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    p = with_broker(sub.add_parser("call", help="call a command on a running system"))
    p.add_argument("target", metavar="MODULE_ID.IMPL.CMD")
    p.add_argument("args", nargs="?", help="JSON object of arguments")
    p.add_argument("--timeout", type=float, default=10.0)
    p = with_broker(sub.add_parser("monitor", help="decoded live view of the bus"))
    p.add_argument("filter", nargs="?", help="MQTT topic filter (default: everything under the prefix)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages")
    sub.add_parser("csms", help="development OCPP 1.6 / 2.0.1 CSMS (see `everpy csms --help`)", add_help=False)
    return parser


# Commands whose output is the point: `everpy modules | head` ends quietly on a closed pipe. Never
# `run` (a charger must not die because whoever read its output went away) nor the CSMS server.
PRINTING_COMMANDS = ("check", "modules", "interfaces", "graph", "call", "monitor")


def main(argv: Sequence[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["csms"]:
        return cmd_csms(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    if from_command_line and args.command in PRINTING_COMMANDS:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.command not in ("run",):
        setup_logging("WARNING")
    handlers = {
        "check": cmd_check, "run": cmd_run, "modules": cmd_modules, "interfaces": cmd_interfaces,
        "graph": cmd_graph, "call": cmd_call, "monitor": cmd_monitor,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
