"""Wire compatibility both ways with msgpack-rpc-python 0.4.1 (tornado 4.5, msgpack-python 0.5.6), run in
its own virtualenv as a separate process: the de-facto reference implementation of the spec in Python."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rpc_testkit import demo_registry, mrpc_python

from everpy.rpc import MethodRegistry, RpcError, RpcServer, connect

PEER_SCRIPT = Path(__file__).parent / "mrpc_peer.py"


@pytest.fixture(scope="module")
def mrpc() -> Path:
    return mrpc_python()


@pytest.fixture
async def mrpc_server(mrpc: Path) -> AsyncIterator[int]:
    process = await asyncio.create_subprocess_exec(
        str(mrpc), str(PEER_SCRIPT), "server", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.startswith(b"PORT "), line
        yield int(line.split()[1])
    finally:
        process.stdin.close()  # the peer stops when its stdin closes
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_everpy_client_against_msgpack_rpc_python_server(mrpc_server: int) -> None:
    peer = await connect("127.0.0.1", mrpc_server)
    try:
        assert await peer.call("add", 20, 22) == 42
        # their server unpacks strings as raw bytes and packs them back as str: text survives as text
        value = {"a": [1, 2.5, None, True], "b": "ü"}
        assert await peer.call("echo", value) == value
        results = await asyncio.gather(*(peer.call("add", n, n) for n in range(50)))  # pipelined ids
        assert results == [2 * n for n in range(50)]
        with pytest.raises(RpcError) as caught:
            await peer.call("no_such_method")
        assert caught.value.kind == "Remote" and "not found" in caught.value.message
        with pytest.raises(RpcError) as caught:
            await peer.call("fail", "boom")
        assert caught.value.message == "boom"
        peer.notify("note", "hello")
        assert await peer.call("notes_seen") == ["hello"]  # notification arrived before the call
    finally:
        await peer.aclose()


async def test_msgpack_rpc_python_client_against_everpy_server(mrpc: Path) -> None:
    notes: list[str] = []
    registry = demo_registry()
    registry.register("note", notes.append)
    registry.register("notes_seen", lambda: list(notes))
    server = RpcServer(registry)
    await server.start("127.0.0.1", 0)
    try:
        process = await asyncio.create_subprocess_exec(
            str(mrpc), str(PEER_SCRIPT), "client", str(server.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        steps = {s["step"]: s for s in map(json.loads, out.decode().splitlines())}
    finally:
        await server.close()
    assert steps["add"] == {"step": "add", "result": 42}
    assert steps["echo_map"]["result"] == {"a": [1, 2.5, None, True], "b": "ü"}
    # msgpack-python 0.5 without raw=False returns our bin-typed bytes as bytes
    assert steps["echo_bin"]["result"] == {"bytes": "00ff"}
    assert steps["unknown"]["error"]["type"] == "NoSuchMethod"
    assert steps["fail"]["error"] == {"type": "HandlerError", "message": "ValueError: boom"}
    assert steps["notes"]["result"] == ["hello"]


def test_peer_script_is_not_collected_by_this_interpreter() -> None:
    # mrpc_peer.py imports msgpackrpc, which only exists in the venv; it must stay a script
    assert "msgpackrpc" not in sys.modules


async def test_everpy_registry_is_an_allow_list_unlike_getattr_dispatch() -> None:
    # msgpack-rpc-python dispatches any attribute of its handler object; everpy only registered names
    registry = MethodRegistry()
    registry.register("visible", lambda: 1)
    server = RpcServer(registry)
    await server.start("127.0.0.1", 0)
    peer = await connect("127.0.0.1", server.port)
    try:
        for name in ("__init__", "register", "_handlers", "names", "invoke"):
            with pytest.raises(RpcError) as caught:
                await peer.call(name)
            assert caught.value.kind == "NoSuchMethod"
    finally:
        await peer.aclose()
        await server.close()
