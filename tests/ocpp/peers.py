"""Independent CSMS peers installed by package name, each in its own process: npm `ocpp-rpc` (strict
mode) and PyPI `ocpp-csms` (AGPL: its own venv, test-only, never vendored). Installed once into a cache
directory; tests skip with the reason when the registry cannot be reached."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CACHE = Path(os.environ.get("EVERPY_TEST_CACHE", Path.home() / ".cache" / "everpy-tests"))
OCPP_RPC_VERSION = "2.2.1"
OCPP_CSMS_VERSION = "0.1.0"
HERE = Path(__file__).parent / "peers"


def ocpp_rpc_modules() -> Path:
    target = CACHE / f"ocpp-rpc-{OCPP_RPC_VERSION}"
    modules = target / "node_modules"
    if not (modules / "ocpp-rpc" / "package.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target),
                               f"ocpp-rpc@{OCPP_RPC_VERSION}"], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"cannot install npm ocpp-rpc: {done.stderr[-500:]}")
    return modules


def ocpp_csms_python() -> Path:
    venv = CACHE / f"ocpp-csms-{OCPP_CSMS_VERSION}-venv"
    python = venv / "bin" / "python"
    if not (venv / "installed").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", f"ocpp-csms=={OCPP_CSMS_VERSION}"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"cannot install PyPI ocpp-csms: {done.stderr[-500:]}")
        (venv / "installed").write_text("ok\n")
    return python


class LinePeer:
    """A peer process speaking JSON lines on stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.events: list[dict[str, Any]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LinePeer:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            async with self._changed:
                self._changed.notify_all()

    async def wait_event(self, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    found = next((e for e in self.events if predicate(e)), None)
                    if found is not None:
                        return found
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def wait_call(self, action: str, predicate: Any = lambda p: True, timeout: float = 20.0) -> dict[str, Any]:
        event = await self.wait_event(lambda e: e.get("event") == "call" and e["action"] == action
                                      and predicate(e["payload"]), timeout)
        return event["payload"]

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        self.process.stdin.write((json.dumps({"id": request_id, "action": action, "payload": payload}) + "\n").encode())
        await self.process.stdin.drain()
        return await self.wait_event(lambda e: e.get("id") == request_id and e["event"] in ("result", "error"), timeout)

    def calls(self, action: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.events if e.get("event") == "call" and e["action"] == action]

    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") in ("strictValidationFailure", "badMessage")
                or e.get("unhandled")]


def ocpp_rpc_peer() -> LinePeer:
    modules = ocpp_rpc_modules()
    return LinePeer(["node", str(HERE / "ocpp_rpc_csms.js")], env={"NODE_PATH": str(modules)})


class OcppCsmsPeer(LinePeer):
    async def call(self, action: str, payload: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        """`action` is an ocpp-csms ChargePoint method name without `async_`, payload its arguments."""
        assert self.process is not None and self.process.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        line = json.dumps({"id": request_id, "station": "CP1", "method": action, "args": payload}) + "\n"
        self.process.stdin.write(line.encode())
        await self.process.stdin.drain()
        return await self.wait_event(lambda e: e.get("id") == request_id and e["event"] in ("result", "error"), timeout)

    def of(self, event_name: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e.get("event") == event_name]


def ocpp_csms_peer() -> OcppCsmsPeer:
    return OcppCsmsPeer([str(ocpp_csms_python()), str(HERE / "ocpp_csms_driver.py")])
