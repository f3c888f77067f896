"""Independent CSMS peers installed by package name, each run as its own process.

- npm `ocpp-rpc` (pinned in package.json beside this file) in strict mode, driven by ocpp_rpc_csms.cjs:
  another language, websocket stack and schema validator than the station's.
- PyPI `ocpp-csms` (AGPL-3.0, test-only): installed into its own venv, never vendored or imported here.

Both are installed into `.cache/ocpp-peers/` (gitignored) on first use and reused while the pinned
version stays the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache" / "ocpp-peers"
OCPP_RPC_SCRIPT = HERE / "ocpp_rpc_csms.cjs"
OCPP_CSMS_DRIVER = HERE / "ocpp_csms_driver.py"
OCPP_CSMS_REQUIREMENT = "ocpp-csms==0.1.0"
INSTALL_TIMEOUT_S = 300
WAIT_S = 20.0  # other engineers' suites share the two cores


@contextlib.contextmanager
def _install_lock(name: str) -> Iterator[None]:
    """One installer at a time per peer, also across pytest processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class PeerUnavailable(UserWarning):
    """A CSMS peer could not be installed: its tests are skipped, and the run's warnings summary says why."""


def _skip(reason: str) -> NoReturn:
    warnings.warn(PeerUnavailable(reason), stacklevel=2)
    pytest.skip(reason)


def _run_installer(command: list[str], cwd: Path, what: str) -> None:
    """Run an installer; a failure (no network, no registry) skips the peer tests with the reason."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _skip(f"{what} could not be installed: `{' '.join(command)}` took over {INSTALL_TIMEOUT_S} s")
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        _skip(f"{what} could not be installed: `{' '.join(command)}` failed: {' | '.join(tail)}")


def ocpp_rpc_modules() -> Path:
    """node_modules holding the pinned ocpp-rpc, installed with npm on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _skip("node/npm are not installed (scripts/setup.sh installs them with EVERPY_SETUP_TESTS=1)")
    manifest = json.loads((HERE / "package.json").read_text())
    version = manifest["dependencies"]["ocpp-rpc"]
    target = CACHE / f"ocpp-rpc-{version}"
    installed = target / "node_modules" / "ocpp-rpc" / "package.json"
    with _install_lock("ocpp-rpc"):
        if not installed.exists() or json.loads(installed.read_text())["version"] != version:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(HERE / "package.json", target / "package.json")
            _run_installer(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], target,
                           f"npm package ocpp-rpc@{version}")
    return target / "node_modules"


def ocpp_csms_command() -> Path:
    """The `ocpp-csms` entry point in its own venv, created with pip on first use."""
    venv = CACHE / "ocpp-csms-venv"
    stamp = venv / "installed-requirement"
    with _install_lock("ocpp-csms"):
        if not (stamp.exists() and stamp.read_text() == OCPP_CSMS_REQUIREMENT):
            _run_installer([sys.executable, "-m", "venv", "--clear", str(venv)], REPO, "a venv for ocpp-csms")
            _run_installer([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", OCPP_CSMS_REQUIREMENT], REPO,
                           f"PyPI package {OCPP_CSMS_REQUIREMENT}")
            stamp.write_text(OCPP_CSMS_REQUIREMENT)
    return venv / "bin" / "ocpp-csms"


class PeerCallError(Exception):
    """The station (or the peer's own strict validation) answered a CSMS call with an error."""

    def __init__(self, action: str, error: dict[str, Any]) -> None:
        super().__init__(f"{action}: {error.get('code')}: {error.get('message')}")
        self.code = str(error.get("code"))


class LineProcess:
    """A peer process whose standard output is read line by line into `lines`, with bounded waits."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *command: str, env: dict[str, str] | None = None) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=open(self.log_path, "wb"), env=env)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()  # end of output: waiters re-check and see the process is gone

    async def wait_line(self, predicate: Callable[[str], bool], after: int = 0, timeout: float = WAIT_S) -> int:
        """Index of the first line from `after` on that matches; fails if the process exits first."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index in range(after, len(self.lines)):
                        if predicate(self.lines[index]):
                            return index
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(f"{self.name} exited; stderr: {self.stderr()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join([line for line in self.lines if '"event":"frame"' not in line][-15:])
            raise AssertionError(f"{self.name}: no matching line within {timeout} s; last lines:\n{tail}") from None

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader


@dataclass
class StationCall:
    """A CALL the station sent to the ocpp-rpc CSMS (it passed strict validation: it reached a handler)."""

    index: int
    action: str
    params: dict[str, Any]


class JsonLinesPeer:
    """A peer process that prints one JSON event per line and takes one JSON request per line."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.process = LineProcess(name, log_path)
        self.port = 0
        self._next_request = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def _start(self, *command: str, env: dict[str, str]) -> None:
        await self.process.start(*command, env=env)
        self.port = int((await self.wait_event(lambda e: e.get("event") == "listening"))["port"])

    async def __aexit__(self, *exc: object) -> None:
        await self.process.stop()

    @staticmethod
    def _event(line: str) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return {"event": "non-json", "text": line}
        return event if isinstance(event, dict) else {"event": "non-json", "text": line}

    @property
    def events(self) -> list[dict[str, Any]]:
        return [self._event(line) for line in self.process.lines]

    def mark(self) -> int:
        return len(self.process.lines)

    async def wait_event(self, predicate: Callable[[dict[str, Any]], bool], after: int = 0,
                         timeout: float = WAIT_S) -> dict[str, Any]:
        index = await self.process.wait_line(lambda line: predicate(self._event(line)), after, timeout)
        return self._event(self.process.lines[index])

    async def _request(self, what: str, request: dict[str, Any]) -> Any:
        """Send a request line; the `result` of its answer line, or PeerCallError with its `error`."""
        self._next_request += 1
        request_id = self._next_request
        assert self.process.process is not None and self.process.process.stdin is not None
        self.process.process.stdin.write(json.dumps({"id": request_id, **request}).encode() + b"\n")
        await self.process.process.stdin.drain()
        answer = await self.wait_event(lambda e: e.get("event") == "answer" and e.get("id") == request_id)
        if "error" in answer:
            raise PeerCallError(what, answer["error"])
        return answer["result"]


class OcppRpcCsms(JsonLinesPeer):
    """ocpp_rpc_csms.cjs as a process: what the station sent, and calls to the station."""

    def __init__(self, modules: Path, log_path: Path, settings: dict[str, Any] | None = None) -> None:
        super().__init__("ocpp-rpc CSMS", log_path)
        self.modules = modules
        self.settings = settings or {}

    @property
    def url(self) -> str:
        scheme = "wss" if "tls" in self.settings else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def __aenter__(self) -> OcppRpcCsms:
        env = {"PATH": str(Path(shutil.which("node") or "node").parent), "NODE_PATH": str(self.modules)}
        await self._start("node", str(OCPP_RPC_SCRIPT), json.dumps(self.settings), env=env)
        return self

    def calls(self, action: str) -> list[StationCall]:
        return [StationCall(i, e["action"], e["params"]) for i, e in enumerate(self.events)
                if e.get("event") == "call" and e["action"] == action]

    def violations(self) -> list[dict[str, Any]]:
        """Frames that failed the official schemas, broke the RPC framing, or named an unknown action."""
        faults = ("validation_failure", "bad_message", "unhandled", "non-json")
        return [e for e in self.events if e.get("event") in faults]

    async def wait_call(self, action: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
                        after: int = 0, timeout: float = WAIT_S) -> dict[str, Any]:
        """Parameters of the first `action` CALL from the station (from line `after` on) matching predicate."""
        event = await self.wait_event(
            lambda e: e.get("event") == "call" and e["action"] == action and predicate(e["params"]), after, timeout)
        return dict(event["params"])

    async def refuse_connections(self) -> None:
        """Drop the station's connection and refuse new ones with HTTP 503, as a CSMS that is away."""
        await self._request("refuse", {"control": "refuse"})

    async def accept_connections(self, first_transaction_id: int) -> None:
        """Let stations in again, handing out transaction ids from first_transaction_id on."""
        await self._request("accept", {"control": "accept", "firstTransactionId": first_transaction_id})

    async def call(self, action: str, identity: str = "CP1", **params: Any) -> dict[str, Any]:
        """Send a CALL to the station; its CALLRESULT payload (validated by ocpp-rpc) or PeerCallError."""
        return dict(await self._request(action, {"identity": identity, "action": action, "params": params}))


class OcppCsmsDriver(JsonLinesPeer):
    """ocpp_csms_driver.py in the ocpp-csms venv: ocpp-csms's CentralSystem, steered over stdin."""

    def __init__(self, command: Path, log_path: Path, settings: dict[str, Any] | None = None) -> None:
        super().__init__("ocpp-csms CentralSystem", log_path)
        self.python = command.parent / "python"
        self.settings = settings or {}

    async def __aenter__(self) -> OcppCsmsDriver:
        await self._start(str(self.python), str(OCPP_CSMS_DRIVER), json.dumps(self.settings),
                          env={"PATH": str(self.python.parent), "PYTHONUNBUFFERED": "1"})
        return self

    async def wait_for(self, event: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
                       after: int = 0) -> dict[str, Any]:
        """The first ocpp-csms event of class `event` (e.g. "TransactionStartedEvent") matching predicate."""
        return await self.wait_event(lambda e: e.get("event") == event and predicate(e), after)

    async def refuse_connections(self) -> None:
        """Drop the stations and refuse new connections (HTTP 401), as a CSMS that is away."""
        await self._request("refuse", {"control": "refuse"})

    async def accept_connections(self) -> None:
        await self._request("accept", {"control": "accept"})

    async def method(self, name: str, charge_point: str = "CP1", **args: Any) -> Any:
        """Call a ChargePoint method of ocpp-csms, e.g. method("async_reset", reset_type="Soft")."""
        return await self._request(name, {"charge_point": charge_point, "method": name, "args": args})

    async def request(self, action: str, charge_point: str = "CP1", **params: Any) -> dict[str, Any]:
        """Any OCPP 1.6 request through ChargePoint.async_call, fields in snake_case as ocpp.v16.call has them."""
        return dict(await self._request(action, {"charge_point": charge_point, "request": action, "params": params}))


class OcppCsmsCli:
    """`ocpp-csms --host 127.0.0.1 --port 0`: it prints one event (a dataclass repr) per line."""

    def __init__(self, command: Path, log_path: Path) -> None:
        self.command = command
        self.port = 0
        self.process = LineProcess("ocpp-csms", log_path)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def __aenter__(self) -> OcppCsmsCli:
        # --port 0: the kernel picks a free port, which ocpp-csms prints
        await self.process.start(str(self.command), "--host", "127.0.0.1", "--port", "0",
                                 env={"PATH": str(self.command.parent), "PYTHONUNBUFFERED": "1"})
        listening = await self.process.wait_line(lambda line: line.startswith("listening on port "))
        self.port = int(self.process.lines[listening].rsplit(" ", 1)[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.process.stop()

    async def wait_printed(self, prefix: str, contains: str = "", after: int = 0) -> tuple[int, str]:
        """The first printed event line starting with `prefix` (the event class) and containing `contains`."""
        index = await self.process.wait_line(lambda line: line.startswith(prefix) and contains in line, after)
        return index, self.process.lines[index]
