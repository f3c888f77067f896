"""Subscriptions that check incoming vars against the interface before charging logic sees them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from everpy import Module, Remote
from everpy.core.definitions import SchemaViolation


def subscribe_checked(
    module: Module, remote: Remote, var: str, callback: Callable[[Any], Awaitable[None] | None]
) -> None:
    """Like ``remote.subscribe``, but a value that does not match the interface schema is dropped
    with a warning. Vars may come from other processes; a malformed one must neither reach the
    state machine nor crash (and so restart) the module in the middle of a session."""
    check = module.definitions.var_validator(remote.interface, var)

    def receive(value: Any) -> Awaitable[None] | None:
        try:
            check(value)
        except SchemaViolation as exc:
            module.log.warning("dropping %s from %s.%s: %s", var, remote.module_id, remote.impl_id, exc)
            return None
        return callback(value)

    remote.subscribe(var, receive)
