"""Current values of the configuration keys: table defaults, overridden by the station's initial
configuration, overridden by what the CSMS changed (persisted in the store)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.config_keys import BY_NAME, Access, KeyType, split_csl

ChangeHook = Callable[[str, str], None]


class Configuration:
    def __init__(self, store: OcppStore, initial: dict[str, str], log: logging.Logger) -> None:
        self._store = store
        self._values = {name: key.default for name, key in BY_NAME.items()}
        for name, value in initial.items():
            key = BY_NAME.get(name)
            if key is None or not key.validate(str(value)):
                raise ValueError(f"initial OCPP configuration: {name}={value!r} is not a valid key/value")
            self._values[name] = str(value)
        for name, value in store.config_values().items():
            if name in BY_NAME and BY_NAME[name].validate(value):
                self._values[name] = value
            elif name in BY_NAME:
                log.error("ignoring persisted %s=%r: not valid for this version", name, value)
        self._hooks: list[ChangeHook] = []
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}

    def on_change(self, hook: ChangeHook) -> None:
        self._hooks.append(hook)

    def str(self, name: str) -> str:
        return self._values[name]

    def bool(self, name: str) -> bool:
        return self._values[name].lower() == "true"

    def int(self, name: str) -> int:
        return int(self._values[name])

    def csl(self, name: str) -> list[str]:
        return split_csl(self._values[name])

    def set(self, name: str, value: str) -> None:
        """Set and persist without the CSMS checks (station-internal updates, e.g. HeartbeatInterval
        from BootNotification.conf)."""
        if BY_NAME[name].type is KeyType.BOOL:
            value = value.lower()
        self._values[name] = value
        self._store.set_config(name, value)
        for hook in self._hooks:
            hook(name, value)
        for waiter in self._waiters.pop(name, []):
            if not waiter.done():
                waiter.set_result(value)

    async def wait_change(self, name: str) -> str:
        """The next value set for `name`."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(waiter)
        return await waiter

    def set_read_only(self, name: str, value: str) -> None:
        """Station-determined read-only values (NumberOfConnectors); not persisted."""
        self._values[name] = value

    def readable(self, names: list[str]) -> tuple[list[dict[str, object]], list[str]]:
        """(configurationKey entries, unknownKey names) as GetConfiguration answers them."""
        wanted = names or [n for n, k in BY_NAME.items() if k.access is not Access.WRITE_ONLY]
        known: list[dict[str, object]] = []
        unknown: list[str] = []
        for name in wanted:
            key = BY_NAME.get(name)
            if key is None or key.access is Access.WRITE_ONLY:
                unknown.append(name)
                continue
            known.append({"key": name, "readonly": key.access is Access.READ_ONLY, "value": self._values[name]})
        return known, unknown
