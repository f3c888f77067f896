"""Fixtures for the msgpack-RPC tests: real TCP servers and clients on loopback."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the test modules here import their
# shared helpers from rpc_testkit.py next to this file.
sys.path.insert(0, str(Path(__file__).parent))

from rpc_testkit import RawClient, demo_registry

from everpy.rpc import RpcPeer, RpcServer, connect


@pytest.fixture
async def server() -> AsyncIterator[RpcServer]:
    srv = RpcServer(demo_registry(), max_frame_size=64 * 1024)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


@pytest.fixture
async def client(server: RpcServer) -> AsyncIterator[RpcPeer]:
    peer = await connect("127.0.0.1", server.port, call_timeout=10)
    yield peer
    await peer.aclose()


@pytest.fixture
async def raw(server: RpcServer) -> AsyncIterator[RawClient]:
    client = await RawClient.open(server.port)
    yield client
    await client.close()
