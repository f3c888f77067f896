"""OCPP-J RPC: framing, schema validation and spec-exact CALLERRORs.

The ``ocpp`` package supplies the official JSON schemas and the action list; the routing and error
mapping are ours because the package's own router answers with the wrong codes for OCPP-J 1.6 (it swaps
NotImplemented and NotSupported, says FormatViolation where 1.6 says FormationViolation) and cannot tell
a handler fault from a protocol fault.

OCPP-J 1.6 §4.2.3 error codes as used here:

==============================  ===============================================================
NotImplemented                  the action name is not an OCPP action at all
NotSupported                    an OCPP action this side does not handle
ProtocolError                   payload incomplete (a required field is missing)
FormationViolation              payload does not fit the PDU (extra field, not an object, bad frame)
PropertyConstraintViolation     a field has a value outside its allowed set or range
OccurenceConstraintViolation    a list has too few or too many elements
TypeConstraintViolation         a field has the wrong data type (also string too long, bad dateTime)
InternalError                   the handler failed
==============================  ===============================================================

Invalid JSON and frames without a usable unique id cannot be answered: they are logged and skipped.
Frames with an unknown message type id are ignored (OCPP-J 1.6 §4.1.3).
"""

from __future__ import annotations

import asyncio
import decimal
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft4Validator

from everpy.ocpp.transport import Connection

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID_LENGTH = 36


class OcppCallError(Exception):
    """Raised by a handler to answer with a specific CALLERROR, or by ``call`` when the peer sent one."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class CallTimeout(Exception):
    """No answer to a CALL within the response timeout."""


class InvalidResponse(Exception):
    """The peer's CALLRESULT did not match the action's response schema."""


@dataclass
class Reply:
    """What a handler returns: the CALLRESULT payload, and optionally work to do once it is sent
    (e.g. a StatusNotification after ChangeAvailability, or the reset itself after Reset.conf)."""

    payload: dict[str, Any]
    after: Callable[[], Awaitable[None]] | None = None


Handler = Callable[[dict[str, Any]], Awaitable[Reply]]


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_datetime)


class Schemas:
    """The official OCPP JSON schemas of one version, as shipped by the ``ocpp`` package."""

    def __init__(self, version_dir: str, request_suffix: str = "") -> None:
        import ocpp

        self._dir = Path(ocpp.__file__).parent / version_dir / "schemas"
        self._request_suffix = request_suffix
        self._cache: dict[str, Draft4Validator] = {}
        self.actions = frozenset(
            p.stem.removesuffix(request_suffix)
            for p in self._dir.glob("*.json")
            if not p.stem.endswith("Response")
        )

    def validator(self, action: str, response: bool) -> Draft4Validator:
        name = action + ("Response" if response else self._request_suffix)
        if name not in self._cache:
            # Decimals, so that multipleOf 0.1 on charging limits is checked exactly.
            schema = json.loads((self._dir / f"{name}.json").read_text("utf-8-sig"), parse_float=decimal.Decimal)
            self._cache[name] = Draft4Validator(schema, format_checker=_FORMATS)
        return self._cache[name]

    def check(self, action: str, payload: Any, response: bool) -> None:
        """Raise OcppCallError with the OCPP-J 1.6 code for the first schema violation."""
        as_decimal = json.loads(json.dumps(payload, cls=_Encoder), parse_float=decimal.Decimal)
        error = jsonschema.exceptions.best_match(self.validator(action, response).iter_errors(as_decimal))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "payload"
            raise OcppCallError(_code_for(error), f"{where}: {error.message}"[:255])


def _code_for(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    if kind == "required":
        return "ProtocolError"
    if kind == "additionalProperties":
        return "FormationViolation"
    if kind in ("minItems", "maxItems", "uniqueItems"):
        return "OccurenceConstraintViolation"
    if kind in ("type", "maxLength", "minLength", "format"):
        if kind == "type" and not error.absolute_path:
            return "FormationViolation"  # the payload itself is not an object
        return "TypeConstraintViolation"
    return "PropertyConstraintViolation"  # enum, minimum, maximum, multipleOf, pattern


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return float(o)
        return super().default(o)


def _floats(value: Any) -> Any:
    """Payload parsed with Decimals back to plain floats for handlers."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


@dataclass
class _Pending:
    unique_id: str
    action: str
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RpcPeer:
    """One OCPP-J session over one websocket connection.

    ``run()`` receives until the connection closes (raising ``ConnectionClosed``); incoming CALLs are
    handled in their own tasks so a handler may itself ``call()`` the peer without deadlocking.
    ``call()`` allows one outstanding CALL at a time, as OCPP-J requires.
    """

    def __init__(
        self,
        connection: Connection,
        schemas: Schemas,
        handlers: dict[str, Handler],
        log: logging.Logger,
        response_timeout: float = 30.0,
        on_frame: Callable[[str, str], None] | None = None,
    ) -> None:
        self._connection = connection
        self._schemas = schemas
        self._handlers = handlers
        self._log = log
        self._response_timeout = response_timeout
        self._call_lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_frame = on_frame  # ("in"|"out", raw) for traffic logs

    async def run(self) -> None:
        try:
            while True:
                raw = await self._connection.recv()
                await self._receive(raw)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._pending is not None and not self._pending.future.done():
                self._pending.future.set_exception(ConnectionError("connection closed"))

    async def _send(self, frame: list[Any]) -> None:
        raw = json.dumps(frame, separators=(",", ":"), cls=_Encoder)
        if self._on_frame is not None:
            self._on_frame("out", raw)
        await self._connection.send(raw)

    async def _receive(self, raw: str | bytes) -> None:
        if self._on_frame is not None:
            self._on_frame("in", raw if isinstance(raw, str) else repr(raw))
        try:
            frame = json.loads(raw, parse_float=decimal.Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._log.error("ignoring a frame that is not valid JSON: %.200r", raw)
            return
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            self._log.error("ignoring a frame without message type and unique id: %.200r", raw)
            return
        message_type, unique_id = frame[0], frame[1]
        if message_type == CALL:
            await self._receive_call(frame, unique_id)
        elif message_type in (CALLRESULT, CALLERROR):
            self._receive_answer(frame, unique_id)
        else:
            self._log.error("ignoring a frame with unknown message type %r: %.200r", message_type, raw)

    async def _receive_call(self, frame: list[Any], unique_id: str) -> None:
        if len(unique_id) > MAX_UNIQUE_ID_LENGTH:
            await self._send_error(unique_id, OcppCallError("FormationViolation", "unique id longer than 36"))
            return
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            await self._send_error(unique_id, OcppCallError("FormationViolation", "CALL must be [2, id, action, {}]"))
            return
        action, payload = frame[2], frame[3]
        if action not in self._schemas.actions:
            await self._send_error(unique_id, OcppCallError("NotImplemented", f"unknown action {action}"[:255]))
            return
        handler = self._handlers.get(action)
        if handler is None:
            await self._send_error(unique_id, OcppCallError("NotSupported", f"{action} is not supported"))
            return
        try:
            self._schemas.check(action, payload, response=False)
        except OcppCallError as error:
            self._log.warning("rejecting %s %s: %s %s", action, unique_id, error.code, error.description)
            await self._send_error(unique_id, error)
            return
        task = asyncio.ensure_future(self._handle(handler, action, unique_id, _floats(payload)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, handler: Handler, action: str, unique_id: str, payload: dict[str, Any]) -> None:
        try:
            reply = await handler(payload)
            self._schemas.check(action, reply.payload, response=True)
        except OcppCallError as error:
            await self._send_error(unique_id, error)
            return
        except Exception:  # a fault in our own handler: the CSMS learns it as InternalError, we log it
            self._log.exception("handler for %s failed", action)
            await self._send_error(unique_id, OcppCallError("InternalError", f"{action} handler failed"))
            return
        await self._send([CALLRESULT, unique_id, reply.payload])
        if reply.after is not None:
            task = asyncio.ensure_future(reply.after())
            task.add_done_callback(self._log_after_failure)

    def _log_after_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("follow-up work failed", exc_info=task.exception())

    async def _send_error(self, unique_id: str, error: OcppCallError) -> None:
        await self._send([CALLERROR, unique_id, error.code, error.description, error.details])

    def _receive_answer(self, frame: list[Any], unique_id: str) -> None:
        pending = self._pending
        if pending is None or pending.unique_id != unique_id or pending.future.done():
            self._log.warning("ignoring an answer to no outstanding CALL (id %s)", unique_id)
            return
        if frame[0] == CALLRESULT:
            if len(frame) != 3 or not isinstance(frame[2], dict):
                pending.future.set_exception(InvalidResponse(f"malformed CALLRESULT {frame!r:.200}"))
                return
            try:
                self._schemas.check(pending.action, frame[2], response=True)
            except OcppCallError as error:
                pending.future.set_exception(InvalidResponse(f"{pending.action}: {error.description}"))
                return
            pending.future.set_result(_floats(frame[2]))
        else:
            code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"
            description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            pending.future.set_exception(OcppCallError(code, description, details))

    async def call(
        self, action: str, payload: dict[str, Any], unique_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload.

        Raises OcppCallError (peer answered CALLERROR), CallTimeout, InvalidResponse, or ConnectionError /
        ConnectionClosed when the link drops. Our own payload is validated first (a bug, so ValueError).
        """
        try:
            self._schemas.check(action, payload, response=False)
        except OcppCallError as error:
            raise ValueError(f"refusing to send an invalid {action}: {error.description}") from None
        async with self._call_lock:
            pending = _Pending(unique_id or str(uuid.uuid4()), action)
            self._pending = pending
            try:
                await self._send([CALL, pending.unique_id, action, payload])
                return await asyncio.wait_for(pending.future, timeout or self._response_timeout)
            except TimeoutError:
                raise CallTimeout(f"no answer to {action} {pending.unique_id}") from None
            finally:
                self._pending = None
