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


class _Entry:
    """A handler plus what is needed to check a call's arity cheaply (no Signature.bind per call)."""

    __slots__ = ("handler", "is_async", "min_params", "max_params")

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.min_params = 0
        self.max_params: int | None = None  # None: not checked (*args, or no signature available)
        try:
            parameters = inspect.signature(handler).parameters.values()
        except (TypeError, ValueError):  # some builtins have no signature
            return
        positional = [p for p in parameters
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if any(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in parameters):
            raise ValueError(f"{handler!r}: required keyword-only parameters cannot be sent positionally")
        self.min_params = sum(1 for p in positional if p.default is p.empty)
        if not any(p.kind is p.VAR_POSITIONAL for p in parameters):
            self.max_params = len(positional)

    def check_arity(self, name: str, count: int) -> None:
        if count < self.min_params or (self.max_params is not None and count > self.max_params):
            expected = (f"{self.min_params}" if self.max_params == self.min_params
                        else f"{self.min_params}..{'n' if self.max_params is None else self.max_params}")
            raise RpcError("InvalidParams", f"{name} takes {expected} params, got {count}")


class MethodRegistry:
    """Maps method names to handlers. Handlers take the request's params positionally."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in self._entries:
            raise ValueError(f"method {name!r} is already registered")
        self._entries[name] = _Entry(handler)

    def method(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler)
            return handler

        return decorate

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def lookup(self, name: str, param_count: int) -> _Entry:
        """The entry for a call, after the allow-list and arity checks (raises ``RpcError``)."""
        entry = self._entries.get(name)
        if entry is None:
            raise RpcError("NoSuchMethod", f"no method {name!r} (called with {param_count} params)")
        entry.check_arity(name, param_count)
        return entry

    async def invoke(self, name: str, params: list[Any]) -> Any:
        """Runs a handler. Raises ``RpcError`` (NoSuchMethod, InvalidParams); handler exceptions propagate."""
        result = self.lookup(name, len(params)).handler(*params)
        if inspect.isawaitable(result):
            result = await result
        return result
