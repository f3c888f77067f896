"""ModuleHost: runs a group of module instances in one process on one bus connection.

It turns the module API (everpy.core.module) into wire messages (everpy.core.wire) and back:
command dispatch with hold-until-ready, calls with timeouts and typed errors, vars, errors,
the ModuleReady/GlobalReady handshake, heartbeats, and in-process restart of a crashed module.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import jsonschema

from everpy.core import wire
from everpy.core.bus import Bus, Subscription
from everpy.core.clock import Clock
from everpy.core.exceptions import (
    CommandError,
    CommandTimeout,
    HandlerError,
    MessageParsingError,
    NotReadyError,
    PeerUnavailable,
    SchemaValidationError,
    ShutdownError,
    UnknownCommandError,
)
from everpy.core.logs import LogThrottle
from everpy.core.module import Module, Remote
from everpy.core.plugins import PluginError

if TYPE_CHECKING:
    from everpy.core.config import RunConfig
    from everpy.core.definitions import Definitions
    from everpy.core.manifest import Manifest
    from everpy.core.plugins import ModuleType

log = logging.getLogger("everpy.host")

SCHEMA_ERRORS = (ValueError, jsonschema.ValidationError)
INVALID_VAR_VALUE = "generic/InvalidVarValue"
REFUSAL_MESSAGE_CHARS = 200  # an error message is shown on CSMS screens and logs: the gist, not a dump


class SlotState(enum.Enum):
    STARTING = "starting"
    INITIALISED = "initialised"  # init() done, ModuleReady sent, waiting for GlobalReady
    READY = "ready"
    DOWN = "down"


@dataclass(frozen=True)
class RemoteTarget:
    module_id: str
    impl_id: str
    interface: str


@dataclass
class _Slot:
    module_id: str
    instance: Module | None = None
    state: SlotState = SlotState.STARTING
    held: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    handler_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    errors: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    remotes: dict[str, list[Remote]] = field(default_factory=dict)
    crashes: int = 0
    ready_ran: bool = False
    # Refused publishes, one key per impl/var; belongs to the slot so a restart does not reset the pacing.
    refusals: LogThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.refusals = LogThrottle(logging.getLogger(f"everpy.{self.module_id}"))


class ModuleHost:
    def __init__(
        self,
        *,
        run_config: RunConfig,
        definitions: Definitions,
        manifests: dict[str, Manifest],
        module_types: dict[str, ModuleType],
        bus: Bus,
        module_ids: list[str],
        clock: Clock | None = None,
        on_crash: Literal["restart", "exit"] = "restart",
        validate: bool = True,
    ) -> None:
        settings = run_config.settings
        self.config = run_config
        self.definitions = definitions
        self.manifests = manifests
        self.module_types = module_types
        self.bus = bus
        self.topics = wire.Topics(settings.mqtt_everest_prefix)
        self.clock = clock or Clock()
        self.on_crash = on_crash
        self.validate = validate
        self.cmd_timeout = float(settings.cmd_timeout_s)
        self.heartbeat_interval = float(settings.heartbeat_interval_s)
        self.restart_backoff = (float(settings.restart_backoff_s), float(settings.restart_backoff_max_s))
        self.stop_timeout = float(settings.stop_timeout_s)
        self.slots = {mid: _Slot(mid) for mid in module_ids}
        self.global_ready = asyncio.Event()
        self.exit_code: int | None = None
        self.stopped = asyncio.Event()
        self._pending: dict[str, tuple[asyncio.Future[Any], str]] = {}
        self._response_subs: set[str] = set()
        self._down_modules: set[str] = set()
        self._shutting_down = False
        self._stopping_modules = False  # stopping() hooks run: a crash now is not restarted
        self._host_tasks: set[asyncio.Task[Any]] = set()

    # -- startup ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.bus.subscribe(self.topics.global_ready, self._on_global_ready)
        self.bus.subscribe(self.topics.module_state("+"), self._on_module_state)
        if self.on_crash == "exit":  # a child process: the runtime watches its heartbeats for liveness
            self._spawn(self._heartbeat_loop())
        await asyncio.gather(*(self._start_module(mid) for mid in self.slots))

    async def _start_module(self, module_id: str) -> None:
        slot = self.slots[module_id]
        mcfg = self.config.modules[module_id]
        mtype = self.module_types[mcfg.module]
        try:
            cls = mtype.load_class()
        except (PluginError, ImportError) as exc:
            slot.state = SlotState.DOWN
            raise ModuleInitFailed(module_id, exc) from exc
        manifest = self._manifest(mcfg.module)
        slot.state = SlotState.STARTING
        slot.ready_ran = False
        instance = cls(
            module_id=module_id,
            manifest=manifest,
            config=dict(mcfg.config),
            impl_config={k: dict(v) for k, v in mcfg.impl_config.items()},
            host=self,
            clock=self.clock,
        )
        slot.instance = instance
        if mcfg.log_level:
            instance.log.setLevel(mcfg.log_level.upper())
        for impl_id, provide in manifest.provides.items():
            interface = self.definitions.interfaces[provide.interface]
            for cmd in interface.cmds:
                topic = self.topics.cmd(module_id, impl_id, cmd)
                slot.subscriptions.append(
                    self.bus.subscribe(topic, self._cmd_receiver(slot, impl_id, cmd))
                )
        try:
            await instance.init()
        except Exception as exc:
            slot.state = SlotState.DOWN
            log.exception("module %s failed in init()", module_id)
            raise ModuleInitFailed(module_id, exc) from exc
        try:
            self._check_handlers(instance)  # after init(): handlers may be registered there
        except ModuleInitFailed:
            slot.state = SlotState.DOWN
            raise
        slot.state = SlotState.INITIALISED
        self.bus.publish(self.topics.module_ready(module_id), wire.encode(wire.MODULE_READY, True))
        if self.global_ready.is_set():
            self._run_ready(slot)

    def _manifest(self, module_type: str) -> Any:
        return self.manifests[module_type]

    def _check_handlers(self, instance: Module) -> None:
        missing = []
        for impl_id, provide in instance.manifest.provides.items():
            for cmd in self.definitions.interfaces[provide.interface].cmds:
                if instance.command_handler(impl_id, cmd) is None:
                    missing.append(f"{impl_id}.{cmd}")
        known = {
            (impl_id, cmd)
            for impl_id, provide in instance.manifest.provides.items()
            for cmd in self.definitions.interfaces[provide.interface].cmds
        }
        unknown = [f"{i}.{c}" for (i, c) in instance._command_methods if (i, c) not in known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"no handler for {', '.join(missing)}")
            if unknown:
                parts.append(f"handlers for commands the manifest does not provide: {', '.join(unknown)}")
            raise ModuleInitFailed(instance.id, TypeError("; ".join(parts)))

    def _on_global_ready(self, topic: str, payload: bytes) -> None:
        try:
            wire.decode(payload, wire.GLOBAL_READY)
        except wire.WireError as exc:
            log.warning("ignoring malformed %s: %s", topic, exc)
            return
        self.global_ready.set()
        for slot in self.slots.values():
            if slot.state is SlotState.INITIALISED:
                self._run_ready(slot)

    def _run_ready(self, slot: _Slot) -> None:
        if slot.ready_ran or slot.instance is None:
            return
        slot.ready_ran = True
        slot.state = SlotState.READY
        instance = slot.instance
        instance.spawn(instance.ready(), name="ready")
        held, slot.held = slot.held, []
        for impl_id, cmd, data in held:
            self._start_handler(slot, impl_id, cmd, data)

    # -- commands: callee side ------------------------------------------------------------------
    def _cmd_receiver(self, slot: _Slot, impl_id: str, cmd: str) -> Callable[[str, bytes], None]:
        def receive(topic: str, payload: bytes) -> None:
            try:
                _, data = wire.decode(payload, wire.CMD)
                if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                    raise wire.WireError("Cmd data needs a string 'id'")
                if not isinstance(data.get("origin"), str) or "/" in data["origin"] or "+" in data["origin"]:
                    raise wire.WireError("Cmd data needs an 'origin' module id")
                args = data.get("args") or {}
                if not isinstance(args, dict):
                    call_id, origin = data["id"], data["origin"]
                    self._reply_error(slot, impl_id, cmd, call_id, origin, MessageParsingError("args not an object"))
                    return
            except wire.WireError as exc:
                log.warning("%s: dropping malformed command on %s: %s", slot.module_id, topic, exc)
                return
            if slot.state is SlotState.READY:
                self._start_handler(slot, impl_id, cmd, data)
            elif slot.state is SlotState.DOWN:
                self._reply_error(slot, impl_id, cmd, data["id"], data["origin"], NotReadyError("restarting"))
            else:
                slot.held.append((impl_id, cmd, data))

        return receive

    def _start_handler(self, slot: _Slot, impl_id: str, cmd: str, data: dict[str, Any]) -> None:
        """Validate and run a handler. A plain function runs at once and replies without an extra loop
        turn; a coroutine continues in a task owned by the slot (cancelled if the module stops)."""
        reply = _Reply(self, self.topics.cmd_response(slot.module_id, impl_id, cmd, data["origin"]),
                       data["id"], slot.module_id)
        instance = slot.instance
        assert instance is not None
        handler = instance.command_handler(impl_id, cmd)
        if handler is None:
            reply.error(UnknownCommandError(cmd))
            return
        check_args, check_result = self._validators(instance.manifest.provides[impl_id].interface, cmd)
        args = data.get("args") or {}
        try:
            check_args(args)
        except SCHEMA_ERRORS as exc:
            reply.error(SchemaValidationError(f"arguments: {exc}"))
            return
        try:
            result = handler(**args)
        except Exception as exc:
            _handler_failed(instance, f"{impl_id}.{cmd}", reply, exc)
            return
        name = f"{impl_id}.{cmd}"
        if inspect.isawaitable(result):
            # The handler's own coroutine is the task: cancelled before its first step (the module stops)
            # it is still closed properly and the caller is answered, instead of a wrapper never awaiting it.
            task = asyncio.ensure_future(result)
            slot.handler_tasks.add(task)
            task.add_done_callback(slot.handler_tasks.discard)
            task.add_done_callback(functools.partial(_finish, instance, name, reply, check_result))
        else:
            reply.result(instance, name, result, check_result)

    def _reply_error(
        self, slot: _Slot, impl_id: str, cmd: str, call_id: str, origin: str, error: CommandError
    ) -> None:
        topic = self.topics.cmd_response(slot.module_id, impl_id, cmd, origin)
        _Reply(self, topic, call_id, slot.module_id).error(error)

    def _validators(self, interface: str, cmd: str) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
        if not self.validate:
            return _accept, _accept
        return self.definitions.cmd_validators(interface, cmd)

    # -- commands: caller side ------------------------------------------------------------------
    async def call(
        self, caller: Module, target: RemoteTarget, cmd: str, args: dict[str, Any], timeout: float | None
    ) -> Any:
        name = f"{target.module_id}.{target.impl_id}.{cmd}"
        if cmd not in self.definitions.interfaces[target.interface].cmds:
            raise UnknownCommandError(f"interface {target.interface!r} has no command {cmd!r}", target=name)
        if not self.global_ready.is_set():
            await self._wait_global_ready(name)
        if self._shutting_down:
            raise ShutdownError("system is shutting down", target=name)
        if target.module_id in self._down_modules:
            raise PeerUnavailable("module is down (restarting)", target=name)
        response_topic = self.topics.cmd_response(target.module_id, target.impl_id, cmd, caller.id)
        if response_topic not in self._response_subs:
            self._response_subs.add(response_topic)
            self.bus.subscribe(response_topic, self._on_response)
        call_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (future, target.module_id)
        try:
            payload = wire.cmd_request(call_id, args, caller.id)
        except (TypeError, ValueError) as exc:
            self._pending.pop(call_id, None)
            raise SchemaValidationError(f"arguments are not JSON: {exc}", target=name) from None
        self.bus.publish(self.topics.cmd(target.module_id, target.impl_id, cmd), payload)
        limit = self.cmd_timeout if timeout is None else timeout
        try:
            result = await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise CommandTimeout(f"no reply within {limit:g} s", target=name) from None
        except CommandError as exc:
            exc.target = exc.target or name
            _reraise_pending_cancel()
            raise
        finally:
            self._pending.pop(call_id, None)
        _reraise_pending_cancel()
        return result

    async def _wait_global_ready(self, name: str) -> None:
        stop = asyncio.ensure_future(self.stopped.wait())
        ready = asyncio.ensure_future(self.global_ready.wait())
        await asyncio.wait({stop, ready}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ready.cancel()
        if not self.global_ready.is_set():
            raise ShutdownError("stopped before global ready", target=name)

    def _on_response(self, topic: str, payload: bytes) -> None:
        try:
            _, data = wire.decode(payload, wire.CMD_RESULT)
            result = data["data"]
            call_id = result["id"]
        except (wire.WireError, KeyError, TypeError) as exc:
            log.warning("dropping malformed command result on %s: %s", topic, exc)
            return
        pending = self._pending.get(call_id)
        if pending is None or pending[0].done():
            return  # late reply to a call that timed out
        future = pending[0]
        if "error" in result:
            error = result["error"] if isinstance(result["error"], dict) else {}
            future.set_exception(
                CommandError.from_wire(
                    str(error.get(wire.ERROR_TYPE_KEY, "HandlerException")),
                    str(error.get(wire.ERROR_MSG_KEY, "")),
                )
            )
        else:
            future.set_result(result.get("retval"))

    def _on_module_state(self, topic: str, payload: bytes) -> None:
        module_id = topic.rsplit("/", 1)[-1]
        try:
            state = _module_state(payload)
        except wire.WireError as exc:
            log.warning("ignoring malformed module state on %s: %s", topic, exc)
            return
        if state == "down":
            self._down_modules.add(module_id)
            for future, target in list(self._pending.values()):
                if target == module_id and not future.done():
                    future.set_exception(PeerUnavailable("module went down during the call"))
        else:
            self._down_modules.discard(module_id)

    # -- vars ---------------------------------------------------------------------------------------
    def publish_var(self, module: Module, impl_id: str, var: str, value: Any) -> None:
        """Publish a var; a value outside its schema (or not JSON) is refused, never published.

        A refusal is the publisher's error, not its crash: it is logged (throttled per var) and raised as
        generic/InvalidVarValue on the implementation; the next valid value of that var clears it.
        A var or implementation the manifest does not have stays a programming error (KeyError).
        """
        provide = module.manifest.provides.get(impl_id)
        if provide is None:
            raise KeyError(f"{module.id}: no provided implementation {impl_id!r}")
        if var not in self.definitions.interfaces[provide.interface].vars:
            raise KeyError(f"{module.id}.{impl_id}: interface {provide.interface!r} has no var {var!r}")
        try:
            if self.validate:
                self.definitions.var_validator(provide.interface, var)(value)
            payload = wire.encode(wire.VAR, {"data": value})
        except jsonschema.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            self._refuse_var(module, impl_id, var, f"{where}: {exc.message}" if where else exc.message)
            return
        except (TypeError, ValueError) as exc:  # ValueError: NaN or a custom check; TypeError: not JSON at all
            self._refuse_var(module, impl_id, var, str(exc))
            return
        self.bus.publish(self.topics.var(module.id, impl_id, var), payload)
        slot = self.slots[module.id]
        if (impl_id, INVALID_VAR_VALUE, var) in slot.errors:
            slot.refusals.forget(f"{impl_id}/{var}")
            self.clear_error(module, impl_id, INVALID_VAR_VALUE, var)

    def _refuse_var(self, module: Module, impl_id: str, var: str, complaint: str) -> None:
        slot = self.slots[module.id]
        gist = " ".join(complaint.split())
        if len(gist) > REFUSAL_MESSAGE_CHARS:
            gist = gist[: REFUSAL_MESSAGE_CHARS - 3] + "..."
        slot.refusals(f"{impl_id}/{var}", logging.ERROR, "refused to publish %s.%s: %s", impl_id, var, gist)
        self.raise_error(module, impl_id, INVALID_VAR_VALUE, gist, var, "Medium", "everpy")

    def subscribe_var(
        self, module: Module, target: RemoteTarget, var: str, callback: Callable[[Any], Any]
    ) -> None:
        if var not in self.definitions.interfaces[target.interface].vars:
            raise KeyError(f"interface {target.interface!r} has no var {var!r}")
        topic = self.topics.var(target.module_id, target.impl_id, var)
        # Vars may come from other processes or boards: check them against the interface on the way in,
        # so one module's malformed value is dropped with a warning instead of crashing its subscribers.
        check = self.definitions.var_validator(target.interface, var) if self.validate else _accept

        def receive(topic: str, payload: bytes) -> Awaitable[None] | None:
            try:
                _, data = wire.decode(payload, wire.VAR)
                value = data["data"]
                check(value)
            except (wire.WireError, KeyError, TypeError, *SCHEMA_ERRORS) as exc:
                module.log.warning("dropping malformed var on %s: %s", topic, exc)
                return None
            return self._guard(module, callback, value)

        self.slots[module.id].subscriptions.append(self.bus.subscribe(topic, receive))

    def subscribe_all_vars(
        self, module: Module, target: RemoteTarget, callback: Callable[[str, Any], Any]
    ) -> None:
        for var in self.definitions.interfaces[target.interface].vars:
            self.subscribe_var(module, target, var, functools.partial(callback, var))

    async def _guard_async(self, module: Module, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            self.module_crashed(module, exc)

    def _guard(self, module: Module, callback: Callable[..., Any], *args: Any) -> Awaitable[None] | None:
        """Run a module callback; an exception counts as a module crash, never a bus fault."""
        slot = self.slots.get(module.id)
        if slot is None or slot.instance is not module:
            return None  # callback of a replaced instance
        try:
            result = callback(*args)
        except Exception as exc:
            self.module_crashed(module, exc)
            return None
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            return self._guard_async(module, result)
        return None

    # -- peer state ----------------------------------------------------------------------------------
    def subscribe_state(self, module: Module, target: RemoteTarget, callback: Callable[[str], Any]) -> None:
        """callback("down" / "ready") each time the ModuleState of ``target``'s module changes.

        The subscription belongs to the subscriber's slot like its var subscriptions: dropped when the
        subscriber stops, made again by its next init(). A subscriber that starts while the peer is down
        hears "down" at once, so a restarted module does not take a dead peer for a live one.
        """
        topic = self.topics.module_state(target.module_id)
        last: list[str] = []  # the state this subscription reported last; repeats are not changes

        def receive(topic: str, payload: bytes) -> Awaitable[None] | None:
            try:
                state = _module_state(payload)
            except wire.WireError as exc:
                module.log.warning("dropping malformed module state on %s: %s", topic, exc)
                return None
            if last == [state]:
                return None
            last[:] = [state]
            return self._guard(module, callback, state)

        subscription = self.bus.subscribe(topic, receive)
        self.slots[module.id].subscriptions.append(subscription)
        if target.module_id in self._down_modules:
            # through the subscription, so it stays in order with the "ready" that will follow
            down = wire.encode(wire.MODULE_STATE, {"state": "down"})
            asyncio.get_running_loop().call_soon(subscription.deliver, topic, down)

    # -- errors --------------------------------------------------------------------------------------
    def raise_error(
        self, module: Module, impl_id: str, error_type: str, message: str, sub_type: str, severity: str,
        vendor_id: str,
    ) -> None:
        interface = self.definitions.interfaces[module.manifest.provides[impl_id].interface]
        if error_type not in interface.error_types and not error_type.startswith("generic/"):
            raise KeyError(
                f"{module.id}.{impl_id}: error {error_type!r} is not declared by interface {interface.name!r}"
            )
        slot = self.slots[module.id]
        key = (impl_id, error_type, sub_type)
        if key in slot.errors:
            return
        ns, _, name = error_type.partition("/")
        definition = self.definitions.errors.get(ns, {}).get(name)
        error = {
            "type": error_type,
            "sub_type": sub_type,
            "message": message,
            "description": getattr(definition, "description", ""),
            "origin": {"module_id": module.id, "implementation_id": impl_id},
            "vendor_id": vendor_id,
            "severity": severity,
            "timestamp": datetime.fromtimestamp(self.clock.time(), UTC).isoformat().replace("+00:00", "Z"),
            "uuid": str(uuid.uuid4()),
            "state": "Active",
        }
        slot.errors[key] = error
        self.bus.publish(self.topics.error(module.id, impl_id, error_type), wire.encode(wire.RAISE_ERROR, error))

    def clear_error(self, module: Module, impl_id: str, error_type: str, sub_type: str | None) -> None:
        slot = self.slots[module.id]
        for key in [k for k in slot.errors if k[0] == impl_id and k[1] == error_type]:
            if sub_type is None or key[2] == sub_type:
                self._publish_clear(module.id, slot.errors.pop(key))

    def _publish_clear(self, module_id: str, error: dict[str, Any]) -> None:
        cleared = dict(error, state="ClearedByModule")
        impl_id = error["origin"]["implementation_id"]
        self.bus.publish(self.topics.error(module_id, impl_id, error["type"]), wire.encode(wire.CLEAR_ERROR, cleared))

    def active_errors(self, module: Module, impl_id: str) -> list[dict[str, Any]]:
        return [e for (i, _, _), e in self.slots[module.id].errors.items() if i == impl_id]

    def subscribe_errors(
        self, module: Module, target: RemoteTarget, callback: Callable[[dict[str, Any]], Any],
        error_type: str | None,
    ) -> None:
        base = self.topics.impl(target.module_id, target.impl_id) + "/error/"
        topic = base + (error_type if error_type else "#")
        self._subscribe_error_topic(module, topic, callback)

    def subscribe_global_errors(self, module: Module, callback: Callable[[dict[str, Any]], Any]) -> None:
        if not module.manifest.enable_global_errors:
            raise PermissionError(f"{module.id}: set enable_global_errors: true in the manifest")
        self._subscribe_error_topic(module, self.topics.prefix + "modules/+/impl/+/error/#", callback)

    def _subscribe_error_topic(self, module: Module, topic: str, callback: Callable[[dict[str, Any]], Any]) -> None:
        def receive(topic: str, payload: bytes) -> Awaitable[None] | None:
            try:
                _, error = wire.decode(payload, (wire.RAISE_ERROR, wire.CLEAR_ERROR))
                if not isinstance(error, dict) or "type" not in error:
                    raise wire.WireError("error object without 'type'")
            except wire.WireError as exc:
                module.log.warning("dropping malformed error on %s: %s", topic, exc)
                return None
            return self._guard(module, callback, error)

        self.slots[module.id].subscriptions.append(self.bus.subscribe(topic, receive))

    # -- requirements ----------------------------------------------------------------------------------
    def connections(self, module: Module, req_id: str) -> list[Remote]:
        slot = self.slots[module.id]
        if req_id not in slot.remotes:
            if req_id not in module.manifest.requires:
                raise KeyError(f"{module.id}: the manifest has no requirement {req_id!r}")
            targets = []
            for conn in self.config.modules[module.id].connections.get(req_id, []):
                target_type = self.config.modules[conn.module_id].module
                interface = self.manifests[target_type].provides[conn.implementation_id].interface
                targets.append(Remote(module, RemoteTarget(conn.module_id, conn.implementation_id, interface)))
            slot.remotes[req_id] = targets
        return slot.remotes[req_id]

    # -- supervision ---------------------------------------------------------------------------------------
    def request_system_restart(self, module: Module, reason: str) -> None:
        module.log.warning("requests a restart of the whole system: %s", reason)
        request = {"module": module.id, "reason": reason}
        self.bus.publish(self.topics.system_restart, wire.encode(wire.SYSTEM_RESTART, request))

    def module_crashed(self, module: Module, exc: BaseException) -> None:
        slot = self.slots.get(module.id)
        if slot is None or slot.instance is not module or self._shutting_down:
            return
        module.log.error("module crashed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        if slot.state is SlotState.DOWN:
            return
        slot.state = SlotState.DOWN
        slot.crashes += 1
        if self._stopping_modules:
            return  # the system is on its way down: a restart now would only have to be stopped again
        if self.on_crash == "exit":
            self.exit_code = 70
            self.stopped.set()
            return
        self._spawn(self._restart(slot))

    async def _restart(self, slot: _Slot) -> None:
        delay = min(self.restart_backoff[0] * 2 ** (slot.crashes - 1), self.restart_backoff[1])
        self.bus.publish(self.topics.module_state(slot.module_id), wire.encode(wire.MODULE_STATE, {"state": "down"}))
        await self._stop_slot(slot)
        log.warning("restarting module %s in %.1f s (crash #%d)", slot.module_id, delay, slot.crashes)
        await asyncio.sleep(delay)
        if self._shutting_down or self._stopping_modules:  # it would miss stopping() and only be stopped
            return
        try:
            await self._start_module(slot.module_id)
        except ModuleInitFailed:
            slot.crashes += 1
            self._spawn(self._restart(slot))
            return
        self.bus.publish(self.topics.module_state(slot.module_id), wire.encode(wire.MODULE_STATE, {"state": "ready"}))

    async def _stop_slot(self, slot: _Slot, grace: float = 5.0) -> None:
        instance = slot.instance
        for sub in slot.subscriptions:
            self.bus.unsubscribe(sub)
        slot.subscriptions.clear()
        slot.remotes.clear()
        for task in list(slot.handler_tasks):
            task.cancel()
        for error in list(slot.errors.values()):
            self._publish_clear(slot.module_id, error)
        slot.errors.clear()
        if instance is None:
            return
        try:
            await asyncio.wait_for(instance.shutdown(), grace)
        except TimeoutError:
            instance.log.warning("shutdown() took longer than %.0f s; cancelling", grace)
        except Exception:
            instance.log.exception("shutdown() failed")
        await instance._cancel_tasks()

    async def _heartbeat_loop(self) -> None:
        seq = 0
        while True:
            seq += 1
            for slot in self.slots.values():
                if slot.state in (SlotState.INITIALISED, SlotState.READY):
                    self.bus.publish(
                        self.topics.heartbeat(slot.module_id),
                        wire.encode(wire.HEARTBEAT, {"seq": seq, "ts": time.time()}),
                    )
            await asyncio.sleep(self.heartbeat_interval)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._host_tasks.add(task)
        task.add_done_callback(self._host_tasks.discard)

    async def stopping(self) -> list[str]:
        """The first half of an orderly stop: every ready module's stopping() at once, bus and modules up.

        Bounded by settings.stop_timeout_s; a module whose hook times out or raises is named in the log
        (and returned) and the stop goes on. Then waits until everything published so far has been
        delivered, so the last words of stopping() are not lost with the bus. Call :meth:`stop` after.
        """
        self._stopping_modules = True
        ready = [slot.instance for slot in self.slots.values() if slot.state is SlotState.READY and slot.instance]
        outcomes = await asyncio.gather(*(self._run_stopping(instance) for instance in ready))
        failed = [instance.id for instance, ok in zip(ready, outcomes, strict=True) if not ok]
        await self.flush(self.stop_timeout)
        return failed

    async def _run_stopping(self, instance: Module) -> bool:
        try:
            await asyncio.wait_for(instance.stopping(), self.stop_timeout)
        except TimeoutError:
            log.error("module %s: stopping() did not finish within stop_timeout_s (%g s); stopping without it",
                      instance.id, self.stop_timeout)
            return False
        except Exception as exc:
            log.error("module %s: stopping() failed: %s: %s", instance.id, type(exc).__name__, exc, exc_info=exc)
            return False
        return True

    async def flush(self, timeout: float) -> bool:
        """Wait until the broker has handled everything this host published so far (a round trip on the
        host's own connection: the broker keeps one client's messages in order). False after ``timeout``."""
        topic = f"{self.topics.prefix}everpy/flush/{uuid.uuid4().hex}"
        arrived = asyncio.Event()
        subscription = self.bus.subscribe(topic, lambda _topic, _payload: arrived.set())
        try:
            self.bus.publish(topic, b"")
            await asyncio.wait_for(arrived.wait(), timeout)
        except TimeoutError:
            log.warning("the broker did not confirm delivery within %g s; the last messages may be lost", timeout)
            return False
        finally:
            self.bus.unsubscribe(subscription)
        return True

    async def stop(self) -> None:
        self._shutting_down = True
        self.stopped.set()
        for future, _ in list(self._pending.values()):
            if not future.done():
                future.set_exception(ShutdownError("system is shutting down"))
        await asyncio.gather(*(self._stop_slot(s) for s in self.slots.values()), return_exceptions=True)
        for task in list(self._host_tasks):
            task.cancel()
        await asyncio.gather(*self._host_tasks, return_exceptions=True)

    def instance(self, module_id: str) -> Module:
        instance = self.slots[module_id].instance
        if instance is None:
            raise KeyError(module_id)
        return instance


@dataclass(frozen=True)
class _Reply:
    """Where and how the answer to one command goes."""

    host: ModuleHost
    topic: str
    call_id: str
    callee: str

    def error(self, error: CommandError) -> None:
        self.host.bus.publish(self.topic, wire.cmd_error(self.call_id, self.callee, error.wire_name, error.message))

    def result(self, instance: Module, name: str, value: Any, check: Callable[[Any], None]) -> None:
        try:
            check(value)
        except SCHEMA_ERRORS as exc:
            instance.log.error("command %s returned a result outside its schema: %s", name, exc)
            self.error(SchemaValidationError(f"result: {exc}"))
            return
        try:
            payload = wire.cmd_result(self.call_id, self.callee, value)
        except (TypeError, ValueError) as exc:
            self.error(HandlerError(f"result not JSON: {exc}"))
            return
        self.host.bus.publish(self.topic, payload)


def _finish(instance: Module, name: str, reply: _Reply, check_result: Callable[[Any], None],
            task: asyncio.Future[Any]) -> None:
    """Answer the caller of a coroutine handler once it is done."""
    if task.cancelled():
        reply.error(NotReadyError("module stopped"))
        return
    exc = task.exception()
    if isinstance(exc, Exception):
        _handler_failed(instance, name, reply, exc)
    elif exc is not None:  # KeyboardInterrupt / SystemExit in a handler: not the caller's answer to give
        reply.error(HandlerError(f"{type(exc).__name__}"))
    else:
        reply.result(instance, name, task.result(), check_result)


def _handler_failed(instance: Module, name: str, reply: _Reply, exc: Exception) -> None:
    if isinstance(exc, CommandError):  # e.g. a proxy passing on PeerUnavailable: keep its type
        reply.error(exc)
        return
    instance.log.warning("command %s failed: %s: %s", name, type(exc).__name__, exc)
    instance.log.debug("handler traceback", exc_info=exc)
    reply.error(HandlerError(f"{type(exc).__name__}: {exc}"))


class ModuleInitFailed(Exception):
    """A module's init() raised or its handlers do not match its manifest."""

    def __init__(self, module_id: str, cause: BaseException) -> None:
        super().__init__(f"module {module_id!r} failed to initialise: {type(cause).__name__}: {cause}")
        self.module_id = module_id


def _reraise_pending_cancel() -> None:
    """On Python 3.11, wait_for can return a result that arrived in the same loop turn as a cancel()
    of the awaiting task, losing the CancelledError; a module loop calling remotes would then never
    stop. Honour the pending cancellation instead."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


MODULE_STATES = ("down", "ready")


def _module_state(payload: bytes) -> str:
    """The state a ModuleState message announces; WireError for anything but "down" / "ready" (any
    process on the bus can publish there, and a made-up state must not read as a peer coming back)."""
    try:
        _, data = wire.decode(payload, wire.MODULE_STATE)
        state = data["state"]
    except (KeyError, TypeError) as exc:
        raise wire.WireError(f"ModuleState without a state: {exc}") from None
    if state not in MODULE_STATES:
        raise wire.WireError(f"unknown module state {state!r} (expected one of {', '.join(MODULE_STATES)})")
    return str(state)


def _accept(value: Any) -> None:
    return None
