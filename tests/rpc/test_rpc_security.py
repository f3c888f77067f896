"""Pre-shared-key handshake and TLS on real sockets: right key connects, wrong or missing key is refused,
a silent client is dropped after the handshake timeout, and the server keeps serving throughout."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from rpc_testkit import RawClient, demo_registry

from everpy.rpc import (
    ConnectionLost,
    HandshakeFailed,
    MethodRegistry,
    RpcError,
    RpcPeer,
    RpcServer,
    client_tls_context,
    connect,
    load_key,
    server_tls_context,
)

KEY = bytes(range(32))


@pytest.fixture
async def keyed_server() -> RpcServer:
    server = RpcServer(demo_registry(), psk=KEY, handshake_timeout=0.5)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


async def test_right_key_connects_and_calls(keyed_server: RpcServer) -> None:
    peer = await connect("127.0.0.1", keyed_server.port, psk=KEY)
    try:
        assert await peer.call("add", 1, 2) == 3
    finally:
        await peer.aclose()


async def test_wrong_key_is_refused_and_server_keeps_serving(keyed_server: RpcServer) -> None:
    with pytest.raises(HandshakeFailed):
        await connect("127.0.0.1", keyed_server.port, psk=b"\xff" * 32)
    peer = await connect("127.0.0.1", keyed_server.port, psk=KEY)
    try:
        assert await peer.call("add", 1, 2) == 3
    finally:
        await peer.aclose()


async def test_server_refuses_a_client_with_the_wrong_key_even_if_the_client_skips_checks(
        keyed_server: RpcServer) -> None:
    # A hand-rolled client that ignores the server's proof and sends a made-up proof of its own.
    raw = await RawClient.open(keyed_server.port)
    try:
        await raw.send_obj([0, 0, "everpy.auth.hello", [1, b"n" * 32]])
        hello_answer = await raw.receive()
        assert hello_answer[2] is None and len(hello_answer[3][0]) == 32
        await raw.send_obj([0, 1, "everpy.auth.proof", [b"\x00" * 32]])
        refusal = await raw.receive()
        assert refusal[2]["type"] == "AuthFailed"
        await raw.expect_closed()
    finally:
        await raw.close()


async def test_client_without_handshake_gets_auth_required_then_close(keyed_server: RpcServer) -> None:
    raw = await RawClient.open(keyed_server.port)
    try:
        await raw.send_obj([0, 9, "add", [1, 2]])
        answer = await raw.receive()
        assert answer[:2] == [1, 9] and answer[2]["type"] == "AuthRequired"
        await raw.expect_closed()
    finally:
        await raw.close()
    peer = await connect("127.0.0.1", keyed_server.port)  # an everpy client without a key
    try:
        with pytest.raises(RpcError) as caught:
            await peer.call("add", 1, 2)
        assert caught.value.kind == "AuthRequired"
        await asyncio.wait_for(peer.wait_closed(), 10)
    finally:
        await peer.aclose()


async def test_silent_client_is_dropped_after_the_handshake_timeout(keyed_server: RpcServer) -> None:
    raw = await RawClient.open(keyed_server.port)
    try:
        await raw.expect_closed(timeout=10)  # server's handshake_timeout is 0.5 s
    finally:
        await raw.close()


async def test_client_refuses_a_server_that_does_not_know_the_key() -> None:
    impostor = RpcServer(demo_registry(), psk=b"\x01" * 32)
    await impostor.start("127.0.0.1", 0)
    try:
        with pytest.raises(HandshakeFailed, match="server does not know"):
            await connect("127.0.0.1", impostor.port, psk=KEY)
    finally:
        await impostor.close()


async def test_notification_pushed_right_after_the_handshake_is_not_lost() -> None:
    got: asyncio.Queue[str] = asyncio.Queue()

    def greet(peer: RpcPeer) -> None:
        peer.notify("welcome", "hi")  # goes out right behind the handshake confirmation

    server = RpcServer(demo_registry(), psk=KEY, on_connect=greet)
    await server.start("127.0.0.1", 0)
    registry = MethodRegistry()
    registry.register("welcome", got.put_nowait)
    peer = await connect("127.0.0.1", server.port, registry, psk=KEY)
    try:
        assert await asyncio.wait_for(got.get(), 10) == "hi"
    finally:
        await peer.aclose()
        await server.close()


def test_load_key_accepts_hex_text_and_files_and_refuses_short_keys(tmp_path: Path) -> None:
    assert load_key(KEY.hex()) == KEY
    assert load_key("correct horse battery staple") == b"correct horse battery staple"
    key_file = tmp_path / "psk"
    key_file.write_text(KEY.hex() + "\n")
    assert load_key(f"file:{key_file}") == KEY
    with pytest.raises(ValueError, match="at least 16"):
        load_key("short")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and a server certificate made with the openssl CLI (real X.509, no mocks)."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=everpy test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "sat.key", "-out", "sat.csr", "-subj", "/CN=satellite")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:satellite\n")
    run("x509", "-req", "-in", "sat.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "sat.pem", "-days", "2", "-extfile", "ext.cnf")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other CA")
    return {name: str(d / name) for name in ("ca.pem", "sat.pem", "sat.key", "other.pem")}


async def test_tls_with_key_handshake(tls_files: dict[str, str]) -> None:
    server = RpcServer(demo_registry(), psk=KEY,
                       ssl_context=server_tls_context(tls_files["sat.pem"], tls_files["sat.key"]))
    await server.start("127.0.0.1", 0)
    try:
        peer = await connect("127.0.0.1", server.port, psk=KEY,
                             ssl_context=client_tls_context(tls_files["ca.pem"]), server_hostname="127.0.0.1")
        try:
            assert await peer.call("echo", "over tls") == "over tls"
        finally:
            await peer.aclose()
        with pytest.raises(ConnectionLost):  # a client trusting another CA refuses the server
            await connect("127.0.0.1", server.port, psk=KEY,
                          ssl_context=client_tls_context(tls_files["other.pem"]), server_hostname="127.0.0.1")
        peer = await connect("127.0.0.1", server.port, psk=KEY,
                             ssl_context=client_tls_context(tls_files["ca.pem"]), server_hostname="127.0.0.1")
        try:
            assert await peer.call("add", 1, 1) == 2  # still serving after the refused client
        finally:
            await peer.aclose()
    finally:
        await server.close()


async def test_pending_handshakes_are_capped_and_the_server_recovers() -> None:
    server = RpcServer(demo_registry(), psk=KEY, handshake_timeout=1.0, max_handshakes=2)
    await server.start("127.0.0.1", 0)
    silent = [await RawClient.open(server.port) for _ in range(2)]
    try:
        for raw in silent:  # both are inside the server's handshake (a first byte makes sure)
            await raw.send(b"\x94")
        extra = await RawClient.open(server.port)
        started = asyncio.get_running_loop().time()
        await extra.expect_closed(timeout=5)
        assert asyncio.get_running_loop().time() - started < 0.9  # refused at once, not after the timeout
        await extra.close()
        for raw in silent:
            await raw.expect_closed(timeout=10)  # the silent ones time out and free their slots
        peer = await connect("127.0.0.1", server.port, psk=KEY)
        try:
            assert await peer.call("add", 2, 2) == 4
        finally:
            await peer.aclose()
    finally:
        for raw in silent:
            await raw.close()
        await server.close()


async def test_one_host_cannot_take_every_handshake_slot_from_the_main_board() -> None:
    """A host that opens many connections and says nothing (here from 127.0.0.2) holds at most
    max_handshakes_per_address of the pending slots; the main board (127.0.0.1) still connects at once."""
    server = RpcServer(demo_registry(), psk=KEY, handshake_timeout=5.0, max_handshakes=4,
                       max_handshakes_per_address=2)
    await server.start("127.0.0.1", 0)
    attackers = []
    try:
        for _ in range(6):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
            writer.write(b"\x94")  # inside the handshake, then silence
            attackers.append((reader, writer))
        for reader, _ in attackers[2:]:  # beyond the host's two slots: closed at once
            try:
                assert await asyncio.wait_for(reader.read(1), 5) == b""
            except ConnectionResetError:
                pass  # aborted: refused as well
        assert not any(reader.at_eof() for reader, _ in attackers[:2])  # the two in their handshake stay open
        started = asyncio.get_running_loop().time()
        peer = await connect("127.0.0.1", server.port, psk=KEY)
        try:
            assert await peer.call("add", 2, 3) == 5
        finally:
            await peer.aclose()
        assert asyncio.get_running_loop().time() - started < 2.0  # not after the attackers' timeouts
    finally:
        for _, writer in attackers:
            writer.close()
        await server.close()
