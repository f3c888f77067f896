"""Current values of the 1.6 configuration keys: table defaults, overridden by the station's initial
configuration, overridden by what the CSMS changed (persisted in the store).

Key names are CiString in OCPP 1.6: they are matched without regard to case and answered in the
table's spelling. A persisted value that no longer passes the key's checks is quarantined, not used.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable

from everpy.core.clock import Clock
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.config_keys import BY_NAME, Access, ConfigKey, KeyType, split_csl

ChangeHook = Callable[[str, str], None]
_BY_FOLDED = {name.casefold(): key for name, key in BY_NAME.items()}


def lookup(name: str) -> ConfigKey | None:
    """The key a CSMS means by `name` (case-insensitive)."""
    return _BY_FOLDED.get(name.casefold())


class Configuration:
    def __init__(self, store: OcppStore, initial: dict[builtins.str, builtins.str], log: logging.Logger) -> None:
        self._store = store
        self._values = {name: key.default for name, key in BY_NAME.items()}
        for name, value in initial.items():
            key = lookup(name)
            if key is None or not key.validate(str(value)):
                raise ValueError(f"initial OCPP configuration: {name}={value!r} is not a valid key/value")
            self._values[key.name] = str(value)
        for name, value in store.config_values().items():
            key = lookup(name)
            if key is not None and key.validate(value):
                self._values[key.name] = value
            elif key is not None:
                log.error("ignoring persisted %s=%r: not a valid value (quarantined)", name, value)
                store.quarantine("config", name, value, "not a valid value for this key")
        self._hooks: list[ChangeHook] = []
        self._waiters: dict[str, list[asyncio.Future[builtins.str]]] = {}

    def on_change(self, hook: ChangeHook) -> None:
        self._hooks.append(hook)

    def str(self, name: builtins.str) -> builtins.str:
        return self._values[name]

    def bool(self, name: builtins.str) -> builtins.bool:
        return self._values[name].lower() == "true"

    def int(self, name: builtins.str) -> builtins.int:
        return int(self._values[name])

    def csl(self, name: builtins.str) -> list[builtins.str]:
        return split_csl(self._values[name])

    def set(self, name: builtins.str, value: builtins.str) -> None:
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

    async def wait_change(self, name: builtins.str) -> builtins.str:
        """The next value set for `name`."""
        waiter: asyncio.Future[builtins.str] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(name, [])
        waiters.append(waiter)
        try:
            return await waiter
        finally:  # a waiter given up (timer ran out) must not stay behind: no growth per sleep
            if waiter in waiters:
                waiters.remove(waiter)

    async def sleep_unless_changed(self, clock: Clock, seconds: float, name: builtins.str) -> builtins.bool:
        """Sleep on the clock; True if the time passed, False if `name` changed first (a timer
        reconfigured from a day to a minute must not sleep out the day)."""
        try:
            await clock.wait_for(self.wait_change(name), seconds)
        except TimeoutError:
            return True
        return False

    def set_read_only(self, name: builtins.str, value: builtins.str) -> None:
        """Station-determined read-only values (NumberOfConnectors); not persisted."""
        self._values[name] = value

    def readable(self, names: list[builtins.str]) -> tuple[list[dict[builtins.str, object]], list[builtins.str]]:
        """(configurationKey entries, unknownKey names) as GetConfiguration answers them."""
        wanted = names or [n for n, k in BY_NAME.items() if k.access is not Access.WRITE_ONLY]
        known: list[dict[builtins.str, object]] = []
        unknown: list[builtins.str] = []
        for name in wanted:
            key = lookup(name)
            if key is None or key.access is Access.WRITE_ONLY:
                unknown.append(name)
                continue
            known.append({"key": key.name, "readonly": key.access is Access.READ_ONLY, "value": self._values[key.name]})
        return known, unknown
