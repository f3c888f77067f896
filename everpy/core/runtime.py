"""The runtime: brings a validated system up, keeps it up, and takes it down.

Placement: modules run in this process by default (small boards have little RAM); a module with
``process: own`` in the run config runs in a child process of its own. Both kinds speak the same
wire protocol, so the supervisor treats them alike:

* start-up: every module inits and sends ModuleReady; when all have, GlobalReady goes out. A module
  that fails init or stays silent past ``ready_timeout_s`` is named in a :class:`ModuleStartupError`.
* supervision: an in-process module that crashes is restarted in place with exponential backoff;
  a child process that exits or stops sending heartbeats is killed and restarted the same way.
  Meanwhile the module's state is ``down`` on the bus, so its peers' calls fail fast with
  PeerUnavailable instead of timing out.
* shutdown: SIGTERM/SIGINT stop everything in order: the stopping() hooks of in-process modules
  (bus and every module still up), then the children (each runs its stopping() then shutdown() on
  SIGTERM), then in-process shutdown(), the bus, and the private broker last. Helper processes run in
  sessions of their own, so a terminal's Ctrl-C reaches only the runtime, and die with it if it is
  killed (see everpy.core.subprocesses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everpy.core import sdnotify, wire
from everpy.core.broker import BrokerError, PrivateBroker
from everpy.core.bus import BrokerAddress, Bus
from everpy.core.bus_access import OPERATOR_USER, Credentials, acl_file, module_user
from everpy.core.clock import Clock
from everpy.core.exceptions import ModuleStartupError
from everpy.core.host import ModuleHost, ModuleInitFailed
from everpy.core.loading import LoadedSystem
from everpy.core.subprocesses import own_session

log = logging.getLogger("everpy.runtime")

# A child gets this long beyond stop_timeout_s for its stopping() and shutdown() before SIGKILL.
CHILD_SHUTDOWN_MARGIN_S = 5.0


@dataclass
class _Child:
    module_id: str
    process: asyncio.subprocess.Process | None = None
    last_heartbeat: float = 0.0
    ready: bool = False
    crashes: int = 0
    restarting: bool = False


class Runtime:
    def __init__(
        self,
        system: LoadedSystem,
        broker: BrokerAddress | None = None,
        clock: Clock | None = None,
        validate: bool | None = None,
        log_levels: dict[str, str] | None = None,
    ) -> None:
        self.system = system
        self.log_levels = dict(log_levels or {})
        settings = system.settings
        self.topics = wire.Topics(settings.mqtt_everest_prefix)
        self.clock = clock or Clock()
        self._broker_address = broker or _configured_broker(settings)
        self._private_broker: PrivateBroker | None = None
        self.validate = settings.validate_schema is not False if validate is None else validate
        ids = list(system.run_config.modules)
        self.own_process = [m for m in ids if system.run_config.modules[m].process == "own"]
        self.shared = [m for m in ids if m not in self.own_process]
        self.children = {m: _Child(m) for m in self.own_process}
        self.ready_modules: set[str] = set()
        self._all_ready = asyncio.Event()
        self.global_ready = False
        self.up = asyncio.Event()  # set at global ready, for whoever waits on start-up from outside
        self.bus: Bus | None = None
        self.host: ModuleHost | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._config_file: Path | None = None
        self.started_in: float | None = None
        self.stop_requested = asyncio.Event()
        self.restart_requested = False

    @property
    def broker(self) -> BrokerAddress:
        assert self._broker_address is not None
        return self._broker_address

    # -- start --------------------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.monotonic()
        if self._broker_address is None:
            self._private_broker = PrivateBroker()
            credentials = Credentials()
            for module_id in self.own_process:
                credentials.user(module_user(module_id))
            acl = acl_file(self.system.run_config, self.own_process, self.topics,
                           self.system.settings.mqtt_external_prefix)
            self._broker_address = await self._private_broker.start(credentials=credentials, acl=acl)
        self.bus = Bus(self.broker, "everpy-runtime")
        await self.bus.connect()
        self.bus.subscribe(self.topics.module("+") + "/ready", self._on_module_ready)
        self.bus.subscribe(self.topics.system_restart, self._on_restart_request)
        if self.children:
            self.bus.subscribe(self.topics.module("+") + "/heartbeat", self._on_heartbeat)
        self.host = ModuleHost(
            run_config=self.system.run_config,
            definitions=self.system.definitions,
            manifests=self.system.manifests,
            module_types=self.system.module_types,
            bus=self.bus,
            module_ids=self.shared,
            clock=self.clock,
            validate=self.validate,
        )
        for child in self.children.values():
            await self._spawn_child(child)
        timeout = float(self.system.settings.ready_timeout_s)
        try:
            await asyncio.wait_for(self.host.start(), timeout)
            await asyncio.wait_for(self._all_ready.wait(), max(0.1, timeout - (time.monotonic() - t0)))
        except ModuleInitFailed as exc:
            await self.stop()
            raise ModuleStartupError(str(exc)) from exc
        except TimeoutError:
            missing = sorted(set(self.system.run_config.modules) - self.ready_modules)
            await self.stop()
            raise ModuleStartupError(
                f"no ModuleReady within {timeout:g} s from: {', '.join(missing)} "
                "(still in init(), hung, or crashed; raise settings.ready_timeout_s if init is legitimately slow)"
            ) from None
        self._publish_global_ready()
        self.global_ready = True
        self.up.set()
        self.started_in = time.monotonic() - t0
        log.info("everpy up and running [%d ms, %d modules]", self.started_in * 1000, len(self.ready_modules))
        sdnotify.notify("READY=1", f"STATUS=running {len(self.ready_modules)} modules")
        if self.children:
            self._spawn(self._watch_children())
        if self._private_broker is not None:
            self._spawn(self._watch_broker(self._private_broker))
        watchdog = sdnotify.Watchdog.from_environment(self.healthy)
        if watchdog is not None:
            self._tasks.add(watchdog.start())

    def healthy(self) -> bool:
        return not self._stopping and all(c.ready or c.restarting for c in self.children.values())

    def _publish_global_ready(self) -> None:
        assert self.bus is not None
        self.bus.publish(self.topics.global_ready, wire.encode(wire.GLOBAL_READY, True))

    def _on_module_ready(self, topic: str, payload: bytes) -> None:
        module_id = topic.split("/")[-2]
        if module_id not in self.system.run_config.modules:
            return
        try:
            wire.decode(payload, wire.MODULE_READY)
        except wire.WireError as exc:
            log.warning("ignoring malformed ModuleReady on %s: %s", topic, exc)
            return
        self.ready_modules.add(module_id)
        child = self.children.get(module_id)
        if child is not None:
            child.ready = True
            child.restarting = False
            child.last_heartbeat = time.monotonic()
            if self.global_ready:  # a restarted child: let it run ready(), tell peers it is back
                self._publish_state(module_id, "ready")
                self._publish_global_ready()
        if len(self.ready_modules) == len(self.system.run_config.modules):
            self._all_ready.set()

    def _on_restart_request(self, topic: str, payload: bytes) -> None:
        try:
            _, data = wire.decode(payload, wire.SYSTEM_RESTART)
            origin, reason = str(data["module"]), str(data["reason"])
        except (wire.WireError, KeyError, TypeError) as exc:
            log.warning("ignoring malformed restart request: %s", exc)
            return
        if origin not in self.system.run_config.modules:
            log.warning("ignoring a restart request from unknown module %r", origin)
            return
        log.warning("system restart requested by %s: %s", origin, reason)
        self.restart_requested = True
        self.request_stop()

    def _publish_state(self, module_id: str, state: str) -> None:
        assert self.bus is not None
        self.bus.publish(self.topics.module_state(module_id), wire.encode(wire.MODULE_STATE, {"state": state}))

    # -- children -------------------------------------------------------------------------------
    def _config_path(self) -> Path:
        source = self.system.source
        if isinstance(source, Path):
            return source.resolve()
        if self._config_file is None:
            fd, name = tempfile.mkstemp(prefix="everpy-config-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(source, f)
            self._config_file = Path(name)
        return self._config_file

    async def _spawn_child(self, child: _Child) -> None:
        args = [
            sys.executable, "-m", "everpy.core.child",
            "--config", str(self._config_path()),
            "--module", child.module_id,
            "--broker", f"{self.broker.host}:{self.broker.port}",
        ]
        for d in self.system.extra_module_dirs:
            args += ["--modules-dir", str(d)]
        for d in self.system.extra_definition_dirs:
            args += ["--definitions-dir", str(d)]
        if not self.validate:
            args.append("--no-validate")
        for name, level in self.log_levels.items():
            args += ["--log", f"{name}={level}"]
        child.ready = False
        # A child must never talk to systemd itself: only the runtime notifies and feeds the watchdog.
        env = {k: v for k, v in os.environ.items() if k not in sdnotify.SYSTEMD_ENVIRONMENT}
        login = self.child_login(child.module_id)
        if login is not None:  # in the environment, which only this user (and root) can read: never on disk
            env[CHILD_USER_ENV], env[CHILD_PASSWORD_ENV] = login
        # SIGTERM if the runtime dies: the child then stops its module as on an orderly stop
        child.process = await asyncio.create_subprocess_exec(*args, env=env, **own_session(signal.SIGTERM))
        log.info("started module %s in its own process (pid %d)", child.module_id, child.process.pid)

    def child_login(self, module_id: str) -> tuple[str, str] | None:
        """The broker user and password of a module in its own process: its own on the private broker, the
        configured ones on an external broker, None where the broker takes anonymous clients."""
        if self._private_broker is not None and self._private_broker.credentials is not None:
            user = module_user(module_id)
            return user, self._private_broker.credentials.user(user)
        if self.broker.username is not None:
            return self.broker.username, self.broker.password or ""
        return None

    @property
    def operator_login(self) -> tuple[str, str] | None:
        """The operator's user and password on the private broker (for `everpy call` / `monitor`)."""
        if self._private_broker is None or self._private_broker.credentials is None:
            return None
        return OPERATOR_USER, self._private_broker.credentials.user(OPERATOR_USER)

    def _on_heartbeat(self, topic: str, payload: bytes) -> None:
        child = self.children.get(topic.split("/")[-2])
        if child is not None:
            child.last_heartbeat = time.monotonic()

    async def _watch_children(self) -> None:
        settings = self.system.settings
        timeout = float(settings.heartbeat_timeout_s)
        while not self._stopping:
            await asyncio.sleep(min(0.25, float(settings.heartbeat_interval_s) / 2))
            now = time.monotonic()
            for child in self.children.values():
                if child.restarting or child.process is None:
                    continue
                if child.process.returncode is not None:
                    reason = f"exited with code {child.process.returncode}"
                elif child.ready and now - child.last_heartbeat > timeout:
                    reason = f"sent no heartbeat for {now - child.last_heartbeat:.1f} s (hung)"
                else:
                    continue
                self._spawn(self._restart_child(child, reason))

    async def _restart_child(self, child: _Child, reason: str) -> None:
        child.restarting = True
        child.ready = False
        child.crashes += 1
        self.ready_modules.discard(child.module_id)
        self._publish_state(child.module_id, "down")
        backoff = float(self.system.settings.restart_backoff_s)
        delay = min(backoff * 2 ** (child.crashes - 1), float(self.system.settings.restart_backoff_max_s))
        log.error("module %s %s; restarting in %.1f s", child.module_id, reason, delay)
        await _terminate(child.process, grace=0.0)
        await asyncio.sleep(delay)
        if not self._stopping:
            await self._spawn_child(child)

    async def _watch_broker(self, broker: PrivateBroker) -> None:
        """Restart the private mosquitto on the same port if it dies; every bus reconnects to it."""
        while not self._stopping:
            code = await broker.wait()
            if self._stopping:
                return
            log.error("private mosquitto exited (code %s); restarting it", code)
            await asyncio.sleep(0.5)
            await broker.start(port=self.broker.port)

    # -- stop ------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_requested.set()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        sdnotify.notify("STOPPING=1")
        for task in list(self._tasks):  # the supervisors first: nothing is restarted during the stop
            task.cancel()
        if self.host is not None:
            await self.host.stopping()
        child_grace = float(self.system.settings.stop_timeout_s) + CHILD_SHUTDOWN_MARGIN_S
        await asyncio.gather(*(_terminate(c.process, child_grace) for c in self.children.values()))
        if self.host is not None:
            await self.host.stop()
        if self.bus is not None:
            await self.bus.close()
        if self._private_broker is not None:
            await self._private_broker.stop()
        if self._config_file is not None:
            self._config_file.unlink(missing_ok=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_forever(self) -> int:
        """Run until SIGTERM/SIGINT (or a child-hosting failure); returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self.stop_requested.wait()
            log.info("stopping")
            return 0
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def _terminate(process: asyncio.subprocess.Process | None, grace: float = 5.0) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if grace > 0:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
                return
            except TimeoutError:
                pass
        process.kill()
    await process.wait()


CHILD_USER_ENV, CHILD_PASSWORD_ENV = "EVERPY_MQTT_USER", "EVERPY_MQTT_PASSWORD"


def login_from_environment(address: BrokerAddress) -> BrokerAddress:
    """An external broker's login from EVERPY_MQTT_USER / EVERPY_MQTT_PASSWORD (e.g. for `everpy run
    --broker`; the environment, unlike a command line, only this user can read)."""
    user = os.environ.get(CHILD_USER_ENV)
    return address.as_user(user, os.environ.get(CHILD_PASSWORD_ENV, "")) if user else address


def _configured_broker(settings: Any) -> BrokerAddress | None:
    """An external broker named by the environment or the settings, with the configured login."""
    env_host, env_port = os.environ.get("MQTT_SERVER_ADDRESS"), os.environ.get("MQTT_SERVER_PORT")
    if env_host:
        address = BrokerAddress(env_host, int(env_port or 1883))
    elif getattr(settings, "mqtt_broker_socket_path", None):
        address = BrokerAddress(socket_path=settings.mqtt_broker_socket_path)
    elif settings.mqtt_broker_host is not None or settings.mqtt_broker_port is not None:
        address = BrokerAddress(settings.mqtt_broker_host or "localhost", int(settings.mqtt_broker_port or 1883))
    else:
        return None
    user = getattr(settings, "mqtt_broker_user", None)
    if not user:
        return login_from_environment(address)
    password_file = getattr(settings, "mqtt_broker_password_file", None)
    try:
        password = Path(password_file).read_text().strip() if password_file else ""
    except OSError as error:
        raise BrokerError(f"settings.mqtt_broker_password_file {password_file}: {error.strerror}") from None
    return address.as_user(user, password)
