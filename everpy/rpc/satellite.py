"""The satellite link protocol (version 1), spoken over everpy.rpc between SatelliteAgent (server, on the
satellite board) and SatelliteController (client, on the main board).

Controller -> agent (requests):

- ``hello(protocol_version, {serial, boot_id})`` -> ``{protocol, serial, boot_id, version, tunnels:
  {name: interface}}``; answered once the satellite's own stack is globally ready.
- ``subscribe()`` -> snapshot ``{vars: {tunnel: {var: value}}, errors: {tunnel: [error]}}``; from then on
  the agent pushes every change to this connection.
- ``call(tunnel, cmd, args)`` -> the command's result; failures carry everpy ``CommandError`` wire names
  as ``RpcError.kind``.
- ``ping(seq)`` -> ``seq``: the heartbeat (the agent also drops a controller that stops pinging).

Agent -> controller (notifications, in order, as they happen — no polling):
``var(tunnel, name, value)``, ``error(tunnel, error)`` (``error["state"]`` Active or ClearedByModule),
``bye(reason)`` before the agent stops on purpose.

Tunnels are the agent's requirement ids (``evse_manager``, ``powermeter``, ...): whatever interface a
requirement is connected to is tunnelled whole, so a new interface needs no new RPC code. The
controller provides each tunnel under the implementation id of the same name.
"""

from __future__ import annotations

import ssl
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


def link_key(config: dict[str, Any]) -> bytes:
    """The pre-shared key from a module config (``psk``); refuses short keys with a clear message."""
    return load_key(str(config["psk"]))


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
