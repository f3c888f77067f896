"""TCP (optionally TLS) server and client that produce authenticated ``RpcPeer`` objects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable

from everpy.rpc import protocol
from everpy.rpc.auth import HANDSHAKE_TIMEOUT, client_handshake, server_handshake
from everpy.rpc.errors import ConnectionLost, HandshakeFailed
from everpy.rpc.peer import DEFAULT_CALL_TIMEOUT, RpcPeer
from everpy.rpc.registry import MethodRegistry

_log = logging.getLogger("everpy.rpc")

PeerCallback = Callable[[RpcPeer], Awaitable[None] | None]


class RpcServer:
    """Accepts connections; each one becomes an ``RpcPeer`` after the key handshake (if a key is set).

    ``on_connect(peer)`` runs before the peer starts reading, so it can set ``peer.registry`` or close
    callbacks; by default every peer shares ``registry``. A connection that fails the handshake, or does
    not finish it within ``handshake_timeout``, is closed with a log line; the server keeps serving.
    """

    def __init__(
        self,
        registry: MethodRegistry | None = None,
        *,
        psk: bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_connect: PeerCallback | None = None,
        max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_handshakes: int = 16,
        max_handshakes_per_address: int = 2,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = registry if registry is not None else MethodRegistry()
        self.peers: set[RpcPeer] = set()
        self._psk = psk
        self._ssl = ssl_context
        self._on_connect = on_connect
        self._max_frame_size = max_frame_size
        self._call_timeout = call_timeout
        self._handshake_timeout = handshake_timeout
        # Unauthenticated connections cost a task each until their handshake times out: cap them, so
        # someone on the network cannot tie the board up by opening connections and saying nothing.
        self._max_handshakes = max_handshakes
        self._handshaking = 0
        # ... and per source address, so that one host cannot take every slot and lock the main board out
        self._max_per_address = max_handshakes_per_address
        self._handshaking_from: dict[str, int] = {}
        self._server: asyncio.base_events.Server | None = None
        self._log = log or _log

    async def start(self, host: str | list[str] | None, port: int) -> None:
        """Listens on ``host`` (``None`` = all interfaces; prefer an explicit address) and ``port``
        (0 = any free port; read it back from ``port``)."""
        self._server = await asyncio.start_server(self._accept, host, port, ssl=self._ssl,
                                                  ssl_handshake_timeout=self._handshake_timeout if self._ssl
                                                  else None)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [tuple(s.getsockname()[:2]) for s in self._server.sockets] if self._server else []

    def broadcast(self, method: str, *params: object) -> None:
        """Sends a notification to every connected peer."""
        for peer in list(self.peers):
            with contextlib.suppress(ConnectionLost):
                peer.notify(method, *params)

    async def close(self) -> None:
        """Stops listening and closes every connection (running handlers are cancelled)."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(peer.aclose("server closing") for peer in list(self.peers)))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        if self._psk is not None:
            from_host = self._handshaking_from.get(host, 0)
            if self._handshaking >= self._max_handshakes or from_host >= self._max_per_address:
                self._log.warning("rpc: refused connection from %s: %d handshakes already pending (%d from it)",
                                  address, self._handshaking, from_host)
                writer.transport.abort()
                return
            self._handshaking += 1
            self._handshaking_from[host] = from_host + 1
            try:
                async with asyncio.timeout(self._handshake_timeout):
                    await server_handshake(reader, writer, self._psk)
            except (HandshakeFailed, TimeoutError, ConnectionError, OSError) as exc:
                reason = str(exc) or "handshake timed out"
                self._log.warning("rpc: refused connection from %s: %s", address, reason)
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
                return
            finally:
                self._handshaking -= 1
                left = self._handshaking_from.pop(host) - 1
                if left:
                    self._handshaking_from[host] = left
        peer = RpcPeer(reader, writer, self.registry, max_frame_size=self._max_frame_size,
                       call_timeout=self._call_timeout, log=self._log)
        self.peers.add(peer)
        peer.on_close(self.peers.discard)
        if self._on_connect is not None:
            result = self._on_connect(peer)
            if result is not None:
                await result
        peer.start()


async def connect(
    host: str,
    port: int,
    registry: MethodRegistry | None = None,
    *,
    psk: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = 5.0,
    max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    log: logging.Logger | None = None,
) -> RpcPeer:
    """Opens a connection, runs the key handshake (if ``psk``) and returns a started ``RpcPeer``.

    Raises ``ConnectionLost`` if the server cannot be reached within ``connect_timeout`` and
    ``HandshakeFailed`` if the key is refused or the server cannot prove it knows the key.
    """
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl_context,
                server_hostname=server_hostname if ssl_context else None)
    except (TimeoutError, ConnectionError, OSError, ssl.SSLError) as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
    initial = b""
    if psk is not None:
        try:
            async with asyncio.timeout(connect_timeout):
                initial = await client_handshake(reader, writer, psk)
        except (HandshakeFailed, TimeoutError, ConnectionError, OSError) as exc:
            writer.close()
            if isinstance(exc, HandshakeFailed):
                raise
            raise HandshakeFailed(f"handshake with {host}:{port} failed: {exc or 'timed out'}") from exc
    peer = RpcPeer(reader, writer, registry, max_frame_size=max_frame_size, call_timeout=call_timeout,
                   log=log, initial_data=initial)
    peer.start()
    return peer


def server_tls_context(certfile: str, keyfile: str, client_ca: str | None = None) -> ssl.SSLContext:
    """TLS for the server side; with ``client_ca`` clients must present a certificate signed by it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls_context(server_ca: str, certfile: str | None = None, keyfile: str | None = None,
                       check_hostname: bool = True) -> ssl.SSLContext:
    """TLS for the client side, trusting only ``server_ca``. Boards found by mDNS are usually reached by
    IP address, so ``check_hostname=False`` is allowed; the certificate chain is still verified."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context
