"""The explicit allow-list of methods a peer may call.

Nothing is reachable unless registered by name: there is no ``getattr`` on objects, so a method added to
a class for other reasons never becomes remotely callable.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from everpy.rpc.errors import RpcError

Handler = Callable[..., Any] | Callable[..., Awaitable[Any]]


class MethodRegistry:
    """Maps method names to handlers. Handlers take the request's params positionally."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, inspect.Signature | None]] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"method {name!r} is already registered")
        try:
            signature: inspect.Signature | None = inspect.signature(handler)
        except (TypeError, ValueError):  # some builtins have no signature; arity is then not checked
            signature = None
        self._handlers[name] = (handler, signature)

    def method(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler)
            return handler

        return decorate

    def unregister(self, name: str) -> None:
        self._handlers.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    async def invoke(self, name: str, params: list[Any]) -> Any:
        """Runs a handler. Raises ``RpcError`` (NoSuchMethod, InvalidParams); handler exceptions propagate."""
        entry = self._handlers.get(name)
        if entry is None:
            raise RpcError("NoSuchMethod", f"no method {name!r} (called with {len(params)} params)")
        handler, signature = entry
        if signature is not None:
            try:
                signature.bind(*params)
            except TypeError as exc:
                raise RpcError("InvalidParams", f"{name}: {exc}") from None
        result = handler(*params)
        if inspect.isawaitable(result):
            result = await result
        return result
