"""A small OCPP 1.6J central system on the ``ocpp`` package: the tests' CSMS and the development CSMS.

As a program (``everpy csms``) it listens for stations, logs what they send in readable lines (boot,
authorisation, transactions, meter values, status) and takes remote commands over HTTP::

    curl -X POST localhost:8181/stations/CP1/RemoteStartTransaction -d '{"idTag": "ABC", "connectorId": 1}'
    curl localhost:8181/stations

In tests, :class:`Csms` records every frame and offers waits, calls, raw frames and fault injection.
Answers are idempotent per message unique id, so a station that resends a transaction message after a
crash gets the same transaction id back and the duplicate is visible in :meth:`Csms.duplicates`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from ocpp.charge_point import camel_to_snake_case
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from everpy.ocpp import transport

log = logging.getLogger("everpy.csms")
TRANSACTION_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Received:
    station: str
    action: str
    payload: dict[str, Any]
    unique_id: str


@dataclass
class Behaviour:
    """How the CSMS answers; tests change these fields while running."""

    boot_statuses: list[str] = field(default_factory=lambda: ["Accepted"])  # answered in order, last repeats
    boot_interval: int = 300
    id_tags: dict[str, str] = field(default_factory=dict)  # id tag -> status; others get default_id_tag_status
    default_id_tag_status: str = "Accepted"
    parents: dict[str, str] = field(default_factory=dict)  # id tag -> parentIdTag in idTagInfo
    fail: dict[str, int] = field(default_factory=dict)  # action -> number of CALLERRORs still to answer
    silent: dict[str, int] = field(default_factory=dict)  # action -> number of CALLs not to answer at all
    answer_delay_s: float = 0.0  # delay before each answer (e.g. to catch a station mid-drain)


def _describe_sample(sample: dict[str, Any]) -> str:
    phase = f".{sample['phase']}" if "phase" in sample else ""
    measurand = sample.get("measurand", "Energy.Active.Import.Register")
    return f"{measurand}{phase}={sample['value']}{sample.get('unit', '')}"


class _Session(ChargePoint):
    """The CSMS side of one station connection."""

    def __init__(self, station_id: str, connection: Any, csms: Csms) -> None:
        super().__init__(station_id, connection, response_timeout=15)
        self.csms = csms
        self._boots = 0
        self.answers: dict[str, dict[str, Any]] = {}  # action -> raw payload of the last answer to our request

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None,
                   skip_schema_validation: bool = False) -> Any:
        self._asked = payload.__class__.__name__
        return await super().call(payload, suppress, unique_id, skip_schema_validation)

    async def route_message(self, raw_msg: str) -> None:
        self.csms._frame(self.id, raw_msg)
        try:
            frame = json.loads(raw_msg)
        except json.JSONDecodeError:
            return
        if isinstance(frame, list) and len(frame) == 3 and frame[0] == 3 and hasattr(self, "_asked"):
            self.answers[self._asked] = frame[2]
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
            action, unique_id = frame[2], frame[1]
            behaviour = self.csms.behaviour
            if behaviour.silent.get(action, 0) > 0:
                behaviour.silent[action] -= 1
                self.csms._record(Received(self.id, action, frame[3], unique_id))
                return
            if behaviour.fail.get(action, 0) > 0:
                behaviour.fail[action] -= 1
                self.csms._record(Received(self.id, action, frame[3], unique_id))
                await self._send(json.dumps([4, unique_id, "InternalError", "injected failure", {}]))
                return
            cached = self.csms._answers.get((self.id, unique_id))
            self.csms._record(Received(self.id, action, frame[3], unique_id))
            if cached is not None:  # a resend: same answer as the first time
                await self._send(json.dumps([3, unique_id, cached]))
                return
            self._current_unique_id = unique_id
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        if self.csms.behaviour.answer_delay_s:
            await asyncio.sleep(self.csms.behaviour.answer_delay_s)
        try:
            frame = json.loads(message)
            if frame[0] == 3 and hasattr(self, "_current_unique_id") and frame[1] == self._current_unique_id:
                self.csms._answers[(self.id, frame[1])] = frame[2]
        except (json.JSONDecodeError, IndexError, KeyError):
            pass
        await super()._send(message)

    def _id_tag_info(self, id_tag: str) -> dict[str, Any]:
        behaviour = self.csms.behaviour
        info = {"status": behaviour.id_tags.get(id_tag, behaviour.default_id_tag_status)}
        if id_tag in behaviour.parents:
            info["parent_id_tag"] = behaviour.parents[id_tag]
        return info

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any) -> Any:
        statuses = self.csms.behaviour.boot_statuses
        status = statuses[min(self._boots, len(statuses) - 1)]
        self._boots += 1
        log.info("%s boot: %s %s -> %s", self.id, charge_point_vendor, charge_point_model, status)
        return call_result.BootNotification(current_time=_now(), interval=self.csms.behaviour.boot_interval,
                                            status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **kwargs: Any) -> Any:
        log.info("%s connector %s: %s%s", self.id, connector_id, status,
                 "" if error_code == "NoError" else f" ({error_code})")
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        info = self._id_tag_info(id_tag)
        log.info("%s authorize %s -> %s", self.id, id_tag, info["status"])
        return call_result.Authorize(id_tag_info=info)

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, **kwargs: Any) -> Any:
        transaction_id = next(self.csms._transaction_ids)
        info = self._id_tag_info(id_tag)
        log.info("%s transaction %d started on connector %d by %s at %d Wh", self.id, transaction_id,
                 connector_id, id_tag, meter_start)
        return call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=info)

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, transaction_id: int, reason: str = "Local", **kwargs: Any) -> Any:
        log.info("%s transaction %d stopped (%s) at %d Wh", self.id, transaction_id, reason, meter_stop)
        id_tag = kwargs.get("id_tag")
        return call_result.StopTransaction(id_tag_info=None if id_tag is None else self._id_tag_info(id_tag))

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kwargs: Any) -> Any:
        for value in meter_value:
            readings = ", ".join(_describe_sample(s) for s in value["sampled_value"])
            log.info("%s meter connector %d tx %s: %s", self.id, connector_id, kwargs.get("transaction_id"), readings)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        log.info("%s data transfer from vendor %s: %s", self.id, vendor_id, kwargs)
        return call_result.DataTransfer(status="Accepted", data=kwargs.get("data"))

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str) -> Any:
        log.info("%s firmware: %s", self.id, status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str) -> Any:
        log.info("%s diagnostics: %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s signed firmware (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s log upload (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.LogStatusNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str) -> Any:
        log.info("%s asks to sign a station certificate", self.id)
        return call_result.SignCertificate(status="Accepted")

    @on(Action.security_event_notification)
    def on_security_event(self, type: str, timestamp: str, **kwargs: Any) -> Any:
        log.info("%s security event %s", self.id, type)
        return call_result.SecurityEventNotification()


class Csms:
    """The central system: a websockets server with one :class:`_Session` per connected station."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, passwords: Mapping[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None, behaviour: Behaviour | None = None) -> None:
        self.host, self.port = host, port
        self.passwords = dict(passwords) if passwords is not None else None  # station id -> Basic password
        self.ssl_context = ssl_context
        self.behaviour = behaviour or Behaviour()
        self.received: list[Received] = []
        self.frames: list[tuple[str, str]] = []  # (station, raw frame) as received
        self.sessions: dict[str, _Session] = {}
        self.connections = 0
        self.refused: list[str] = []
        self._answers: dict[tuple[str, str], Any] = {}
        self._transaction_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._server: Any = None
        self._last_sessions: dict[str, _Session] = {}

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}/ocpp"

    async def start(self) -> Csms:
        self._server = await transport.serve(self._handle, self.host, self.port, subprotocols=["ocpp1.6"],
                                             check=self._check, ssl_context=self.ssl_context)
        self.port = transport.server_port(self._server)
        log.info("CSMS listening on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Csms:
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
        session = _Session(station, connection, self)
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

    async def wait_connected(self, station: str, timeout: float = 15.0) -> _Session:
        return await self.wait_until(lambda: self.sessions.get(station), timeout)

    async def wait_disconnected(self, station: str, timeout: float = 15.0) -> None:
        await self.wait_until(lambda: station not in self.sessions, timeout)

    def duplicates(self, actions: tuple[str, ...] = TRANSACTION_ACTIONS) -> list[Received]:
        seen: set[tuple[str, str]] = set()
        repeated = []
        for r in self.received:
            if r.action in actions:
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
    async def call(self, station: str, payload: Any) -> Any:
        """Send a request (an ``ocpp.v16.call`` dataclass); raises on CALLERROR."""
        session = await self.wait_connected(station)
        return await session.call(payload, suppress=False)

    async def call_action(self, station: str, action: str, payload: dict[str, Any]) -> Any:
        request = getattr(call, action)(**camel_to_snake_case(payload))
        return await self.call(station, request)

    def last_answer(self, station: str, action: str) -> dict[str, Any]:
        """The raw (camelCase) CALLRESULT payload of the last `action` request sent to `station`."""
        session = self.sessions.get(station) or self._last_sessions[station]
        return session.answers[action]

    async def send_raw(self, station: str, text: str) -> None:
        session = await self.wait_connected(station)
        await session._connection.send(text)

    async def wait_raw_reply(self, station: str, unique_id: str, timeout: float = 15.0) -> list[Any]:
        def find() -> list[Any] | None:
            for who, raw in self.frames:
                if who != station:
                    continue
                try:
                    frame = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(frame, list) and frame[:1] in ([3], [4]) and frame[1] == unique_id:
                    return frame
            return None

        return await self.wait_until(find, timeout)

    async def disconnect(self, station: str) -> None:
        session = self.sessions.get(station)
        if session is not None:
            await session._connection.close()


async def _http_api(csms: Csms, host: str, port: int) -> Any:
    from aiohttp import web

    async def stations(request: web.Request) -> web.Response:
        return web.json_response(sorted(csms.sessions))

    async def command(request: web.Request) -> web.Response:
        station, action = request.match_info["station"], request.match_info["action"]
        if station not in csms.sessions:
            return web.json_response({"error": f"{station} is not connected"}, status=404)
        try:
            payload = await request.json() if request.can_read_body else {}
            result = await csms.call_action(station, action, payload)
        except (AttributeError, TypeError, json.JSONDecodeError) as error:
            return web.json_response({"error": f"bad request: {error}"}, status=400)
        except Exception as error:  # the station's CALLERROR or a timeout, reported to the HTTP caller
            return web.json_response({"error": f"{type(error).__name__}: {error}"}, status=502)
        return web.json_response({"result": result.__dict__})

    app = web.Application()
    app.router.add_get("/stations", stations)
    app.router.add_post("/stations/{station}/{action}", command)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the real one if 0 was asked
    log.info("remote commands: POST http://%s:%d/stations/<station>/<Action> with a JSON payload", host, port)
    return runner


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key or None)
    if args.client_ca:  # security profile 3: stations must show a certificate from this CA
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    return context


def _passwords(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    passwords = {}
    for pair in pairs:
        station, separator, password = pair.partition("=")
        if not separator:
            raise SystemExit(f"--password wants STATION=KEY, got {pair!r}")
        passwords[station] = password
    return passwords


async def _serve(args: argparse.Namespace) -> None:
    csms = Csms(args.host, args.port, passwords=_passwords(args.password), ssl_context=_server_tls(args))
    await csms.start()
    runner = await _http_api(csms, args.host, args.http_port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await csms.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="everpy csms", description="development OCPP 1.6J central system")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="OCPP websocket port (stations connect to "
                        "ws://HOST:PORT/ocpp/<station id>)")
    parser.add_argument("--http-port", type=int, default=8181, help="HTTP port for remote commands")
    parser.add_argument("--password", action="append", default=[], metavar="STATION=KEY",
                        help="require HTTP Basic auth (security profiles 1 and 2); repeat per station")
    parser.add_argument("--cert", help="server certificate chain (PEM): serve wss:// (security profiles 2 and 3)")
    parser.add_argument("--key", help="private key of --cert (PEM), if not in the same file")
    parser.add_argument("--client-ca", help="CA (PEM) whose station certificates are required (security profile 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every OCPP frame")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("ocpp").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    return 0
