"""The satellite link protocol (version 1), spoken over everpy.rpc between SatelliteAgent (server, on the
satellite board) and SatelliteController (client, on the main board).

Controller -> agent (requests):

- ``hello(protocol_version, {serial, boot_id})`` -> ``{protocol, serial, boot_id, version, tunnels:
  {name: interface}}``; answered once the satellite's own stack is globally ready.
- ``subscribe(resume)`` -> ``{seq, replay: [[seq, method, params...]]}`` (the pushes missed since
  ``resume = {boot_id, seq}``, if this satellite stack still has them) or a snapshot ``{seq, vars: {tunnel:
  {var: value}}, errors: {tunnel: [error]}}``; from then on the agent pushes every change to this connection.
- ``call(tunnel, cmd, args)`` -> the command's result; failures carry everpy ``CommandError`` wire names
  as ``RpcError.kind``.
- ``ping(seq)`` -> ``seq``: the heartbeat (the agent also drops a controller that stops pinging).

Agent -> controller (notifications, in order, as they happen — no polling):
``var(seq, tunnel, name, value)``, ``error(seq, tunnel, error)`` (``error["state"]`` Active or
ClearedByModule), ``bye(reason)`` before the agent stops on purpose. ``seq`` numbers the pushes of one
satellite stack (boot id) from 1, so a controller can resume where it left off.

Tunnels are the agent's requirement ids (``evse_manager``, ``powermeter``, ...): whatever interface a
requirement is connected to is tunnelled whole, so a new interface needs no new RPC code. The
controller provides each tunnel under the implementation id of the same name.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from everpy.core.exceptions import CommandError, CommandTimeout, PeerUnavailable
from everpy.rpc.auth import load_key
from everpy.rpc.errors import ConnectionLost, RpcError, RpcException, RpcTimeout
from everpy.rpc.mdns import select_addresses, split_list
from everpy.rpc.transport import client_tls_context, server_tls_context

PROTOCOL_VERSION = 1
DEFAULT_PORT = 4129


def rpc_error_from_command_error(exc: CommandError) -> RpcError:
    """A command failure on the satellite, as the error object the controller turns back into the type."""
    return RpcError(exc.wire_name, exc.message)


def command_error_from_rpc(exc: RpcException, target: str) -> CommandError:
    """What a main-board caller sees when a tunnelled call fails, by what happened on the link."""
    if isinstance(exc, RpcTimeout):
        return CommandTimeout(f"satellite did not answer: {exc}", target=target)
    if isinstance(exc, ConnectionLost):
        return PeerUnavailable(f"satellite link lost: {exc}", target=target)
    if isinstance(exc, RpcError):
        return CommandError.from_wire(exc.kind, exc.message, target=target)
    return PeerUnavailable(f"satellite link failed: {exc}", target=target)


# The example key of the shipped SIL configs (config/satellite.yaml, config/main-with-satellites.yaml): it is
# public, so a link keyed with it is open to anyone on the board-to-board network.
DEVELOPMENT_KEY = bytes.fromhex("6576657270792d6465762d6b65792d6e6f742d666f722d70726f64756374696f6e")


class DevelopmentKeyRefused(ValueError):
    """The link is keyed with the public example key outside a development setup."""


def link_key(config: dict[str, Any]) -> bytes:
    """The pre-shared key from a module config (``psk``); refuses short keys with a clear message, and the
    public example key unless the config says ``allow_development_key: true`` (the SIL configs do)."""
    key = load_key(str(config["psk"]))
    if key == DEVELOPMENT_KEY and not config.get("allow_development_key", False):
        raise DevelopmentKeyRefused(
            "psk is the public example key of the SIL configs: anyone could join this link. Give every "
            "board its own key (e.g. psk: file:/etc/everpy/satellite.psk holding `python3 -c \"import secrets; "
            "print(secrets.token_hex(32))\"`, the same file on the main board), or set allow_development_key: "
            "true for a simulation")
    return key


def agent_tls(config: dict[str, Any]) -> ssl.SSLContext | None:
    if not config.get("tls_cert"):
        return None
    return server_tls_context(config["tls_cert"], config.get("tls_key") or config["tls_cert"],
                              config.get("tls_client_ca") or None)


def controller_tls(config: dict[str, Any]) -> ssl.SSLContext | None:
    if not config.get("tls_ca"):
        return None
    # satellites are reached by the address mDNS gives, so the name is not checked; the chain is
    return client_tls_context(config["tls_ca"], config.get("tls_cert") or None, config.get("tls_key") or None,
                              check_hostname=False)


def mdns_addresses(config: dict[str, Any]) -> list[str]:
    return select_addresses(split_list(config.get("mdns_interfaces", "")),
                            split_list(config.get("mdns_deny_interfaces", "")),
                            bool(config.get("mdns_allow_loopback", False)))


def parse_hello(answer: Any) -> dict[str, Any]:
    """The satellite's hello answer, checked; raises ``RpcError("ProtocolViolation")`` if malformed."""
    if not isinstance(answer, dict):
        raise RpcError("ProtocolViolation", f"hello answer is {type(answer).__name__}, not a map")
    tunnels = answer.get("tunnels")
    if not isinstance(tunnels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tunnels.items()):
        raise RpcError("ProtocolViolation", "hello answer has no valid tunnel map")
    for key in ("serial", "boot_id", "version"):
        if not isinstance(answer.get(key), str):
            raise RpcError("ProtocolViolation", f"hello answer has no string {key!r}")
    if answer.get("protocol") != PROTOCOL_VERSION:
        raise RpcError("ProtocolMismatch", f"satellite speaks version {answer.get('protocol')!r}, "
                                           f"this main board {PROTOCOL_VERSION}")
    return answer


@dataclass(frozen=True)
class Subscription:
    """A subscribe answer: either ``replay`` (the pushes missed since the resume point, in order) or a
    snapshot (``vars`` and active ``errors`` per tunnel); ``seq`` is the number of the last push included."""

    seq: int
    replay: list[tuple[int, str, list[Any]]] | None
    vars: dict[str, dict[str, Any]]
    errors: dict[str, list[dict[str, Any]]]


def parse_subscription(answer: Any) -> Subscription:
    """Checks a subscribe answer; raises ``RpcError("ProtocolViolation")`` on a malformed one."""
    if not isinstance(answer, dict) or type(answer.get("seq")) is not int:
        raise RpcError("ProtocolViolation", "subscribe answer is not a map with a sequence number")
    if "replay" in answer:
        events = answer["replay"]
        if not isinstance(events, list) or not all(
                isinstance(e, list) and len(e) >= 2 and type(e[0]) is int and isinstance(e[1], str) for e in events):
            raise RpcError("ProtocolViolation", "replay is not a list of [seq, method, params...]")
        return Subscription(answer["seq"], [(e[0], e[1], e[2:]) for e in events], {}, {})
    values, errors = answer.get("vars", {}), answer.get("errors", {})
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise RpcError("ProtocolViolation", "snapshot vars are not maps per tunnel")
    if not isinstance(errors, dict) or not all(isinstance(e, list) for e in errors.values()):
        raise RpcError("ProtocolViolation", "snapshot errors are not lists per tunnel")
    return Subscription(answer["seq"], None, values, {
        name: [e for e in listed if isinstance(e, dict) and isinstance(e.get("type"), str)]
        for name, listed in errors.items()})
