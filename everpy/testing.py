"""Helpers for testing modules on the real bus: a private mosquitto, the runtime, and a probe.

See docs/module-api.md ("Testing a module on the real bus").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from everpy.core import wire
from everpy.core.bus import BrokerAddress, Bus
from everpy.core.clock import Clock
from everpy.core.exceptions import CommandError, CommandTimeout
from everpy.core.loading import load_system
from everpy.core.module import Module
from everpy.core.runtime import Runtime

M = TypeVar("M", bound=Module)


class Recorder:
    """Values seen on one topic since it was created, consumed in order."""

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        self._decode = decode
        self.values: list[Any] = []
        self._next = 0
        self._changed = asyncio.Event()

    def _add(self, topic: str, payload: bytes) -> None:
        try:
            self.values.append(self._decode(payload))
        except (wire.WireError, KeyError, TypeError):
            return
        self._changed.set()

    async def next(self, timeout: float = 10.0) -> Any:
        return await self.wait_for(lambda _: True, timeout)

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        """The first not yet consumed value matching ``predicate``; values before it are consumed."""
        async with asyncio.timeout(timeout):
            while True:
                while self._next < len(self.values):
                    value = self.values[self._next]
                    self._next += 1
                    if predicate(value):
                        return value
                self._changed.clear()
                await self._changed.wait()

    @property
    def latest(self) -> Any:
        return self.values[-1] if self.values else None

    def drain(self) -> list[Any]:
        """Consume and return everything recorded so far."""
        out = self.values[self._next :]
        self._next = len(self.values)
        return out

    def forget(self) -> None:
        """Drop everything recorded so far (long tests that must not grow)."""
        self.values.clear()
        self._next = 0


class Probe:
    """A test client on a bus: calls, watches and publishes as a module would.

    Its subscriptions and publishes share one connection, so a ``watch()`` followed by ``call()`` never
    misses the reaction; after triggering something out of band, ``await flush()`` first.
    """

    def __init__(self, bus: Bus, prefix: str = "everest") -> None:
        self.bus = bus
        self.topics = wire.Topics(prefix)
        self.id = f"probe{uuid.uuid4().hex[:8]}"
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._subscribed: set[str] = set()

    async def call(self, module_id: str, impl_id: str, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
        response = self.topics.cmd_response(module_id, impl_id, cmd, self.id)
        if response not in self._subscribed:
            self._subscribed.add(response)
            self.bus.subscribe(response, self._on_response)
        call_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        self.bus.publish(self.topics.cmd(module_id, impl_id, cmd), wire.cmd_request(call_id, args, self.id))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CommandTimeout(f"no reply within {timeout:g} s", target=f"{module_id}.{impl_id}.{cmd}") from None
        finally:
            self._pending.pop(call_id, None)

    def _on_response(self, topic: str, payload: bytes) -> None:
        _, data = wire.decode(payload, wire.CMD_RESULT)
        result = data["data"]
        future = self._pending.get(result["id"])
        if future is None or future.done():
            return
        if "error" in result:
            err = result["error"]
            future.set_exception(CommandError.from_wire(err[wire.ERROR_TYPE_KEY], err[wire.ERROR_MSG_KEY]))
        else:
            future.set_result(result.get("retval"))

    def watch(self, module_id: str, impl_id: str, var: str) -> Recorder:
        recorder = Recorder(lambda p: wire.decode(p, wire.VAR)[1]["data"])
        self.bus.subscribe(self.topics.var(module_id, impl_id, var), recorder._add)
        return recorder

    def watch_errors(self, module_id: str, impl_id: str) -> Recorder:
        recorder = Recorder(lambda p: wire.decode(p, (wire.RAISE_ERROR, wire.CLEAR_ERROR))[1])
        self.bus.subscribe(self.topics.impl(module_id, impl_id) + "/error/#", recorder._add)
        return recorder

    def watch_topic(self, topic_filter: str) -> Recorder:
        recorder = Recorder(lambda p: p)
        self.bus.subscribe(topic_filter, recorder._add)
        return recorder

    async def publish_var(self, module_id: str, impl_id: str, var: str, value: Any) -> None:
        self.bus.publish(self.topics.var(module_id, impl_id, var), wire.encode(wire.VAR, {"data": value}))

    def publish_error(self, module_id: str, impl_id: str, error_type: str, state: str, **fields: Any) -> None:
        """An error event as module ``module_id`` would publish it."""
        error = {"type": error_type, "sub_type": "", "message": "", "severity": "High", "vendor_id": "test",
                 "origin": {"module_id": module_id, "implementation_id": impl_id},
                 "uuid": str(uuid.uuid4()), "state": state, **fields}
        kind = wire.RAISE_ERROR if state == "Active" else wire.CLEAR_ERROR
        self.bus.publish(self.topics.error(module_id, impl_id, error_type), wire.encode(kind, error))

    def publish_raw(self, topic: str, payload: bytes | str) -> None:
        self.bus.publish(topic, payload)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the broker has processed everything this probe sent (subscriptions included)."""
        topic = f"{self.topics.prefix}everpy/probe/{uuid.uuid4().hex}"
        seen = asyncio.Event()
        sub = self.bus.subscribe(topic, lambda t, p: seen.set())
        self.bus.publish(topic, b"1")
        await asyncio.wait_for(seen.wait(), timeout)
        self.bus.unsubscribe(sub)


class RunningSystem(Probe):
    """A started system plus a probe client on its bus."""

    def __init__(self, runtime: Runtime, probe_bus: Bus) -> None:
        super().__init__(probe_bus, runtime.system.settings.mqtt_everest_prefix)
        self.runtime = runtime

    @property
    def definitions(self) -> Any:
        return self.runtime.system.definitions

    @property
    def instances(self) -> dict[str, Module]:
        host = self.runtime.host
        assert host is not None
        return {mid: slot.instance for mid, slot in host.slots.items() if slot.instance is not None}

    def instance(self, module_id: str, cls: type[M]) -> M:
        """The running instance of `module_id`, checked to be a `cls`: typed access to what only that
        module type has (``system.instance("agent", SatelliteAgent).port``)."""
        module = self.instances[module_id]
        if not isinstance(module, cls):
            raise TypeError(f"module {module_id!r} is a {type(module).__name__}, not a {cls.__name__}")
        return module


@asynccontextmanager
async def run_system(
    config: dict[str, Any] | Path | str,
    clock: Clock | None = None,
    extra_module_dirs: Sequence[Path] = (),
    extra_definition_dirs: Sequence[Path] = (),
    broker: BrokerAddress | None = None,
) -> AsyncIterator[RunningSystem]:
    system = load_system(Path(config) if isinstance(config, str) else config, extra_module_dirs, extra_definition_dirs)
    runtime = Runtime(system, broker=broker, clock=clock)
    await runtime.start()
    probe = Bus(runtime.broker, "everpy-test-probe")
    try:
        await probe.connect()
        yield RunningSystem(runtime, probe)
    finally:
        await probe.close()
        await runtime.stop()
