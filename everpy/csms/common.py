"""What the OCPP 1.6 and 2.0.1 development CSMSs share: recording, waits, fault injection, listening, HTTP.

A version module (``v16``, ``v201``) adds a :class:`RecordingSession` subclass with the handlers of its
station messages and a :class:`CsmsServer` subclass naming its subprotocol, request classes and session.
Everything here speaks raw OCPP-J frames and camelCase payloads, so it does not depend on the version.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import ssl
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.charge_point import ChargePoint, camel_to_snake_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, validate_payload

from everpy.core.private_files import write_private
from everpy.ocpp import transport

log = logging.getLogger("everpy.csms")

HTTP_API_HELP = """\
HTTP API (on --http-port), with the header "Authorization: Bearer <token>": the token is made at start
and written to --token-file (readable by you only); --insecure-local serves it without a token.
  GET  /stations                    the connected station ids, as a JSON list
  POST /stations/<id>/<Action>      send the OCPP request <Action> with the camelCase JSON body to the
                                    station; answers {"result": <the station's camelCase answer>} or
                                    {"error": "<what went wrong>"} with a 4xx/5xx status
examples (1.6, then 2.0.1):
  curl -H "Authorization: Bearer $(cat TOKEN_FILE)" -X POST localhost:8181/stations/CP1/RemoteStartTransaction \\
       -d '{"idTag": "ABC", "connectorId": 1}'
  curl -H "Authorization: Bearer $(cat TOKEN_FILE)" -X POST localhost:8181/stations/CP1/GetVariables \\
       -d '{"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}'
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe_reading(measurand: str | None, phase: str | None, value: object, unit: str | None) -> str:
    """One sampled value in a log line, e.g. ``Power.Active.Import.L1=7360W``."""
    suffix = f".{phase}" if phase else ""
    return f"{measurand or 'Energy.Active.Import.Register'}{suffix}={value}{unit or ''}"


@dataclass
class Received:
    station: str
    action: str
    payload: dict[str, Any]  # camelCase, as sent
    unique_id: str


@dataclass
class BaseBehaviour:
    """How the CSMS answers, whatever the version; tests change these fields while running."""

    boot_statuses: list[str] = field(default_factory=lambda: ["Accepted"])  # answered in order, last repeats
    boot_interval: int = 300
    fail: dict[str, int] = field(default_factory=dict)  # action -> number of CALLERRORs still to answer
    silent: dict[str, int] = field(default_factory=dict)  # action -> number of CALLs not to answer at all
    answer_delay_s: float = 0.0  # delay before each answer (e.g. to catch a station mid-drain)


class RequestError(Exception):
    """A request the CSMS could not send or the station did not answer; ``status`` is the HTTP status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class StationCallError(RequestError):
    """The station answered a request with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(HTTPStatus.BAD_GATEWAY, f"the station answered {action} with CALLERROR {code}: "
                         f"{description}".rstrip(": "))
        self.code, self.description = code, description


def _frame(raw: str) -> list[Any] | None:
    try:
        frame = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return frame if isinstance(frame, list) and len(frame) >= 3 and isinstance(frame[1], str) else None


class RecordingSession(ChargePoint):
    """The CSMS side of one station connection: records, injects faults, answers resends as the first time.

    A version's session mixes this in before its ``ocpp.v16.ChargePoint`` / ``ocpp.v201.ChargePoint``.
    """

    def __init__(self, station_id: str, connection: Any, csms: CsmsServer) -> None:
        super().__init__(station_id, connection, response_timeout=15)
        self.csms = csms
        self.boots = 0
        self.answers: dict[str, dict[str, Any]] = {}  # action -> raw payload of the last answer to our request
        self.replies: dict[str, list[Any]] = {}  # unique id in _awaiting -> the station's CALLRESULT/CALLERROR
        self._asked: dict[str, str] = {}  # unique id of an outstanding request of ours -> its action
        self._awaiting: set[str] = set()
        self._answering: str | None = None  # unique id of the station's CALL being handled

    def next_boot_status(self) -> str:
        statuses = self.csms.behaviour.boot_statuses
        status = statuses[min(self.boots, len(statuses) - 1)]
        self.boots += 1
        return status

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None,
                   skip_schema_validation: bool = False) -> Any:
        unique_id = unique_id if unique_id is not None else str(uuid.uuid4())
        self._asked[unique_id] = type(payload).__name__
        try:
            return await super().call(payload, suppress, unique_id, skip_schema_validation)
        finally:
            del self._asked[unique_id]

    async def request(self, payload: Any, timeout: float) -> dict[str, Any]:
        """Send ``payload``; the station's camelCase answer, or a :class:`RequestError` saying what failed."""
        action, unique_id = type(payload).__name__, str(uuid.uuid4())
        self._awaiting.add(unique_id)
        try:
            async with asyncio.timeout(timeout):
                await self.call(payload, suppress=False, unique_id=unique_id)
            reply = self.replies[unique_id]  # call() returned, so a CALLRESULT arrived
            answer: dict[str, Any] = reply[2]
            return answer
        except TimeoutError as error:
            raise RequestError(HTTPStatus.GATEWAY_TIMEOUT, f"{self.id} did not answer {action}") from error
        except transport.ConnectionClosed as error:
            raise RequestError(HTTPStatus.BAD_GATEWAY, f"{self.id} disconnected before answering {action}") from error
        except OCPPError as error:
            refusal = self.replies.get(unique_id)
            if refusal is not None and refusal[0] == 4 and len(refusal) >= 4:
                raise StationCallError(action, str(refusal[2]), str(refusal[3])) from error
            raise RequestError(HTTPStatus.BAD_GATEWAY, f"{self.id}'s answer to {action} does not fit the schema: "
                               f"{_schema_problem(error)}") from error
        finally:
            self._awaiting.discard(unique_id)
            self.replies.pop(unique_id, None)

    async def route_message(self, raw_msg: str) -> None:
        self.csms._frame(self.id, raw_msg)
        frame = _frame(raw_msg)
        if frame is not None and frame[0] in (3, 4) and frame[1] in self._asked:
            if frame[1] in self._awaiting:
                self.replies[frame[1]] = frame
            if frame[0] == 3 and isinstance(frame[2], dict):
                self.answers[self._asked[frame[1]]] = frame[2]
        if frame is not None and len(frame) == 4 and frame[0] == 2 and isinstance(frame[2], str):
            unique_id, action = frame[1], frame[2]
            payload = frame[3] if isinstance(frame[3], dict) else {}
            behaviour = self.csms.behaviour
            cached = self.csms._answers.get((self.id, unique_id))
            self.csms._record(Received(self.id, action, payload, unique_id))
            if behaviour.silent.get(action, 0) > 0:
                behaviour.silent[action] -= 1
                return
            if behaviour.fail.get(action, 0) > 0:
                behaviour.fail[action] -= 1
                await self._send(json.dumps([4, unique_id, "InternalError", "injected failure", {}]))
                return
            if cached is not None:  # a resend: same answer as the first time
                await self._send(json.dumps([3, unique_id, cached]))
                return
            self._answering = unique_id
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        if self.csms.behaviour.answer_delay_s:
            await asyncio.sleep(self.csms.behaviour.answer_delay_s)
        frame = _frame(message)
        if frame is not None and frame[0] == 3 and frame[1] == self._answering:  # only results are replayed
            self.csms._answers[(self.id, frame[1])] = frame[2]
        await super()._send(message)


class CsmsServer:
    """The central system: a websockets server with one session per connected station.

    Subclasses set the class variables and :meth:`_session`.
    """

    version: ClassVar[str]  # "1.6" or "2.0.1", as the ocpp package names it
    subprotocol: ClassVar[str]
    requests: ClassVar[ModuleType]  # ocpp.v16.call / ocpp.v201.call
    actions: ClassVar[type[Enum]]  # the version's Action enum
    transaction_actions: ClassVar[tuple[str, ...]]  # what duplicates() looks at by default

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, passwords: Mapping[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None, behaviour: BaseBehaviour | None = None) -> None:
        self.host, self.port = host, port
        self.passwords = dict(passwords) if passwords is not None else None  # station id -> Basic password
        self.ssl_context = ssl_context
        self.behaviour = behaviour or BaseBehaviour()
        self.received: list[Received] = []
        self.frames: list[tuple[str, str]] = []  # (station, raw frame) as received
        self.sessions: dict[str, Any] = {}  # station id -> the version's session
        self.connections = 0
        self.refused: list[str] = []
        self._answers: dict[tuple[str, str], Any] = {}
        self._changed = asyncio.Condition()
        self._server: Any = None
        self._last_sessions: dict[str, Any] = {}

    def _session(self, station: str, connection: Any) -> RecordingSession:
        raise NotImplementedError

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}/ocpp"

    async def start(self) -> Any:
        self._server = await transport.serve(self._handle, self.host, self.port, subprotocols=[self.subprotocol],
                                             check=self._check, ssl_context=self.ssl_context)
        self.port = transport.server_port(self._server)
        log.info("CSMS listening on %s (OCPP %s)", self.url, self.version)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check(self, path: str, headers: Mapping[str, str]) -> transport.Refusal | None:
        station = path.rstrip("/").rsplit("/", 1)[-1]
        if self.passwords is None:
            return None
        expected = self.passwords.get(station)
        given = headers.get("Authorization", "")
        wanted = "Basic " + base64.b64encode(f"{station}:{expected}".encode()).decode()
        if expected is None or given != wanted:
            self.refused.append(station)
            asyncio.ensure_future(self._notify())
            log.warning("refusing %s: bad or missing Basic authentication", station)
            return transport.Refusal(HTTPStatus.UNAUTHORIZED, "unauthorized")
        return None

    async def _handle(self, connection: Any, path: str, headers: Mapping[str, str]) -> None:
        station = path.rstrip("/").rsplit("/", 1)[-1]
        session = self._session(station, connection)
        self.sessions[station] = session
        self._last_sessions[station] = session
        self.connections += 1
        log.info("%s connected (%s)", station, path)
        await self._notify()
        try:
            await session.start()
        except transport.ConnectionClosed:
            log.info("%s disconnected", station)
        finally:
            if self.sessions.get(station) is session:
                del self.sessions[station]
            await self._notify()

    # -- recording and waiting ---------------------------------------------------------------------
    def _frame(self, station: str, raw: str) -> None:
        self.frames.append((station, raw))
        asyncio.ensure_future(self._notify())

    def _record(self, received: Received) -> None:
        self.received.append(received)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        async def wait() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(wait(), timeout)

    def answer_to(self, request: Received) -> Any | None:
        """The answer this CSMS gave to ``request``; None while it gave none (or stays silent)."""
        return self._answers.get((request.station, request.unique_id))

    def forget(self) -> None:
        """Drop the frames, messages and answers recorded so far (long tests that must not grow); answers
        are kept per unique id for resends, so call it only when every message was delivered."""
        self.received.clear()
        self.frames.clear()
        self._answers.clear()

    def messages(self, action: str | None = None, station: str | None = None) -> list[Received]:
        return [r for r in self.received if (action is None or r.action == action)
                and (station is None or r.station == station)]

    async def wait_for(self, action: str, predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
                       timeout: float = 15.0, after: int = 0) -> Received:
        """The first message of `action` (from index `after` of `received` on) whose payload matches."""
        def find() -> Received | None:
            return next((r for r in self.received[after:] if r.action == action and predicate(r.payload)), None)

        return await self.wait_until(find, timeout)

    async def wait_connected(self, station: str, timeout: float = 15.0) -> Any:
        return await self.wait_until(lambda: self.sessions.get(station), timeout)

    async def wait_disconnected(self, station: str, timeout: float = 15.0) -> None:
        await self.wait_until(lambda: station not in self.sessions, timeout)

    def duplicates(self, actions: tuple[str, ...] | None = None) -> list[Received]:
        """Messages of `actions` (default: the transaction messages) resent with a unique id seen before."""
        wanted = self.transaction_actions if actions is None else actions
        seen: set[tuple[str, str]] = set()
        repeated = []
        for r in self.received:
            if r.action in wanted:
                if (r.station, r.unique_id) in seen:
                    repeated.append(r)
                seen.add((r.station, r.unique_id))
        return repeated

    def distinct(self, action: str, station: str | None = None) -> list[Received]:
        """Messages of `action` without resends (same unique id)."""
        seen: set[tuple[str, str]] = set()
        out = []
        for r in self.messages(action, station):
            if (r.station, r.unique_id) not in seen:
                seen.add((r.station, r.unique_id))
                out.append(r)
        return out

    # -- commands to stations ---------------------------------------------------------------------
    async def send_request(self, station: str, payload: Any) -> Any:
        """Send a request (a dataclass of the version's ``call`` module); raises the library's error on
        CALLERROR and ``asyncio.TimeoutError`` without an answer."""
        session = await self.wait_connected(station)
        return await session.call(payload, suppress=False)

    async def call_action(self, station: str, action: str, payload: dict[str, Any]) -> Any:
        """Send ``action`` with a camelCase payload; the library's result dataclass (snake_case fields)."""
        return await self.send_request(station, self.build_request(action, payload))

    def build_request(self, action: str, payload: dict[str, Any]) -> Any:
        """The request dataclass of ``action`` from a camelCase payload; RequestError if there is none."""
        request_class = self._request_class(action)
        if not isinstance(payload, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the payload of {action} must be a JSON object")
        arguments = camel_to_snake_case(payload)
        unknown = set(arguments) - {f.name for f in fields(request_class)}
        if unknown:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{action} has no field {', '.join(sorted(unknown))}")
        return request_class(**arguments)

    def _request_class(self, action: str) -> Any:
        if action not in {a.value for a in self.actions} or not hasattr(self.requests, action):
            raise RequestError(HTTPStatus.NOT_FOUND, f"OCPP {self.version} has no request {action}")
        return getattr(self.requests, action)

    async def request(self, station: str, action: str, payload: dict[str, Any],
                      timeout: float = 15.0) -> dict[str, Any]:
        """Send ``action`` with a camelCase payload to a connected station; the station's camelCase answer.

        Every failure is a :class:`RequestError` saying in OCPP terms what went wrong (unknown request,
        payload against the schema, station not connected, CALLERROR, no or a malformed answer).
        """
        session = self.sessions.get(station)
        if session is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"{station} is not connected")
        self._request_class(action)
        if action in session.route_map:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{action} is a message stations send, not a request to them")
        if not isinstance(payload, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the payload of {action} must be a JSON object")
        # The schema check comes first: it names a wrong field in OCPP terms before the dataclass sees it.
        await _check_schema(Call(str(uuid.uuid4()), action, payload), self.version,
                            f"{action} does not fit the OCPP {self.version} schema")
        return await session.request(self.build_request(action, payload), timeout)

    def last_answer(self, station: str, action: str) -> dict[str, Any]:
        """The raw (camelCase) CALLRESULT payload of the last `action` request sent to `station`."""
        session = self.sessions.get(station) or self._last_sessions[station]
        answer: dict[str, Any] = session.answers[action]
        return answer

    async def send_raw(self, station: str, text: str) -> None:
        session = await self.wait_connected(station)
        await session._connection.send(text)

    async def wait_raw_reply(self, station: str, unique_id: str, timeout: float = 15.0) -> list[Any]:
        def find() -> list[Any] | None:
            for who, raw in self.frames:
                frame = _frame(raw) if who == station else None
                if frame is not None and frame[0] in (3, 4) and frame[1] == unique_id:
                    return frame
            return None

        return await self.wait_until(find, timeout)

    async def disconnect(self, station: str) -> None:
        session = self.sessions.get(station)
        if session is not None:
            await session._connection.close()


def _schema_problem(error: OCPPError) -> str:
    """Where and how a payload breaks its schema, from the jsonschema error the library raised from."""
    cause = error.__context__
    if isinstance(cause, SchemaValidationError):
        where = "/".join(str(part) for part in cause.absolute_path)
        return f"{where}: {cause.message}" if where else cause.message
    return str(error.description or error.code)


async def _check_schema(message: Call, version: str, problem: str) -> None:
    try:
        await validate_payload(message, version)
    except OCPPError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{problem}: {_schema_problem(error)}") from error


# -- the program ------------------------------------------------------------------------------------
def default_token_file() -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"everpy-{os.getuid()}" / "csms-token"


def write_token(path: Path) -> str:
    """A fresh random token in a file only this user can read (its directory 0700 if we make it)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    write_private(path, token + "\n")
    return token


async def http_api(csms: CsmsServer, host: str, port: int, token: str | None = None) -> Any:
    """The HTTP API; with ``token`` every request must carry ``Authorization: Bearer <token>`` (401
    without it, 403 with another)."""
    from aiohttp import web

    @web.middleware
    async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if token is None:
            return await handler(request)
        if not given.startswith("Bearer "):
            return web.json_response({"error": "this API needs the header 'Authorization: Bearer <token>' "
                                               "(the token is in the file `everpy csms` named at start)"},
                                     status=HTTPStatus.UNAUTHORIZED)
        if not secrets.compare_digest(given.removeprefix("Bearer ").strip(), token):
            return web.json_response({"error": "wrong token"}, status=HTTPStatus.FORBIDDEN)
        return await handler(request)

    async def stations(request: web.Request) -> web.Response:
        return web.json_response(sorted(csms.sessions))

    async def command(request: web.Request) -> web.Response:
        station, action = request.match_info["station"], request.match_info["action"]
        try:
            try:
                payload = json.loads(await request.text() or "{}")
            except json.JSONDecodeError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({error.msg})") from error
            result = await csms.request(station, action, payload)
        except RequestError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        return web.json_response({"result": result})

    app = web.Application(middlewares=[require_token])
    app.router.add_get("/stations", stations)
    app.router.add_post("/stations/{station}/{action}", command)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the real one if 0 was asked
    log.info("remote commands: POST http://%s:%d/stations/<station>/<Action> with a JSON payload", host, port)
    return runner


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key or None)
    if args.client_ca:  # security profile 3: stations must show a certificate from this CA
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    return context


def passwords(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    found = {}
    for pair in pairs:
        station, separator, password = pair.partition("=")
        if not separator:
            raise SystemExit(f"--password wants STATION=KEY, got {pair!r}")
        found[station] = password
    return found


def build_parser(versions: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everpy csms", description="development OCPP central system (CSMS)",
                                     epilog=HTTP_API_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ocpp", choices=versions, default=versions[0],
                        help=f"OCPP version to speak (default {versions[0]})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="OCPP websocket port (stations connect to "
                        "ws://HOST:PORT/ocpp/<station id>)")
    parser.add_argument("--http-port", type=int, default=8181, help="HTTP port for remote commands")
    parser.add_argument("--password", action="append", default=[], metavar="STATION=KEY",
                        help="require HTTP Basic auth (security profiles 1 and 2); repeat per station")
    parser.add_argument("--cert", help="server certificate chain (PEM): serve wss:// (security profiles 2 and 3)")
    parser.add_argument("--key", help="private key of --cert (PEM), if not in the same file")
    parser.add_argument("--client-ca", help="CA (PEM) whose station certificates are required (security profile 3)")
    parser.add_argument("--token-file", type=Path, default=default_token_file(),
                        help="where the HTTP API's token is written (default: %(default)s)")
    parser.add_argument("--insecure-local", action="store_true",
                        help="serve the HTTP API without a token (any local process may then command stations)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every OCPP frame")
    return parser


def run(args: argparse.Namespace, csms_class: type[CsmsServer]) -> int:
    """Serve ``csms_class`` as configured by ``args`` (from :func:`build_parser`) until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("ocpp").setLevel(logging.INFO if args.verbose else logging.WARNING)

    async def serve() -> None:
        csms = csms_class(args.host, args.port, passwords=passwords(args.password), ssl_context=server_tls(args))
        await csms.start()
        token = None if args.insecure_local else write_token(args.token_file)
        if token is None:
            log.warning("the HTTP API takes commands without a token (--insecure-local)")
        else:
            log.info("the HTTP API wants 'Authorization: Bearer <token>'; the token is in %s", args.token_file)
        runner = await http_api(csms, args.host, args.http_port, token)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            await csms.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0
