"""The module API: what a module author subclasses and calls. Reference: docs/module-api.md."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from everpy.core.clock import Clock

if TYPE_CHECKING:
    from everpy.core.definitions import Definitions, Interface
    from everpy.core.host import ModuleHost, RemoteTarget
    from everpy.core.manifest import Manifest

F = TypeVar("F", bound=Callable[..., Any])
VarCallback = Callable[[Any], "Awaitable[None] | None"]
ErrorCallback = Callable[[dict[str, Any]], "Awaitable[None] | None"]
StateCallback = Callable[[str], "Awaitable[None] | None"]
CommandHandler = Callable[..., Any]


def command(impl_id: str, cmd: str) -> Callable[[F], F]:
    """Mark a method as the handler of command ``cmd`` of the provided implementation ``impl_id``."""

    def mark(fn: F) -> F:
        fn.__everpy_command__ = (impl_id, cmd)  # type: ignore[attr-defined]
        return fn

    return mark


class Remote:
    """One connection of a requirement: call its commands, follow its vars and errors."""

    def __init__(self, module: Module, target: RemoteTarget) -> None:
        self._module = module
        self._target = target

    @property
    def module_id(self) -> str:
        return self._target.module_id

    @property
    def impl_id(self) -> str:
        return self._target.impl_id

    @property
    def interface(self) -> str:
        return self._target.interface

    @property
    def definition(self) -> Interface:
        """The interface definition (cmds, vars, errors) this connection speaks."""
        return self._module._host.definitions.interfaces[self._target.interface]

    async def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Call ``cmd`` with keyword arguments; raises an :class:`everpy.CommandError` subclass."""
        return await self._module._host.call(self._module, self._target, cmd, args, timeout)

    async def call_with(self, cmd: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        """Like :meth:`call` with the arguments as a dict (for generic code such as tunnels)."""
        return await self._module._host.call(self._module, self._target, cmd, args, timeout)

    def subscribe(self, var: str, callback: VarCallback) -> None:
        self._module._host.subscribe_var(self._module, self._target, var, callback)

    def subscribe_all_vars(self, callback: Callable[[str, Any], Awaitable[None] | None]) -> None:
        """callback(var_name, value) for every var of the interface (for generic forwarding)."""
        self._module._host.subscribe_all_vars(self._module, self._target, callback)

    def subscribe_error(self, callback: ErrorCallback, error_type: str | None = None) -> None:
        self._module._host.subscribe_errors(self._module, self._target, callback, error_type)

    def subscribe_state(self, callback: StateCallback) -> None:
        """callback(state) with "down" or "ready" each time the remote's module goes down or comes back.

        "down": it crashed, hung or exited and is being restarted (calls fail fast with PeerUnavailable
        meanwhile); "ready": it is back, after a fresh init() and ready(), with none of its former state.
        Only changes are reported; if the module is down when you subscribe, "down" comes at once.
        """
        self._module._host.subscribe_state(self._module, self._target, callback)

    def __repr__(self) -> str:
        return f"<Remote {self.module_id}.{self.impl_id} ({self.interface})>"


class Module:
    """Base class of every everpy module. Override :meth:`init`, :meth:`ready`, :meth:`stopping`,
    :meth:`shutdown`.

    Lifecycle: ``init()`` -> (every module ready) -> ``ready()`` -> ... -> at an orderly stop (SIGTERM,
    SIGINT, a system restart) ``stopping()`` -> ``shutdown()``. ``stopping()`` runs on every ready module
    at once while the bus and every other module are still up: the place to end what others must hear
    about (stop a transaction, open relays, publish a last state), calls to peers still work. It is
    bounded by ``settings.stop_timeout_s`` and what it publishes is delivered before anything stops.
    ``shutdown()`` comes after, when peers may already be gone: release local resources only.
    """

    _command_methods: dict[tuple[str, str], str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[tuple[str, str], str] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                mark = getattr(value, "__everpy_command__", None)
                if mark is not None:
                    found[mark] = name
        cls._command_methods = found

    def __init__(
        self,
        *,
        module_id: str,
        manifest: Manifest,
        config: dict[str, Any],
        impl_config: dict[str, dict[str, Any]],
        host: ModuleHost,
        clock: Clock,
    ) -> None:
        self.id = module_id
        self.manifest = manifest
        self.config = config
        self.impl_config = impl_config
        self.clock = clock
        self.log = logging.getLogger(f"everpy.{module_id}")
        self._host = host
        self._tasks: set[asyncio.Task[Any]] = set()
        self._extra_handlers: dict[tuple[str, str], CommandHandler] = {}
        self._fallback_handlers: dict[str, Callable[[str, dict[str, Any]], Any]] = {}

    @property
    def definitions(self) -> Definitions:
        """Every loaded interface, type and error definition."""
        return self._host.definitions

    # -- lifecycle, overridden by modules -----------------------------------------------------
    async def init(self) -> None:
        """Set up state and subscriptions. Calls made here are held until global ready."""

    async def ready(self) -> None:
        """Runs once, after every module in the system reported ready."""

    async def stopping(self) -> None:
        """Runs at an orderly stop on every ready module at once, while the bus and all modules are up.

        Bounded by ``settings.stop_timeout_s`` (a hook that takes longer is named in the log and left
        behind); everything published by then reaches the bus before any module shuts down.
        Not run when the module is restarted after a crash (it is gone then).
        """

    async def shutdown(self) -> None:
        """Runs on stop; tasks started with :meth:`spawn` are cancelled afterwards."""

    # -- commands ------------------------------------------------------------------------------
    def set_command_handler(self, impl_id: str, cmd: str, handler: CommandHandler) -> None:
        """Register a handler at run time (instead of the ``@command`` decorator)."""
        self._extra_handlers[(impl_id, cmd)] = handler

    def set_fallback_handler(self, impl_id: str, handler: Callable[[str, dict[str, Any]], Any]) -> None:
        """Handle every command of ``impl_id`` that has no specific handler: handler(cmd, args)."""
        self._fallback_handlers[impl_id] = handler

    def command_handler(self, impl_id: str, cmd: str) -> CommandHandler | None:
        if (impl_id, cmd) in self._extra_handlers:
            return self._extra_handlers[(impl_id, cmd)]
        name = self._command_methods.get((impl_id, cmd))
        if name is not None:
            return getattr(self, name)
        fallback = self._fallback_handlers.get(impl_id)
        if fallback is not None:
            return lambda **args: fallback(cmd, args)
        return None

    # -- providing -------------------------------------------------------------------------------
    def publish(self, impl_id: str, var: str, value: Any) -> None:
        self._host.publish_var(self, impl_id, var, value)

    def raise_error(
        self,
        impl_id: str,
        error_type: str,
        message: str = "",
        sub_type: str = "",
        severity: str = "High",
        vendor_id: str = "everpy",
    ) -> None:
        self._host.raise_error(self, impl_id, error_type, message, sub_type, severity, vendor_id)

    def clear_error(self, impl_id: str, error_type: str, sub_type: str | None = None) -> None:
        self._host.clear_error(self, impl_id, error_type, sub_type)

    def active_errors(self, impl_id: str) -> list[dict[str, Any]]:
        return self._host.active_errors(self, impl_id)

    # -- requiring -------------------------------------------------------------------------------
    def require(self, req_id: str, index: int = 0) -> Remote:
        remotes = self.connections(req_id)
        if index >= len(remotes):
            raise KeyError(f"{self.id}: requirement {req_id!r} has no connection #{index}")
        return remotes[index]

    def connections(self, req_id: str) -> list[Remote]:
        return self._host.connections(self, req_id)

    def subscribe_global_errors(self, callback: ErrorCallback) -> None:
        self._host.subscribe_global_errors(self, callback)

    # -- the system --------------------------------------------------------------------------------
    def request_system_restart(self, reason: str) -> None:
        """Ask the runtime to stop every module cleanly and start the whole system again (a soft reset).

        Under `everpy run` the process re-executes itself after shutdown; with `process: own` the
        request travels to the runtime over the bus.
        """
        self._host.request_system_restart(self, reason)

    # -- tasks -------------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this module; a crash is logged and reported."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._host.module_crashed(self, exc)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
