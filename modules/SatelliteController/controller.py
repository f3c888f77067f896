"""SatelliteController: one satellite board's modules, as seen by the main board.

The link goes through these states, and what the main board sees follows them:

    Connecting --(connect, key handshake, hello, subscribe + snapshot)--> Connected
    Connected  --(TCP closed | heartbeat unanswered | new boot id advertised)--> Lost --> Connecting ...

While not Connected every tunnelled implementation carries generic/CommunicationFault and every command
fails at once with PeerUnavailable. On (re)connection the snapshot resynchronises vars and errors first,
then the fault is cleared. A satellite reboot (new boot id) or a main-board restart needs nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from functools import partial
from typing import Any

import jsonschema

from everpy import Module, PeerUnavailable, command
from everpy.rpc import ConnectionLost, HandshakeFailed, MethodRegistry, RpcError, RpcPeer, RpcTimeout, connect
from everpy.rpc.errors import RpcException
from everpy.rpc.mdns import SatelliteEndpoint, SatelliteFinder
from everpy.rpc.satellite import (
    PROTOCOL_VERSION,
    Subscription,
    command_error_from_rpc,
    controller_tls,
    link_key,
    mdns_addresses,
    parse_hello,
    parse_subscription,
)

COMMUNICATION_FAULT = "generic/CommunicationFault"
HELLO_TIMEOUT_S = 300.0  # hello waits for the satellite's own start-up; the heartbeat runs meanwhile
CONNECT_TIMEOUT_S = 5.0
MDNS_WAIT_S = 5.0


class SatelliteController(Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Handlers must exist before init(): the host checks every provided command has one.
        self.proxied = [impl for impl in self.manifest.provides if impl != "satellite"]
        for impl in self.proxied:
            self.set_fallback_handler(impl, partial(self._forward, impl))

    async def init(self) -> None:
        self.psk = link_key(self.config)  # a refused key stops the start with its reason, not each connect
        self.serial: str = self.config["serial"]
        self.boot_id = uuid.uuid4().hex  # of this main-board stack, told to the satellite in hello
        self.peer: RpcPeer | None = None
        self.state = "Connecting"
        self.down_reason = "not connected yet"
        self.tunnels: dict[str, str] = {}
        self.satellite_info: dict[str, Any] = {}
        self.last_vars: dict[tuple[str, str], Any] = {}
        self._open_transactions: dict[str, dict[str, Any]] = {}  # tunnel -> its TransactionStarted event
        self._faulted: set[str] = set()
        self._ready_ran = False
        self._connected = asyncio.Event()
        self._registry = MethodRegistry()
        self._registry.register("var", self._on_var_push)
        self._registry.register("error", self._on_error_push)
        self._resume: dict[str, Any] | None = None  # {boot_id, seq}: the last push seen from that stack
        self._early: list[tuple[int, str, list[Any]]] = []  # pushes that overtook the subscribe answer
        self._registry.register("bye", self._on_bye)
        self.finder: SatelliteFinder | None = None
        if not self.config["host"]:
            self.finder = SatelliteFinder(self.serial, mdns_addresses(self.config),
                                          self.config["mdns_allow_loopback"], on_change=self._on_advert)
            await self.finder.start()
        self.spawn(self._link_loop(), name="link")
        # The main board becomes ready with its satellites, but a missing satellite must not keep it from
        # starting: this bound is real time on purpose, like the runtime's own ready timeout.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.config["startup_wait_s"])
        if not self._connected.is_set():
            self.log.warning("satellite %s not connected after %g s; starting without it (%s)", self.serial,
                             self.config["startup_wait_s"], self.down_reason)

    async def ready(self) -> None:
        self._ready_ran = True
        for (impl, var), value in self.last_vars.items():  # subscribers exist now; everpy has no replay
            self._publish_var(impl, var, value)
        if self.state != "Connected":
            self._show_fault()
        self._publish_state(rebooted=False)

    async def shutdown(self) -> None:
        if self.finder is not None:
            await self.finder.stop()
        if self.peer is not None:
            await self.peer.aclose("main board stopping")

    # -- the link loop ------------------------------------------------------------------------------
    async def _link_loop(self) -> None:
        delay = 0.2
        while True:
            heartbeat = await self._open_link()
            if heartbeat is not None:
                delay = 0.2
                self._link_down(await heartbeat)
            await self.clock.sleep(delay)
            delay = min(delay * 2, self.config["reconnect_max_s"])

    async def _locate(self) -> tuple[str, int] | None:
        if self.config["host"]:
            return self.config["host"], self.config["port"]
        assert self.finder is not None
        endpoint = await self.finder.wait_endpoint(MDNS_WAIT_S)
        if endpoint is None:
            self._link_down(f"satellite {self.serial} not found over mDNS")
            return None
        return endpoint.host, endpoint.port

    async def _open_link(self) -> asyncio.Task[str] | None:
        """Connects, authenticates, says hello and subscribes. Returns the heartbeat task, which already
        runs during hello and ends (with the reason) when the link fails."""
        where = await self._locate()
        if where is None:
            return None
        host, port = where
        try:
            peer = await connect(host, port, self._registry, psk=self.psk,
                                 ssl_context=controller_tls(self.config), connect_timeout=CONNECT_TIMEOUT_S,
                                 max_frame_size=self.config["max_frame_kb"] * 1024,
                                 call_timeout=self.config["call_timeout_s"], log=self.log)
        except HandshakeFailed as exc:
            self._link_down(f"satellite at {host}:{port} refused the link (check the pre-shared key): {exc}")
            return None
        except ConnectionLost as exc:
            self._link_down(str(exc))
            return None
        heartbeat = asyncio.ensure_future(self._heartbeat(peer))
        try:
            info = parse_hello(await peer.call("hello", PROTOCOL_VERSION,
                                               {"serial": self.id, "boot_id": self.boot_id}, timeout=HELLO_TIMEOUT_S))
            if info["serial"] != self.serial:
                raise RpcError("WrongSatellite", f"{host}:{port} is satellite {info['serial']!r}")
            resume = self._resume if self._resume and self._resume["boot_id"] == info["boot_id"] else None
            subscription = parse_subscription(await peer.call("subscribe", resume))
        except RpcException as exc:
            peer.close(f"handshake failed: {exc}")
            await heartbeat
            self._link_down(peer.close_reason)
            return None
        self._link_up(peer, info, subscription)
        return heartbeat

    async def _heartbeat(self, peer: RpcPeer) -> str:
        """Pings until the link fails; returns why. Detection bound: interval + timeout."""
        interval, limit = self.config["heartbeat_interval_s"], self.config["heartbeat_timeout_s"]
        seq = 0
        while not peer.is_closed:
            seq += 1
            try:
                await peer.call("ping", seq, timeout=limit)
            except RpcTimeout:
                peer.close(f"heartbeat not answered within {limit:g} s")
            except RpcError as exc:
                peer.close(f"heartbeat refused: {exc}")
            except ConnectionLost:
                break
            if not peer.is_closed:
                await self._sleep_unless_closed(peer, interval)
        return peer.close_reason

    async def _sleep_unless_closed(self, peer: RpcPeer, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        closed = asyncio.ensure_future(peer.wait_closed())
        await asyncio.wait({sleeper, closed}, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        closed.cancel()

    def _on_advert(self, endpoint: SatelliteEndpoint | None) -> None:
        peer = self.peer
        if peer is None or peer.is_closed:
            return
        if endpoint is None:
            self.log.info("satellite %s withdrew its advertisement", self.serial)
        elif endpoint.boot_id and endpoint.boot_id != self.satellite_info.get("boot_id"):
            peer.close("satellite advertises a new boot id (it restarted)")

    # -- link up / down: what the main board sees ----------------------------------------------------
    def _link_up(self, peer: RpcPeer, info: dict[str, Any], subscription: Subscription) -> None:
        previous_boot = self.satellite_info.get("boot_id")
        rebooted = previous_boot is not None and previous_boot != info["boot_id"]
        self.satellite_info = {"serial": self.serial, "boot_id": info["boot_id"], "version": info["version"],
                               "protocol_version": info["protocol"], "interfaces": dict(info["tunnels"])}
        self.tunnels = {}
        for name, interface in self.satellite_info["interfaces"].items():
            provide = self.manifest.provides.get(name)
            if name == "satellite" or provide is None or provide.interface != interface:
                self.log.error("satellite tunnels %s (%s), which this controller does not provide as such; ignored",
                               name, interface)
                continue
            self.tunnels[name] = interface
        self.peer = peer
        if rebooted:
            self._end_lost_transactions()
        if subscription.replay is not None:  # exactly the pushes missed during the outage, in order
            for _, method, params in subscription.replay:
                self._apply_push(method, params)
        else:
            for impl in self.tunnels:
                self._resync(impl, subscription.vars.get(impl, {}), subscription.errors.get(impl, []))
        self._resume = {"boot_id": info["boot_id"], "seq": subscription.seq}
        early, self._early = self._early, []
        for seq, method, params in early:  # pushed right behind the subscribe answer
            if seq > subscription.seq:
                self._seen(seq)
                self._apply_push(method, params)
        self.state = "Connected"
        for impl in list(self._faulted):
            self.clear_error(impl, COMMUNICATION_FAULT)
        self._faulted.clear()
        self.log.info("satellite %s connected at %s (boot %s%s, %s), tunnels: %s", self.serial, peer.name,
                      self.satellite_info["boot_id"][:8], ", rebooted" if rebooted else "",
                      "snapshot" if subscription.replay is None else f"{len(subscription.replay)} missed pushes",
                      ", ".join(self.tunnels) or "(none)")
        self._publish_state(rebooted=rebooted)
        self._connected.set()

    def _end_lost_transactions(self) -> None:
        """A satellite that rebooted lost the transactions it ran: end them for the main board (OCPP)
        with the last reading it had, instead of leaving a phantom transaction that blocks the
        connector at the CSMS."""
        for impl, started in list(self._open_transactions.items()):
            del self._open_transactions[impl]
            meter = self.last_vars.get((impl, "powermeter"))
            details: dict[str, Any] = {"reason": "PowerLoss"}
            if isinstance(meter, dict):
                details["meter_value"] = meter
            now = self.clock.utcnow().isoformat().replace("+00:00", "Z")
            base = {"uuid": started.get("uuid", ""), "timestamp": now, "connector_id": started.get("connector_id", 1)}
            self.log.warning("satellite %s rebooted during transaction %s on %s; ending it", self.serial,
                             base["uuid"][:8], impl)
            self.publish(impl, "session_event", {**base, "event": "TransactionFinished",
                                                 "transaction_finished": details})
            self.publish(impl, "session_event", {**base, "event": "SessionFinished"})

    def _resync(self, impl: str, values: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        remote = {(e["type"], str(e.get("sub_type", ""))): e for e in errors}
        for error in self.active_errors(impl):
            key = (error["type"], error.get("sub_type", ""))
            if error["type"] != COMMUNICATION_FAULT and key not in remote:
                self.clear_error(impl, error["type"], error.get("sub_type", ""))
        for error in remote.values():
            self._raise_remote(impl, error)
        for var, value in values.items():
            self._publish_var(impl, var, value)

    def _link_down(self, reason: str) -> None:
        self.peer = None
        self._early.clear()
        repeated = reason == self.down_reason
        self.down_reason = reason
        was_connected = self.state == "Connected"
        self.state = "Lost" if was_connected or self.state == "Lost" else "Connecting"
        if was_connected:
            self.log.warning("satellite %s link lost: %s", self.serial, reason)
            self._publish_state(rebooted=False)
        elif not repeated:  # retries fail the same way every few seconds: say it once
            self.log.warning("satellite %s not connected: %s", self.serial, reason)
        self._show_fault()

    def _show_fault(self) -> None:
        if not self._ready_ran:
            return  # raised in ready(), once every consumer has subscribed
        impls = ["satellite", *(self.tunnels or self.proxied)]
        for impl in impls:
            if impl not in self._faulted:
                self._faulted.add(impl)
                self.raise_error(impl, COMMUNICATION_FAULT, f"satellite {self.serial}: {self.down_reason}")

    def _publish_state(self, rebooted: bool) -> None:
        if not self._ready_ran:
            return
        peer = self.peer
        self.publish("satellite", "connection_state", {
            "state": self.state, "serial": self.serial, "boot_id": self.satellite_info.get("boot_id", ""),
            "remote_address": peer.remote_address[0] if peer and peer.remote_address else "",
            "rebooted": rebooted})

    # -- what the satellite pushes ------------------------------------------------------------------
    def _on_var_push(self, seq: int, tunnel: str, var: str, value: Any) -> None:
        self._on_push(seq, "var", [tunnel, var, value])

    def _on_error_push(self, seq: int, tunnel: str, error: dict[str, Any]) -> None:
        self._on_push(seq, "error", [tunnel, error])

    def _on_push(self, seq: int, method: str, params: list[Any]) -> None:
        if self.state != "Connected":
            # The agent pushes as soon as it answered subscribe; hold those until the answer is applied.
            if type(seq) is int:
                self._early.append((seq, method, params))
            return
        self._seen(seq)
        self._apply_push(method, params)

    def _seen(self, seq: int) -> None:
        if self._resume is not None and type(seq) is int:
            self._resume["seq"] = seq

    def _apply_push(self, method: str, params: list[Any]) -> None:
        if method == "var" and len(params) == 3:
            self._on_remote_var(*params)
        elif method == "error" and len(params) == 2:
            self._on_remote_error(*params)
        else:
            self.log.warning("unknown replayed push %s dropped", method)

    def _on_remote_var(self, tunnel: str, var: str, value: Any) -> None:
        if tunnel in self.tunnels:
            self._publish_var(tunnel, var, value)

    def _publish_var(self, impl: str, var: str, value: Any) -> None:
        # A satellite's value is checked here, not only by the host's refusal of bad publishes: that
        # refusal raises generic/InvalidVarValue on the tunnel, which main-board consumers would take for
        # a fault of the EVSE, while the fault is the satellite's push (dropped, as on any other link).
        try:
            self.definitions.var_validator(self.manifest.provides[impl].interface, var)(value)
            json.dumps(value, allow_nan=False)  # NaN / infinity pass a number schema but are no JSON
        except KeyError as exc:
            self.log.warning("satellite var %s.%s dropped: %s", impl, var, exc)
            return
        except (TypeError, ValueError, jsonschema.ValidationError) as exc:
            self.log.warning("satellite var %s.%s dropped: %s", impl, var, str(exc).splitlines()[0][:200])
            return
        self.last_vars[(impl, var)] = value
        if var == "session_event" and isinstance(value, dict):
            if value.get("event") == "TransactionStarted":
                self._open_transactions[impl] = value
            elif value.get("event") == "TransactionFinished":
                self._open_transactions.pop(impl, None)
        self.publish(impl, var, value)

    def _on_remote_error(self, tunnel: str, error: dict[str, Any]) -> None:
        if tunnel not in self.tunnels or not isinstance(error, dict) or not isinstance(error.get("type"), str):
            self.log.warning("malformed satellite error on %s dropped: %r", tunnel, error)
            return
        if error.get("state") == "Active":
            self._raise_remote(tunnel, error)
        else:
            self.clear_error(tunnel, error["type"], str(error.get("sub_type", "")))

    def _raise_remote(self, impl: str, error: dict[str, Any]) -> None:
        try:
            self.raise_error(impl, str(error.get("type")), message=str(error.get("message", "")),
                             sub_type=str(error.get("sub_type", "")), severity=str(error.get("severity", "High")),
                             vendor_id=str(error.get("vendor_id", "everpy")))
        except KeyError as exc:
            self.log.warning("satellite error on %s not raised here: %s", impl, exc)

    def _on_bye(self, reason: str) -> None:
        self.log.info("satellite %s is stopping: %s", self.serial, reason)

    # -- commands ---------------------------------------------------------------------------------------
    async def _forward(self, impl: str, cmd: str, args: dict[str, Any]) -> Any:
        target = f"{self.id}.{impl}.{cmd}"
        peer = self.peer
        if peer is None or peer.is_closed:
            raise PeerUnavailable(f"satellite {self.serial} not connected: {self.down_reason}", target=target)
        if impl not in self.tunnels:
            raise PeerUnavailable(f"satellite {self.serial} does not tunnel {impl}", target=target)
        try:
            return await peer.call("call", impl, cmd, args)
        except RpcException as exc:
            raise command_error_from_rpc(exc, target) from None

    @command("satellite", "is_connected")
    def is_connected(self) -> bool:
        return self.state == "Connected"

    @command("satellite", "get_local_endpoint_address")
    def get_local_endpoint_address(self) -> str:
        peer = self.peer
        return peer.local_address[0] if peer and peer.local_address else ""

    @command("satellite", "get_remote_endpoint_address")
    def get_remote_endpoint_address(self) -> str:
        peer = self.peer
        return peer.remote_address[0] if peer and peer.remote_address else ""

    @command("satellite", "get_satellite_info")
    def get_satellite_info(self) -> dict[str, Any]:
        return dict(self.satellite_info)


