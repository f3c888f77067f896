"""EVerest's MQTT wire format (framework v0.25+), as everpy speaks it.

Topics (``P`` is the prefix, ``everest/`` by default)::

    P/modules/<module>/impl/<impl>/cmd/<cmd>                    Cmd       {id, args, origin}
    P/modules/<module>/impl/<impl>/cmd/<cmd>/response/<caller>  CmdResult {type, data: {id, retval|error, origin}}
    P/modules/<module>/impl/<impl>/var/<var>                    Var       {data: value}
    P/modules/<module>/impl/<impl>/error/<ns>/<Name>            RaiseError / ClearError  error object
    P/modules/<module>/ready                                    ModuleReady true
    P/ready                                                     GlobalReady true
    P/modules/<module>/heartbeat                                Heartbeat {seq, ts}   (everpy liveness)
    P/everpy/module_state/<module>                              ModuleState {state}   (everpy supervision)
    P/everpy/system_restart                                     SystemRestart {module, reason}

Every payload is JSON ``{"msg_type": <type>, "data": <data>}``. See docs/wire-format.md.
"""

from __future__ import annotations

import json
from typing import Any

CMD = "Cmd"
CMD_RESULT = "CmdResult"
VAR = "Var"
RAISE_ERROR = "RaiseError"
CLEAR_ERROR = "ClearError"
MODULE_READY = "ModuleReady"
GLOBAL_READY = "GlobalReady"
HEARTBEAT = "Heartbeat"
MODULE_STATE = "ModuleState"
SYSTEM_RESTART = "SystemRestart"

ERROR_TYPE_KEY = "__everest__error_type"
ERROR_MSG_KEY = "__everest__error_msg"


class WireError(ValueError):
    """A payload on the bus is not a valid everpy/EVerest message."""


class Topics:
    def __init__(self, prefix: str = "everest") -> None:
        self.prefix = prefix.rstrip("/") + "/"

    def module(self, module_id: str) -> str:
        return f"{self.prefix}modules/{module_id}"

    def impl(self, module_id: str, impl_id: str) -> str:
        return f"{self.prefix}modules/{module_id}/impl/{impl_id}"

    def cmd(self, module_id: str, impl_id: str, cmd: str) -> str:
        return f"{self.impl(module_id, impl_id)}/cmd/{cmd}"

    def cmd_response(self, module_id: str, impl_id: str, cmd: str, caller: str) -> str:
        return f"{self.cmd(module_id, impl_id, cmd)}/response/{caller}"

    def var(self, module_id: str, impl_id: str, var: str) -> str:
        return f"{self.impl(module_id, impl_id)}/var/{var}"

    def error(self, module_id: str, impl_id: str, error_type: str) -> str:
        return f"{self.impl(module_id, impl_id)}/error/{error_type}"

    def module_ready(self, module_id: str) -> str:
        return f"{self.module(module_id)}/ready"

    def heartbeat(self, module_id: str) -> str:
        return f"{self.module(module_id)}/heartbeat"

    @property
    def global_ready(self) -> str:
        return f"{self.prefix}ready"

    @property
    def system_restart(self) -> str:
        return f"{self.prefix}everpy/system_restart"

    def module_state(self, module_id: str) -> str:
        return f"{self.prefix}everpy/module_state/{module_id}"

    def parse_impl_topic(self, topic: str) -> tuple[str, str, str, str] | None:
        """``P/modules/m/impl/i/<kind>/<rest>`` -> (m, i, kind, rest)."""
        if not topic.startswith(self.prefix + "modules/"):
            return None
        parts = topic[len(self.prefix) + len("modules/") :].split("/", 4)
        if len(parts) < 5 or parts[1] != "impl":
            return None
        return parts[0], parts[2], parts[3], parts[4]


def encode(msg_type: str, data: Any) -> bytes:
    """The message as the bus carries it; ValueError for NaN/Infinity (not JSON: subscribers in other
    languages reject them), TypeError for values JSON has no form for."""
    return json.dumps({"msg_type": msg_type, "data": data}, separators=(",", ":"), allow_nan=False).encode()


def decode(payload: bytes, expected: str | tuple[str, ...] | None = None) -> tuple[str, Any]:
    """Return (msg_type, data); raise WireError on anything malformed."""
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from None
    if not isinstance(message, dict) or "msg_type" not in message or "data" not in message:
        raise WireError("payload is not an object with 'msg_type' and 'data'")
    msg_type = message["msg_type"]
    if expected is not None and msg_type not in ((expected,) if isinstance(expected, str) else expected):
        raise WireError(f"expected msg_type {expected!r}, got {msg_type!r}")
    return msg_type, message["data"]


def cmd_request(call_id: str, args: dict[str, Any], origin: str) -> bytes:
    return encode(CMD, {"id": call_id, "args": args, "origin": origin})


def cmd_result(call_id: str, origin: str, retval: Any) -> bytes:
    return encode(CMD_RESULT, {"type": "result", "data": {"id": call_id, "retval": retval, "origin": origin}})


def cmd_error(call_id: str, origin: str, error_type: str, message: str) -> bytes:
    error = {ERROR_TYPE_KEY: error_type, ERROR_MSG_KEY: message}
    return encode(CMD_RESULT, {"type": "result", "data": {"id": call_id, "error": error, "origin": origin}})
