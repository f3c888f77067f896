"""OCPP-J RPC, shared by every OCPP version: framing, schema validation, range bounds and CALLERRORs.

What differs between versions is a :class:`Dialect`: the JSON schemas (and their draft), the table that
turns a neutral :class:`Fault` into that version's error code, and the rule for frames of an unknown
message type. The routing and the error mapping are ours because the ``ocpp`` package's own router
answers with the wrong codes (it swaps NotImplemented and NotSupported and cannot tell a handler fault
from a protocol fault); the package supplies the official schemas and the action list.

Range, not just schema: before a handler sees a CALL (and before a CALLRESULT is believed), every
integer must fit the 32-bit integers OCPP defines, every number must be finite and of a size the
station can compute with, every string must be Unicode (no lone surrogate from a ``\\ud800`` escape), and
the JSON nesting must stay shallow. A value outside gets the dialect's PropertyConstraintViolation
(TypeConstraintViolation for a string, FormationViolation for the nesting; for an answer,
:class:`InvalidResponse`), never an exception that drops the link.
"""

from __future__ import annotations

import asyncio
import decimal
import enum
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema

from everpy.ocpp.schema_fastpath import Check, compile_schema
from everpy.ocpp.transport import Connection

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID_LENGTH = 36
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_NUMBER = decimal.Decimal(10) ** 12  # no OCPP quantity (Wh, W, A, s) comes near; multipleOf stays exact
MAX_DEPTH = 16  # the deepest OCPP 1.6/2.0.1 payload nests 7 levels
_CALL_ID = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')


class Fault(enum.Enum):
    """Why a CALL is refused, independent of the version that names it."""

    NOT_IMPLEMENTED = "the action is not an OCPP action"
    NOT_SUPPORTED = "an OCPP action this side does not handle"
    PROTOCOL = "a required field is missing"
    FORMATION = "the payload does not fit the message (extra field, not an object, bad frame)"
    PROPERTY = "a value outside its allowed set or range"
    OCCURRENCE = "a list with too few or too many elements"
    TYPE = "a field of the wrong type (also string too long, bad dateTime)"
    INTERNAL = "the handler failed"
    GENERIC = "any other error"
    FRAMEWORK = "the frame is not a valid OCPP-J message"
    SECURITY = "not allowed before the station is accepted (boot Pending or Rejected)"


class OcppCallError(Exception):
    """Raised by a handler to answer with a CALLERROR (a :class:`Fault`, named by the dialect), or by
    ``call`` when the peer sent one (then ``code`` is the peer's string)."""

    def __init__(self, code: str | Fault, description: str = "", details: dict[str, Any] | None = None) -> None:
        name = code.name if isinstance(code, Fault) else code
        super().__init__(f"{name}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class CallTimeout(Exception):
    """No answer to a CALL within the response timeout."""


class InvalidResponse(Exception):
    """The peer's CALLRESULT did not match the action's response schema or bounds."""


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
        datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_datetime)


class Schemas:
    """The official OCPP JSON schemas of one version, as shipped by the ``ocpp`` package.

    Each schema is also compiled into a fast valid-or-not check (everpy.ocpp.schema_fastpath): a payload
    it passes skips jsonschema; any other, or one of a schema it cannot compile, gets jsonschema's error."""

    def __init__(self, version_dir: str, request_suffix: str = "",
                 draft: type[jsonschema.protocols.Validator] = jsonschema.Draft4Validator) -> None:
        import ocpp

        self._dir = Path(ocpp.__file__).parent / version_dir / "schemas"
        self._request_suffix = request_suffix
        self._draft = draft
        self._cache: dict[str, jsonschema.protocols.Validator] = {}
        self._fast: dict[str, Check | None] = {}  # None: no fast path for that schema, jsonschema always
        self.actions = frozenset(
            p.stem.removesuffix(request_suffix)
            for p in self._dir.glob("*.json")
            if not p.stem.endswith("Response")
        )

    def validator(self, action: str, response: bool) -> jsonschema.protocols.Validator:
        name = action + ("Response" if response else self._request_suffix)
        if name not in self._cache:
            # Decimals, so that multipleOf 0.1 on charging limits is checked exactly.
            schema = json.loads((self._dir / f"{name}.json").read_text("utf-8-sig"), parse_float=decimal.Decimal)
            schema.pop("$schema", None)  # the dialect's draft decides, not a URL the validator may fetch
            self._cache[name] = self._draft(schema, format_checker=_FORMATS)
        return self._cache[name]

    def fast_valid(self, action: str, payload: Any, response: bool) -> bool:
        """True only where jsonschema would find no error (everpy.ocpp.schema_fastpath); False is "ask it"."""
        name = action + ("Response" if response else self._request_suffix)
        try:
            check = self._fast[name]
        except KeyError:
            formats = {format_: function for format_, (function, _raises) in _FORMATS.checkers.items()}
            check = self._fast[name] = compile_schema(self.validator(action, response).schema, self._draft, formats)
        return check is not None and check(payload)

    def first_error(self, action: str, payload: Any, response: bool) -> jsonschema.ValidationError | None:
        """None for a valid payload; else jsonschema's best error, which decides the CALLERROR code."""
        if self.fast_valid(action, payload, response):
            return None
        return jsonschema.exceptions.best_match(self.validator(action, response).iter_errors(payload))


@dataclass(frozen=True)
class Dialect:
    """What one OCPP version's RPC says differently: schemas, error codes, unknown message types."""

    subprotocol: str
    schemas: Schemas
    codes: Mapping[Fault, str]
    # OCPP-J 1.6 §4.1.3 ignores a frame of an unknown message type; 2.0.1 answers MessageTypeNotSupported
    unknown_message_type_code: str | None = None
    # OCPP-J 2.0.1 §4.2.3: a frame whose message id cannot be read is answered RpcFrameworkError with the id
    # "-1"; 1.6 names no id for it (the frame is only logged)
    unreadable_message_id: str | None = None

    def code(self, fault: Fault) -> str:
        return self.codes.get(fault, self.codes[Fault.GENERIC])

    def check(self, action: str, payload: Any, response: bool, bounds: bool = True) -> None:
        """Raise OcppCallError(Fault) for the first violation of the bounds (what the peer sent) or of
        the schema (both ways)."""
        if bounds:
            bounded(payload)
        error = self.schemas.first_error(action, payload, response)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "payload"
            raise OcppCallError(fault_for(error), f"{where}: {error.message}"[:255])


def fault_for(error: jsonschema.ValidationError) -> Fault:
    kind = error.validator
    if kind == "required":
        return Fault.PROTOCOL
    if kind == "additionalProperties":
        return Fault.FORMATION
    if kind in ("minItems", "maxItems", "uniqueItems"):
        return Fault.OCCURRENCE
    if kind in ("type", "maxLength", "minLength", "format"):
        if kind == "type" and not error.absolute_path:
            return Fault.FORMATION  # the payload itself is not an object
        return Fault.TYPE
    return Fault.PROPERTY  # enum, minimum, maximum, multipleOf, pattern


def bounded(value: Any, depth: int = 0, where: str = "payload") -> None:
    """Raise OcppCallError(PROPERTY/FORMATION/TYPE) for a value no station arithmetic or storage should meet."""
    if depth > MAX_DEPTH:
        raise OcppCallError(Fault.FORMATION, f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if not _unicode(value):
            raise OcppCallError(Fault.TYPE, f"{where}: not a Unicode string (lone surrogate)"[:255])
        return
    if isinstance(value, int):
        if not INT32_MIN <= value <= INT32_MAX:
            # described by its size: formatting the value itself fails beyond a double (10**400)
            raise OcppCallError(Fault.PROPERTY,
                                f"{where}: integer of {value.bit_length()} bits does not fit 32 bits"[:255])
    elif isinstance(value, decimal.Decimal | float):
        if not _computable(decimal.Decimal(value)):
            raise OcppCallError(Fault.PROPERTY, f"{where}: number out of range"[:255])
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _unicode(key):
                raise OcppCallError(Fault.FORMATION, f"{where}: a property name is not a Unicode string")
            bounded(item, depth + 1, f"{where}/{key}"[:100])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            bounded(item, depth + 1, f"{where}/{index}"[:100])


def _unicode(text: str) -> bool:
    """JSON's \\ud800 escapes parse to lone surrogates: no character, and SQLite or UTF-8 refuse them."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _computable(number: decimal.Decimal) -> bool:
    """Finite, at most MAX_NUMBER, and not so close to zero that a float (what handlers get) flushes it to
    0. Checked without the decimal context: abs() would raise Overflow for 1E+999999999, and below the
    context's exponent range the schema's multipleOf would see 1E-999999999 as a multiple of 0.1."""
    if not number.is_finite():
        return False
    magnitude = number.copy_abs()  # exact, unlike abs()
    return magnitude <= MAX_NUMBER and (magnitude == 0 or float(magnitude) != 0.0)


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return float(o)
        return super().default(o)


def _numbers(value: Any, kind: type, convert: Callable[[Any], Any]) -> Any:
    """The payload with every number of `kind` converted, the rest as it is."""
    if isinstance(value, kind):
        return convert(value)
    if isinstance(value, dict):
        return {k: _numbers(v, kind, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v, kind, convert) for v in value]
    return value


def _floats(value: Any) -> Any:
    """Payload parsed with Decimals back to plain floats for handlers."""
    return _numbers(value, decimal.Decimal, float)


def _decimals(value: Any) -> Any:
    """Our own payload (plain floats) as the validator sees incoming ones."""
    return _numbers(value, float, lambda number: decimal.Decimal(repr(number)))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_frame(raw: str | bytes) -> Any:
    """JSON with Decimals; NaN/Infinity and runaway nesting are refused as invalid JSON (ValueError)."""
    try:
        return json.loads(raw, parse_float=decimal.Decimal, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("nested too deeply") from None


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
        dialect: Dialect,
        handlers: Mapping[str, Handler],
        log: logging.Logger,
        response_timeout: float = 30.0,
        on_frame: Callable[[str, str], None] | None = None,
    ) -> None:
        self._connection = connection
        self._dialect = dialect
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
                self._pending.future.exception()  # retrieved: its caller may be cancelled before it looks

    async def _send(self, frame: list[Any]) -> None:
        raw = json.dumps(frame, separators=(",", ":"), cls=_Encoder)
        if self._on_frame is not None:
            self._on_frame("out", raw)
        await self._connection.send(raw)

    async def _receive(self, raw: str | bytes) -> None:
        if self._on_frame is not None:
            self._on_frame("in", raw if isinstance(raw, str) else repr(raw))
        try:
            frame = parse_frame(raw)
        except (ValueError, UnicodeDecodeError) as error:
            await self._refuse_unparsable(raw, error)
            return
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            await self._refuse_without_id(raw, "no message type and unique id")
            return
        message_type, unique_id = frame[0], frame[1]
        if message_type == CALL:
            await self._receive_call(frame, unique_id)
        elif message_type in (CALLRESULT, CALLERROR):
            self._receive_answer(frame, unique_id)
        elif self._dialect.unknown_message_type_code is not None:
            await self._send([CALLERROR, unique_id[:MAX_UNIQUE_ID_LENGTH], self._dialect.unknown_message_type_code,
                              f"message type {message_type!r:.20} is not supported", {}])
        else:
            self._log.error("ignoring a frame with unknown message type %r: %.200r", message_type, raw)

    async def _refuse_unparsable(self, raw: str | bytes, error: Exception) -> None:
        """A CALL whose id can still be read gets an answer; anything else can only be logged."""
        text = raw if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
        match = _CALL_ID.match(text[:200])
        if match is None:
            await self._refuse_without_id(raw, f"not valid JSON: {error}")
            return
        self._log.warning("refusing CALL %s that is not valid JSON: %s", match.group(1), error)
        await self._send_error(match.group(1), OcppCallError(Fault.FRAMEWORK, f"not valid JSON: {error}"[:255]))

    async def _refuse_without_id(self, raw: str | bytes, problem: str) -> None:
        self._log.error("frame without a readable message id (%s): %.200r", problem, raw)
        if self._dialect.unreadable_message_id is not None:
            await self._send_error(self._dialect.unreadable_message_id, OcppCallError(Fault.FRAMEWORK, problem[:255]))

    async def _receive_call(self, frame: list[Any], unique_id: str) -> None:
        if len(unique_id) > MAX_UNIQUE_ID_LENGTH:
            await self._send_error(unique_id[:MAX_UNIQUE_ID_LENGTH],
                                   OcppCallError(Fault.FORMATION, "unique id longer than 36"))
            return
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            await self._send_error(unique_id, OcppCallError(Fault.FORMATION, "CALL must be [2, id, action, {}]"))
            return
        action, payload = frame[2], frame[3]
        if action not in self._dialect.schemas.actions:
            await self._send_error(unique_id, OcppCallError(Fault.NOT_IMPLEMENTED, f"unknown action {action}"[:255]))
            return
        handler = self._handlers.get(action)
        if handler is None:
            await self._send_error(unique_id, OcppCallError(Fault.NOT_SUPPORTED, f"{action} is not supported"))
            return
        try:
            self._dialect.check(action, payload, response=False)
        except OcppCallError as error:
            self._log.warning("rejecting %s %s: %s", action, unique_id, error)
            await self._send_error(unique_id, error)
            return
        task = asyncio.ensure_future(self._handle(handler, action, unique_id, _floats(payload)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, handler: Handler, action: str, unique_id: str, payload: dict[str, Any]) -> None:
        try:
            reply = await handler(payload)
            self._dialect.check(action, _decimals(reply.payload), response=True, bounds=False)
        except OcppCallError as error:
            await self._send_error(unique_id, error)
            return
        except Exception:  # a fault in our own handler: the CSMS learns it as InternalError, we log it
            self._log.exception("handler for %s failed", action)
            await self._send_error(unique_id, OcppCallError(Fault.INTERNAL, f"{action} handler failed"))
            return
        await self._send([CALLRESULT, unique_id, reply.payload])
        if reply.after is not None:
            task = asyncio.ensure_future(reply.after())
            task.add_done_callback(self._log_after_failure)

    def _log_after_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("follow-up work failed", exc_info=task.exception())

    async def _send_error(self, unique_id: str, error: OcppCallError) -> None:
        code = self._dialect.code(error.code) if isinstance(error.code, Fault) else error.code
        await self._send([CALLERROR, unique_id, code, error.description, error.details])

    def _receive_answer(self, frame: list[Any], unique_id: str) -> None:
        pending = self._pending
        if pending is None or pending.unique_id != unique_id or pending.future.done():
            self._log.warning("ignoring an answer to no outstanding CALL (id %.40s)", unique_id)
            return
        if frame[0] == CALLRESULT:
            if len(frame) != 3 or not isinstance(frame[2], dict):
                pending.future.set_exception(InvalidResponse(f"malformed CALLRESULT {frame!r:.200}"))
                return
            try:
                self._dialect.check(pending.action, frame[2], response=True)
            except OcppCallError as error:
                pending.future.set_exception(InvalidResponse(f"{pending.action}: {error.description}"))
                return
            pending.future.set_result(_floats(frame[2]))
        else:
            code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"
            description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            pending.future.set_exception(OcppCallError(code[:50], description[:255], details))

    async def call(
        self, action: str, payload: dict[str, Any], unique_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload.

        Raises OcppCallError (peer answered CALLERROR), CallTimeout, InvalidResponse, or ConnectionError /
        ConnectionClosed when the link drops. Our own payload is validated first (a bug, so ValueError).
        """
        # Our own payload holds floats; the compiled fast path takes them as numbers (exact comparisons with
        # the schema's int/Decimal bounds), so only a payload it cannot pass is copied to Decimals for the
        # full check, which then decides (and names the fault)
        if not self._dialect.schemas.fast_valid(action, payload, response=False):
            try:
                self._dialect.check(action, _decimals(payload), response=False, bounds=False)
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
