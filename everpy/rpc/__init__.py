"""msgpack-RPC over TCP on asyncio: two-way peers, explicit method registry, key handshake, optional TLS.

Used for the link between a main board and its satellite boards; usable by anything that needs a small,
spec-exact msgpack-RPC (interoperates with msgpack-rpc-python and rpclib peers).
"""

from everpy.rpc.auth import load_key
from everpy.rpc.errors import (
    ConnectionLost,
    HandshakeFailed,
    RpcError,
    RpcException,
    RpcTimeout,
)
from everpy.rpc.peer import RpcPeer
from everpy.rpc.registry import MethodRegistry
from everpy.rpc.transport import RpcServer, client_tls_context, connect, server_tls_context

__all__ = [
    "ConnectionLost",
    "HandshakeFailed",
    "MethodRegistry",
    "RpcError",
    "RpcException",
    "RpcPeer",
    "RpcServer",
    "RpcTimeout",
    "client_tls_context",
    "connect",
    "load_key",
    "server_tls_context",
]
