"""Helpers for the msgpack-RPC tests: demo registry, byte-level client, msgpack-rpc-python venv."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

import msgpack
import pytest

from everpy.rpc import MethodRegistry

CACHE_DIR = Path(os.environ.get("EVERPY_TEST_CACHE", Path.home() / ".cache" / "everpy-test"))
MRPC_VENV = CACHE_DIR / "msgpack-rpc-python-0.4.1"


def demo_registry() -> MethodRegistry:
    registry = MethodRegistry()
    registry.register("add", lambda a, b: a + b)
    registry.register("echo", lambda value: value)

    async def sleep_then(seconds: float, value: Any) -> Any:
        await asyncio.sleep(seconds)  # simulated slow handler, not synchronisation
        return value

    registry.register("sleep_then", sleep_then)

    def fail(message: str) -> None:
        raise ValueError(message)

    registry.register("fail", fail)
    registry.register("unpackable", lambda: object())
    return registry


class RawClient:
    """A plain socket speaking bytes, for frames an RpcPeer would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=False)

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Sends bytes; a server that already closed on us (reset, broken pipe) is not an error here."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass

    async def send_obj(self, obj: Any) -> None:
        await self.send(msgpack.packb(obj, use_bin_type=True))

    async def receive(self, timeout: float = 10) -> Any:
        """Next message from the server; raises EOFError if the server closed the connection."""
        async with asyncio.timeout(timeout):
            while True:
                for obj in self.unpacker:
                    return obj
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    raise EOFError("server closed the connection")
                self.unpacker.feed(data)

    async def expect_closed(self, timeout: float = 10) -> None:
        """Waits until the server closed the connection (EOF or reset); times out otherwise."""
        async with asyncio.timeout(timeout):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionResetError:
                pass

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def mrpc_python() -> Path:
    """Python of a virtualenv holding msgpack-rpc-python 0.4.1; created once, shared between runs.

    Skips (with the reason) only if the package cannot be installed on this machine.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    python = MRPC_VENV / "bin" / "python"
    with open(CACHE_DIR / "msgpack-rpc-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs must not build the venv twice
        marker = MRPC_VENV / "installed"
        if not marker.exists():
            venv.create(MRPC_VENV, with_pip=True, clear=True)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "msgpack-rpc-python==0.4.1"],
                capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                pytest.skip(f"cannot install msgpack-rpc-python 0.4.1 in a venv: {done.stderr[-500:]}")
            marker.write_text("ok\n")
    return python

