"""The one place that knows which websockets API is installed.

Yocto scarthgap ships websockets 12.0, which only has the legacy API (``websockets.client`` /
``websockets.server``); current releases default to ``websockets.asyncio``. Everything else in everpy
uses the small interface below, which both back ends satisfy: a connection with ``send``, ``recv``,
``close`` and ``subprotocol``, and a server whose handler receives ``(connection, path, headers)``.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

try:  # websockets >= 13
    from websockets.asyncio.client import connect as _asyncio_connect
    from websockets.asyncio.server import serve as _asyncio_serve

    NEW_API = True
except ImportError:  # websockets 12 (Yocto scarthgap)
    NEW_API = False

__all__ = ["ConnectionClosed", "InvalidHandshake", "Connection", "connect", "serve", "WEBSOCKETS_VERSION"]

WEBSOCKETS_VERSION: str = websockets.__version__


class Connection(Protocol):
    @property
    def subprotocol(self) -> Any: ...

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


async def connect(
    url: str,
    *,
    subprotocols: list[str],
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    open_timeout: float = 10.0,
    ping_interval: float | None = None,
) -> Connection:
    """Open a client websocket. Raises OSError, InvalidHandshake or TimeoutError on failure."""
    kwargs: dict[str, Any] = {
        "subprotocols": subprotocols,
        "open_timeout": open_timeout,
        "ping_interval": ping_interval,
        "ping_timeout": ping_interval,
        "max_size": 2**22,
    }
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
    header_list = list((headers or {}).items())
    if NEW_API:
        return await _asyncio_connect(url, additional_headers=header_list, **kwargs)
    from websockets.legacy.client import connect as legacy_connect

    return await legacy_connect(url, extra_headers=header_list, **kwargs)


@dataclass
class Refusal:
    """Returned by a server's ``check`` to refuse the websocket upgrade with an HTTP status."""

    status: HTTPStatus
    body: str = ""


ServerHandler = Callable[[Connection, str, Mapping[str, str]], Awaitable[None]]
ServerCheck = Callable[[str, Mapping[str, str]], Refusal | None]


async def serve(
    handler: ServerHandler,
    host: str,
    port: int,
    *,
    subprotocols: list[str],
    check: ServerCheck | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """Start a websocket server; returns an object with ``close()``, ``wait_closed()`` and ``sockets``.

    ``check(path, headers)`` runs before the upgrade and may refuse it (e.g. 401 for bad Basic auth).
    """
    if NEW_API:

        async def new_handler(connection: Any) -> None:
            await handler(connection, connection.request.path, connection.request.headers)

        def new_process_request(connection: Any, request: Any) -> Any:
            if check is None:
                return None
            refusal = check(request.path, request.headers)
            if refusal is None:
                return None
            return connection.respond(refusal.status, refusal.body)

        return await _asyncio_serve(
            new_handler,
            host,
            port,
            subprotocols=[Subprotocol(p) for p in subprotocols],
            process_request=new_process_request,
            ssl=ssl_context,
            ping_interval=None,
        )

    from websockets.legacy.server import serve as legacy_serve

    async def legacy_handler(connection: Any, path: str) -> None:
        await handler(connection, path, connection.request_headers)

    async def legacy_process_request(path: str, headers: Any) -> Any:
        if check is None:
            return None
        refusal = check(path, headers)
        if refusal is None:
            return None
        return refusal.status, [], refusal.body.encode()

    return await legacy_serve(
        legacy_handler,
        host,
        port,
        subprotocols=[Subprotocol(p) for p in subprotocols],
        process_request=legacy_process_request,
        ssl=ssl_context,
        ping_interval=None,
    )


def server_port(server: Any) -> int:
    """The TCP port a server from :func:`serve` listens on (for servers bound to port 0)."""
    return int(next(iter(server.sockets)).getsockname()[1])
