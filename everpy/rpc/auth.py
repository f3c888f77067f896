"""Pre-shared-key handshake: both sides prove they know the key before any other message is accepted.

Runs once per connection, right after TCP (or TLS) is up, as ordinary msgpack-RPC frames::

    client -> [0, 0, "everpy.auth.hello", [AUTH_PROTOCOL, client_nonce]]
    server -> [1, 0, nil, [server_nonce, HMAC(key, "everpy-rpc server" | client_nonce | server_nonce)]]
    client    checks the server's proof (a fake server learns nothing usable and is dropped here)
    client -> [0, 1, "everpy.auth.proof", [HMAC(key, "everpy-rpc client" | client_nonce | server_nonce)]]
    server -> [1, 1, nil, true]            or  [1, 1, {"type": "AuthFailed", ...}, nil] and close

Fresh 32-byte nonces from both sides stop replays; the different labels stop reflecting one side's proof
back as the other's. What this does not give: secrecy or integrity of the later traffic against someone
who can rewrite packets on the link — use TLS (``ssl=``) for that, alone or with the key. The key should
be random (``secrets.token_hex(32)``): a guessable key can be found offline from one recorded handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import msgpack

from everpy.rpc import protocol
from everpy.rpc.errors import HandshakeFailed, RpcError
from everpy.rpc.protocol import Request, Response

AUTH_PROTOCOL = 1
NONCE_BYTES = 32
MIN_KEY_BYTES = 16
HANDSHAKE_TIMEOUT = 5.0
_HELLO = "everpy.auth.hello"
_PROOF = "everpy.auth.proof"
_MAX_HANDSHAKE_FRAME = 512


def load_key(value: str) -> bytes:
    """Turns a configured key into bytes: ``file:<path>`` reads a file (first line), hex is decoded,
    anything else is taken as UTF-8 text. Refuses keys shorter than 16 bytes."""
    text = value.strip()
    if text.startswith("file:"):
        text = Path(text[5:]).read_text(encoding="utf-8").splitlines()[0].strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = text.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"pre-shared key has {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def _proof(key: bytes, label: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hmac.new(key, label + client_nonce + server_nonce, hashlib.sha256).digest()


class _FrameReader:
    """Reads single small msgpack frames; anything unexpected is a failed handshake."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=_MAX_HANDSHAKE_FRAME)
        self._received = bytearray()  # everything fed, so bytes after the handshake can be handed on

    async def next(self) -> Any:
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            except (ValueError, TypeError) as exc:
                raise HandshakeFailed(f"undecodable handshake data: {exc}") from None
            data = await self._reader.read(_MAX_HANDSHAKE_FRAME)
            if not data:
                raise HandshakeFailed("connection closed during the handshake")
            try:
                self._unpacker.feed(data)
            except msgpack.BufferFull:
                raise HandshakeFailed("handshake frame too large") from None
            self._received += data

    def remaining(self) -> bytes:
        """Bytes received after the last frame read (the peer's first messages after the handshake)."""
        return bytes(self._received[self._unpacker.tell():])


def _send(writer: asyncio.StreamWriter, message: list[Any]) -> None:
    writer.write(msgpack.packb(message, use_bin_type=True))


async def server_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes) -> None:
    """Authenticates a connecting client. Raises ``HandshakeFailed`` (the caller closes the socket)."""
    frames = _FrameReader(reader)
    hello = protocol.classify(await frames.next())
    if type(hello) is Request and hello.method != _HELLO:
        _send(writer, protocol.response(hello.msgid, RpcError(
            "AuthRequired", "this server needs the pre-shared-key handshake first").to_wire(), None))
        await writer.drain()
    if (type(hello) is not Request or hello.method != _HELLO or len(hello.params) != 2
            or hello.params[0] != AUTH_PROTOCOL or type(hello.params[1]) is not bytes
            or len(hello.params[1]) != NONCE_BYTES):
        raise HandshakeFailed("client did not start with a valid handshake")
    client_nonce = hello.params[1]
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    _send(writer, protocol.response(hello.msgid, None, [
        server_nonce, _proof(key, b"everpy-rpc server", client_nonce, server_nonce)]))
    await writer.drain()
    proof = protocol.classify(await frames.next())
    expected = _proof(key, b"everpy-rpc client", client_nonce, server_nonce)
    if (type(proof) is not Request or proof.method != _PROOF or len(proof.params) != 1
            or type(proof.params[0]) is not bytes or not hmac.compare_digest(proof.params[0], expected)):
        if type(proof) is Request:
            _send(writer, protocol.response(proof.msgid, RpcError(
                "AuthFailed", "wrong pre-shared key").to_wire(), None))
            await writer.drain()
        raise HandshakeFailed("client does not know the pre-shared key")
    if frames.remaining():
        raise HandshakeFailed("client sent data before the handshake finished")
    _send(writer, protocol.response(proof.msgid, None, True))
    await writer.drain()


async def client_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes) -> bytes:
    """Authenticates to a server and checks the server's proof. Raises ``HandshakeFailed``.

    Returns bytes that arrived right after the server's confirmation (the server may push at once);
    the caller hands them to its ``RpcPeer`` as ``initial_data``.
    """
    frames = _FrameReader(reader)
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    _send(writer, protocol.request(0, _HELLO, [AUTH_PROTOCOL, client_nonce]))
    await writer.drain()
    answer = protocol.classify(await frames.next())
    if type(answer) is not Response or answer.msgid != 0:
        raise HandshakeFailed("server did not answer the handshake")
    if answer.error is not None:
        raise HandshakeFailed(f"server refused the handshake: {RpcError.from_wire(answer.error)}")
    result = answer.result
    if (type(result) is not list or len(result) != 2 or type(result[0]) is not bytes
            or len(result[0]) != NONCE_BYTES or type(result[1]) is not bytes):
        raise HandshakeFailed("malformed handshake answer from the server")
    server_nonce, server_proof = result
    if not hmac.compare_digest(server_proof, _proof(key, b"everpy-rpc server", client_nonce, server_nonce)):
        raise HandshakeFailed("server does not know the pre-shared key")
    client_proof = _proof(key, b"everpy-rpc client", client_nonce, server_nonce)
    _send(writer, protocol.request(1, _PROOF, [client_proof]))
    await writer.drain()
    done = protocol.classify(await frames.next())
    if type(done) is not Response or done.msgid != 1:
        raise HandshakeFailed("server did not confirm the handshake")
    if done.error is not None:
        raise HandshakeFailed(f"server refused the key: {RpcError.from_wire(done.error)}")
    return frames.remaining()
