"""SatelliteAgent: the satellite board's end of the satellite link.

Each connected requirement is a tunnel named after the requirement id. The agent keeps the last value of
every var and the active errors of every tunnel (everpy has no replay), hands them to a main board as a
snapshot when it subscribes, and from then on pushes every change as a notification. Commands from the
main board are checked against the tunnel's interface (the allow-list) and passed to the real module.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

import msgpack

import everpy
from everpy import CommandError, Module, Remote, command
from everpy.rpc import ConnectionLost, MethodRegistry, RpcError, RpcPeer, RpcServer
from everpy.rpc.mdns import SatelliteAdvertiser
from everpy.rpc.satellite import (
    PROTOCOL_VERSION,
    agent_tls,
    link_key,
    mdns_addresses,
    rpc_error_from_command_error,
)

COMMUNICATION_FAULT = "generic/CommunicationFault"
MAX_UNSENT_BYTES = 4 << 20  # a main board that stops reading is dropped instead of buffering forever


SERIAL_PATTERN = re.compile(r"[A-Za-z0-9-]{1,48}")


def read_serial(configured: str) -> str:
    """The board's serial: given directly, or ``file:<path>`` (first line of a file written at production
    or exposed by the device tree), so one satellite image serves every board of a product line."""
    if not configured.startswith("file:"):
        return configured
    path = Path(configured[5:])
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").replace("\0", "").splitlines()
    except OSError as exc:
        raise ValueError(f"serial: cannot read {path}: {exc.strerror}") from None
    serial = lines[0].strip() if lines else ""
    if not SERIAL_PATTERN.fullmatch(serial):
        raise ValueError(f"serial: {path} holds {serial[:60]!r}; expected 1-48 letters, digits or '-'")
    return serial


class SatelliteAgent(Module):
    async def init(self) -> None:
        self.boot_id = uuid.uuid4().hex
        self.serial: str = read_serial(self.config["serial"])
        self.tunnels: dict[str, Remote] = {
            req_id: remotes[0] for req_id in self.manifest.requires if (remotes := self.connections(req_id))
        }
        self.last_vars: dict[str, dict[str, Any]] = {name: {} for name in self.tunnels}
        # Every push is numbered and kept for a while, so a main board that comes back after a link
        # outage gets exactly what it missed, in order (a session that started or ended meanwhile too).
        self.seq = 0
        self.journal: deque[tuple[int, str, tuple[Any, ...]]] = deque(maxlen=self.config["journal_size"])
        self.active: dict[str, dict[tuple[str, str], dict[str, Any]]] = {name: {} for name in self.tunnels}
        for name, remote in self.tunnels.items():
            remote.subscribe_all_vars(partial(self._on_var, name))
            remote.subscribe_error(partial(self._on_error, name))
        self.controller: RpcPeer | None = None  # the subscribed main board
        self._last_heard: dict[RpcPeer, float] = {}
        self._stack_ready = asyncio.Event()
        # A failed init must leave nothing listening (the runtime may restart the module in this process):
        # key and TLS are checked before the port opens, a failing advertisement closes it again.
        psk, tls = link_key(self.config), agent_tls(self.config)
        addresses = mdns_addresses(self.config) if self.config["mdns"] else []
        self.advertiser: SatelliteAdvertiser | None = None
        self.server = RpcServer(psk=psk, ssl_context=tls, on_connect=self._on_connect,
                                max_frame_size=self.config["max_frame_kb"] * 1024, log=self.log)
        await self.server.start(self.config["bind_host"], self.config["port"])
        self.port = self.server.port
        if self.config["mdns"]:
            try:
                self.advertiser = SatelliteAdvertiser(self.serial, self.port, addresses, {
                    "version": everpy.__version__, "boot_id": self.boot_id, "proto": str(PROTOCOL_VERSION)})
                await self.advertiser.start()
            except BaseException:
                await self.server.close()
                raise
        self.log.info("satellite %s (boot %s) serving tunnels %s on port %d", self.serial, self.boot_id[:8],
                      ", ".join(f"{n}={r.interface}" for n, r in self.tunnels.items()) or "(none)", self.port)
        self.spawn(self._drop_silent_controllers(), name="controller-watchdog")

    async def ready(self) -> None:
        self._stack_ready.set()
        self._publish_state("Connecting" if self.controller is None else "Connected")

    async def shutdown(self) -> None:
        if self.controller is not None:
            try:
                self.controller.notify("bye", "satellite stack stopping")
                await asyncio.wait_for(self.controller.drain(), 2)
            except (ConnectionLost, TimeoutError):
                pass  # the main board notices the closed link anyway
        if self.advertiser is not None:
            await self.advertiser.stop()
        await self.server.close()

    # -- state of the tunnelled implementations, kept for snapshots --------------------------------
    def _on_var(self, tunnel: str, var: str, value: Any) -> None:
        self.last_vars[tunnel][var] = value
        self._push("var", tunnel, var, value)

    def _on_error(self, tunnel: str, error: dict[str, Any]) -> None:
        key = (error["type"], error.get("sub_type", ""))
        if error.get("state") == "Active":
            self.active[tunnel][key] = error
        else:
            self.active[tunnel].pop(key, None)
        self._push("error", tunnel, error)

    def _push(self, method: str, *params: Any) -> None:
        self.seq += 1
        self.journal.append((self.seq, method, params))
        peer = self.controller
        if peer is None:
            return
        if peer.output_buffer_size > MAX_UNSENT_BYTES:
            peer.close("main board is not reading its notifications")
            return
        try:
            peer.notify(method, self.seq, *params)
        except ConnectionLost:
            pass  # _on_peer_closed has run or is about to

    # -- the link --------------------------------------------------------------------------------
    def _on_connect(self, peer: RpcPeer) -> None:
        registry = MethodRegistry()  # one per connection, so handlers know which main board called
        registry.register("hello", partial(self._hello, peer))
        registry.register("subscribe", partial(self._subscribe, peer))
        registry.register("call", partial(self._call, peer))
        registry.register("ping", partial(self._ping, peer))
        peer.registry = registry
        self._last_heard[peer] = self.clock.monotonic()
        peer.on_close(self._on_peer_closed)
        self.log.info("main board connected from %s", peer.name)

    def _heard(self, peer: RpcPeer) -> None:
        self._last_heard[peer] = self.clock.monotonic()

    async def _hello(self, peer: RpcPeer, protocol: int, controller: dict[str, Any]) -> dict[str, Any]:
        self._heard(peer)
        if protocol != PROTOCOL_VERSION:
            raise RpcError("ProtocolMismatch", f"satellite speaks version {PROTOCOL_VERSION}, not {protocol}")
        await self._stack_ready.wait()  # the main board becomes ready only after its satellites
        self.log.info("hello from main board %s (boot %s)", controller.get("serial", "?"),
                      str(controller.get("boot_id", "?"))[:8])
        return {"protocol": PROTOCOL_VERSION, "serial": self.serial, "boot_id": self.boot_id,
                "version": everpy.__version__,
                "tunnels": {name: remote.interface for name, remote in self.tunnels.items()}}

    def _subscribe(self, peer: RpcPeer, resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Starts pushing to ``peer``. With ``resume = {boot_id, seq}`` from a main board that was connected
        to this very stack before, the answer replays the pushes it missed if the journal still holds
        them; otherwise it is a snapshot (last value of every var, active errors). Either way the answer
        and the switch happen in one step: no push can fall in between."""
        self._heard(peer)
        previous, self.controller = self.controller, peer
        if previous is not None and previous is not peer:
            previous.close("replaced by a new main-board connection")
        self.clear_error("link", COMMUNICATION_FAULT)
        self._publish_state("Connected")
        missed = self._missed_since(resume)
        if missed is not None:
            return {"seq": self.seq, "replay": missed}
        return {"seq": self.seq, "vars": self.last_vars,
                "errors": {name: list(errors.values()) for name, errors in self.active.items()}}

    def _missed_since(self, resume: dict[str, Any] | None) -> list[list[Any]] | None:
        if not isinstance(resume, dict) or resume.get("boot_id") != self.boot_id:
            return None
        seen = resume.get("seq")
        if type(seen) is not int or not 0 <= seen <= self.seq:
            return None
        if seen < self.seq and (not self.journal or self.journal[0][0] > seen + 1):
            return None  # the journal no longer reaches back that far
        missed = [[seq, method, *params] for seq, method, params in self.journal if seq > seen]
        if len(msgpack.packb(missed, use_bin_type=True)) > self.config["max_frame_kb"] * 1024 // 2:
            return None  # too much to send in one answer; the current state is smaller
        return missed

    async def _call(self, peer: RpcPeer, tunnel: str, cmd: str, args: dict[str, Any]) -> Any:
        self._heard(peer)
        remote = self.tunnels.get(tunnel)
        if remote is None:
            raise RpcError("UnknownTunnel", f"satellite {self.serial} does not tunnel {tunnel!r}")
        if not isinstance(cmd, str) or cmd not in remote.definition.cmds:
            raise RpcError("UnknownCommand", f"interface {remote.interface} has no command {cmd!r}")
        if not isinstance(args, dict):
            raise RpcError("InvalidParams", "command arguments must be a map")
        try:
            return await remote.call_with(cmd, args)
        except CommandError as exc:
            raise rpc_error_from_command_error(exc) from None

    def _ping(self, peer: RpcPeer, seq: int) -> int:
        self._heard(peer)
        return seq

    def _on_peer_closed(self, peer: RpcPeer) -> None:
        self._last_heard.pop(peer, None)
        if peer is not self.controller:
            return
        self.controller = None
        self.log.warning("main board link lost: %s", peer.close_reason)
        self.raise_error("link", COMMUNICATION_FAULT, message=f"main board link lost: {peer.close_reason}")
        self._publish_state("Lost")

    async def _drop_silent_controllers(self) -> None:
        limit = float(self.config["controller_timeout_s"])
        while True:
            await self.clock.sleep(limit / 4)
            now = self.clock.monotonic()
            for peer, heard in list(self._last_heard.items()):
                if now - heard > limit:
                    peer.close(f"nothing heard from the main board for {limit:g} s")

    def _publish_state(self, state: str) -> None:
        peer = self.controller
        self.publish("link", "connection_state", {
            "state": state, "serial": self.serial, "boot_id": self.boot_id,
            "remote_address": peer.remote_address[0] if peer and peer.remote_address else "",
            "rebooted": False})

    # -- the satellite interface, seen from this board ---------------------------------------------
    @command("link", "is_connected")
    def is_connected(self) -> bool:
        return self.controller is not None

    @command("link", "get_local_endpoint_address")
    def get_local_endpoint_address(self) -> str:
        peer = self.controller
        return peer.local_address[0] if peer and peer.local_address else ""

    @command("link", "get_remote_endpoint_address")
    def get_remote_endpoint_address(self) -> str:
        peer = self.controller
        return peer.remote_address[0] if peer and peer.remote_address else ""

    @command("link", "get_satellite_info")
    def get_satellite_info(self) -> dict[str, Any]:
        return {"serial": self.serial, "boot_id": self.boot_id, "version": everpy.__version__,
                "protocol_version": PROTOCOL_VERSION,
                "interfaces": {name: remote.interface for name, remote in self.tunnels.items()}}


