"""Exceptions of the msgpack-RPC layer.

Every exception says what happens next, so callers can decide without reading the code:

- ``RpcError``: the peer answered with an error. The connection stays open; the same call gives the
  same answer until the peer's state changes.
- ``RpcTimeout``: no answer in time. The connection stays open; the peer may still act (a late answer
  is dropped).
- ``ConnectionLost``: the connection closed before the answer. The answer never comes; reconnect first.
- ``HandshakeFailed`` (a ``ConnectionLost``): wrong key, wrong protocol or no handshake; the connection
  was closed. Retrying with the same key fails again.
"""

from __future__ import annotations

from typing import Any


class RpcException(Exception):
    """Base of everything this package raises."""


class RpcError(RpcException):
    """The remote side answered a request with an error object.

    ``kind`` is a short machine-readable name (``NoSuchMethod``, ``InvalidParams``, ``InvalidRequest``,
    ``HandlerError``, ``ResultNotSerialisable``, or whatever the peer sent), ``message`` is for humans and
    ``data`` carries optional details. Peers that send a plain string as the error (msgpack-rpc-python,
    rpclib) get ``kind == "Remote"`` and the string as ``message``; ``raw`` is always the object as received.

    A handler may raise ``RpcError`` itself to answer with a chosen ``kind``.
    """

    def __init__(self, kind: str, message: str = "", data: Any = None, *, raw: Any = None) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message
        self.data = data
        self.raw = raw if raw is not None else self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        """The error object sent in a response: a map, so peers can branch on ``type``."""
        wire: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.data is not None:
            wire["data"] = self.data
        return wire

    @classmethod
    def from_wire(cls, error: Any) -> RpcError:
        """Builds the exception from any non-nil error object (the spec allows any object)."""
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            message = error.get("message", "")
            return cls(error["type"], message if isinstance(message, str) else repr(message),
                       error.get("data"), raw=error)
        if isinstance(error, str):
            return cls("Remote", error, raw=error)
        if isinstance(error, bytes):
            return cls("Remote", error.decode("utf-8", "replace"), raw=error)
        if isinstance(error, list | tuple) and error and isinstance(error[0], str):
            # msgpack-rpc-python's RPCError.to_msgpack() shape: [message]
            return cls("Remote", error[0], raw=error)
        return cls("Remote", repr(error), raw=error)


class RpcTimeout(RpcException):
    """No response within the call's timeout. The connection stays usable; the peer may still act."""


class ConnectionLost(RpcException):
    """The connection closed (or was never usable) before the response arrived. Reconnect first."""


class HandshakeFailed(ConnectionLost):
    """The pre-shared-key handshake failed; the connection was closed. Same key = same failure."""

