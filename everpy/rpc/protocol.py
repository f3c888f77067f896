"""msgpack-RPC messages: encoding and strict decoding (spec: msgpack-rpc/msgpack-rpc ``spec.md``).

Request ``[0, msgid, method, params]``, response ``[1, msgid, error, result]``, notification
``[2, method, params]``. ``msgid`` is a uint32; ``params`` an array; ``error`` is nil on success and any
other object on failure (a falsy error such as ``0`` or ``""`` is still an error).

Decoding never trusts the peer: ``classify()`` turns one unpacked object into a typed message or a
``BadMessage`` that says whether the peer can still be answered (a request whose id is readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2
MAX_MSGID = 2**32 - 1

#: Frames bigger than this close the connection (1 MiB: generous for charger state, small for a board).
DEFAULT_MAX_FRAME_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Request:
    msgid: int
    method: str
    params: list[Any]


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int
    error: Any
    result: Any


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: list[Any]


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A well-framed msgpack object that is not a valid msgpack-RPC message.

    ``answer_msgid`` is set when the object is recognisably a request with a valid id, so the peer gets
    an ``InvalidRequest`` error response; otherwise the object cannot be answered.
    """

    reason: str
    answer_msgid: int | None = None


Message = Request | Response | Notification


# Peers speaking the old msgpack spec (msgpack-python < 1.0 with default settings, some rpclib builds)
# have one "raw" type for text and bytes alike, so a str-typed value may hold arbitrary bytes. Decoding
# with surrogateescape keeps such values (instead of killing the connection), and packing with it sends
# the very same bytes back: lossless both ways. Method names with such bytes simply match nothing.
UNICODE_ERRORS = "surrogateescape"


def new_packer() -> msgpack.Packer:
    # bin type for bytes so binary data round-trips; str stays str (peers without bin support still read it)
    return msgpack.Packer(use_bin_type=True, autoreset=True, unicode_errors=UNICODE_ERRORS)


def new_unpacker(max_frame_size: int, read_chunk: int) -> msgpack.Unpacker:
    # The buffer may hold one partial frame plus one read chunk; frame size itself is checked by the
    # caller via tell(), so an oversized frame is detected exactly rather than by chunk alignment luck.
    return msgpack.Unpacker(
        raw=False,
        unicode_errors=UNICODE_ERRORS,
        strict_map_key=False,
        max_buffer_size=max_frame_size + read_chunk,
        max_str_len=max_frame_size,
        max_bin_len=max_frame_size,
        max_array_len=max_frame_size,
        max_map_len=max_frame_size // 2,
        max_ext_len=max_frame_size,
    )


def _is_msgid(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_MSGID


def _method_name(value: Any) -> str | None:
    if type(value) is str:
        return value
    if type(value) is bytes:  # some peers send method names as bin
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def classify(obj: Any) -> Message | BadMessage:
    """Validates one unpacked object against the spec."""
    if type(obj) is not list:
        return BadMessage(f"message is not an array but {type(obj).__name__}")
    if not obj:
        return BadMessage("empty array")
    kind = obj[0]
    if kind == REQUEST and type(kind) is int:
        if len(obj) != 4:
            msgid = obj[1] if len(obj) > 1 and _is_msgid(obj[1]) else None
            return BadMessage(f"request has {len(obj)} elements, expected 4", msgid)
        _, msgid, method, params = obj
        if not _is_msgid(msgid):
            return BadMessage(f"request id {msgid!r} is not a uint32")
        name = _method_name(method)
        if name is None:
            return BadMessage(f"method name is {type(method).__name__}, expected str", msgid)
        if type(params) is not list:
            return BadMessage(f"params of {name!r} are {type(params).__name__}, expected array", msgid)
        return Request(msgid, name, params)
    if kind == RESPONSE and type(kind) is int:
        if len(obj) != 4:
            return BadMessage(f"response has {len(obj)} elements, expected 4")
        _, msgid, error, result = obj
        if not _is_msgid(msgid):
            return BadMessage(f"response id {msgid!r} is not a uint32")
        return Response(msgid, error, result)
    if kind == NOTIFICATION and type(kind) is int:
        if len(obj) != 3:
            return BadMessage(f"notification has {len(obj)} elements, expected 3")
        _, method, params = obj
        name = _method_name(method)
        if name is None:
            return BadMessage(f"notification method name is {type(method).__name__}, expected str")
        if type(params) is not list:
            return BadMessage(f"params of notification {name!r} are {type(params).__name__}, expected array")
        return Notification(name, params)
    return BadMessage(f"unknown message type {kind!r}")


def request(msgid: int, method: str, params: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [REQUEST, msgid, method, list(params)]


def response(msgid: int, error: Any, result: Any) -> list[Any]:
    return [RESPONSE, msgid, error, result]


def notification(method: str, params: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [NOTIFICATION, method, list(params)]
