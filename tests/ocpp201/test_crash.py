"""kill -9 of the whole 2.0.1 station process group (the SIL charger of config/sil-ocpp201.yaml as its own
process) mid-transaction and while the queue drains: after the restart the CSMS has every TransactionEvent of
the transaction exactly once (a resend only with the unique id of the first sending), seqNo 0..n without a
gap, one Started first and one Ended (PowerLoss) last.

The CSMS is the `ocpp` package's 2.0.1 ChargePoint behind a real websocket server: it validates every frame
of the station against the official schemas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.typing import Subprotocol

from tests.ocpp.crash import queued_at_least
from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config

pytestmark = pytest.mark.slow

VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0",
             "SampledDataCtrlr.TxUpdatedInterval": "1", "TxCtrlr.TxStartPoint": "PowerPathClosed"}
WAIT_S = 40.0


@dataclass(frozen=True)
class Received:
    unique_id: str
    action: str
    payload: dict[str, Any]


class RecordingCsms:
    """A 2.0.1 CSMS that records every CALL of the station (across connections and its own restarts: keep
    one instance and start/stop its server) and may answer slowly."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer_delay_s = 0.0
        self.port = 0
        self._server: Any = None
        self._new = asyncio.Condition()
        self._connections: set[Any] = set()
        self.peer: ChargePoint | None = None  # the station's latest connection, for CSMS->station calls

    async def call(self, request: Any) -> Any:
        assert self.peer is not None, "the station is not connected"
        return await self.peer.call(request)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        self._server = await websockets.serve(self._serve, "127.0.0.1", self.port,
                                              subprotocols=[Subprotocol("ocpp2.0.1")])
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        for connection in list(self._connections):
            await connection.close()
        await self._server.wait_closed()

    def _peer(self, connection: Any) -> _Peer:
        return _Peer("CP1", connection, self)

    async def _serve(self, connection: Any) -> None:
        self._connections.add(connection)
        peer = self.peer = self._peer(connection)
        try:
            await peer.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._connections.discard(connection)

    async def record(self, raw: str) -> None:
        message = json.loads(raw)
        if message[0] == 2:
            async with self._new:
                self.received.append(Received(message[1], message[2], message[3]))
                self._new.notify_all()

    async def wait_for(self, predicate: Callable[[Received], bool], timeout: float = WAIT_S,
                       after: int = 0) -> Received:
        async def first() -> Received:
            async with self._new:
                while True:
                    found = next((r for r in self.received[after:] if predicate(r)), None)
                    if found is not None:
                        return found
                    await self._new.wait()

        return await asyncio.wait_for(first(), timeout)

    def events(self, tx_id: str) -> list[Received]:
        return [r for r in self.received if r.action == "TransactionEvent"
                and r.payload["transactionInfo"]["transactionId"] == tx_id]


class _Peer(ChargePoint):
    def __init__(self, identity: str, connection: Any, csms: RecordingCsms) -> None:
        super().__init__(identity, connection)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        await self.csms.record(raw_msg)
        await super().route_message(raw_msg)

    async def _slowly(self) -> None:
        if self.csms.answer_delay_s:
            await asyncio.sleep(self.csms.answer_delay_s)  # the CSMS's behaviour under test, not a wait

    @on("BootNotification")
    async def boot(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=datetime.now(UTC).isoformat(), interval=300,
                                            status="Accepted")

    @on("Heartbeat")
    async def heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on("StatusNotification")
    async def status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on("Authorize")
    async def authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    async def transaction_event(self, id_token: Any = None, **_: Any) -> call_result.TransactionEvent:
        await self._slowly()
        return call_result.TransactionEvent(id_token_info={"status": "Accepted"} if id_token else None)

    @on("MeterValues")
    async def meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on("SecurityEventNotification")
    async def security_event(self, **_: Any) -> call_result.SecurityEventNotification:
        return call_result.SecurityEventNotification()

    @on("NotifyEvent")
    async def notify_event(self, **_: Any) -> call_result.NotifyEvent:
        return call_result.NotifyEvent()


def check_transaction(csms: RecordingCsms, tx_id: str) -> list[dict[str, Any]]:
    """The transaction's distinct events: each unique id once (a resend is the same message), seqNo 0..n,
    Started first, Ended last. Returns their payloads in seqNo order."""
    first: dict[str, dict[str, Any]] = {}
    for r in csms.events(tx_id):
        assert first.setdefault(r.unique_id, r.payload) == r.payload, "a resend differs from the first sending"
    events = sorted(first.values(), key=lambda p: p["seqNo"])
    assert [p["seqNo"] for p in events] == list(range(len(events))), "seqNo has a gap or a duplicate"
    kinds = [p["eventType"] for p in events]
    assert kinds[0] == "Started" and kinds[-1] == "Ended" and set(kinds[1:-1]) <= {"Updated"}, kinds
    return events


def started(r: Received) -> bool:
    return r.action == "TransactionEvent" and r.payload["eventType"] == "Started"


def ended_of(tx_id: str) -> Callable[[Received], bool]:
    return lambda r: (r.action == "TransactionEvent" and r.payload["eventType"] == "Ended"
                      and r.payload["transactionInfo"]["transactionId"] == tx_id)


def periodic_of(tx_id: str) -> Callable[[Received], bool]:
    return lambda r: (r.action == "TransactionEvent" and r.payload["triggerReason"] == "MeterValuePeriodic"
                      and r.payload["transactionInfo"]["transactionId"] == tx_id)


def station_for(tmp_path: Any, csms: RecordingCsms) -> StationProcess:
    config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, base=SIL_OCPP201,
                             keys=VARIABLES, test_keys={})
    return StationProcess(config, tmp_path)


async def test_kill_mid_transaction_ends_it_with_power_loss_after_restart(tmp_path):
    """TC_E_40_CS (crash variant), E12 (power loss): kill -9 mid-transaction; after the restart the transaction
    ends (PowerLoss) with the next seqNo, nothing lost or duplicated."""
    csms = RecordingCsms()
    await csms.start()
    station = station_for(tmp_path, csms)
    station.start()
    try:
        start = await csms.wait_for(started)
        tx_id = start.payload["transactionInfo"]["transactionId"]
        first_periodic = await csms.wait_for(periodic_of(tx_id))
        await csms.wait_for(periodic_of(tx_id), after=csms.received.index(first_periodic) + 1)
        station.kill()
        station.start()
        ended = await csms.wait_for(ended_of(tx_id))
    finally:
        station.stop()
        await csms.stop()
    assert ended.payload["transactionInfo"]["stoppedReason"] == "PowerLoss", station.log()
    events = check_transaction(csms, tx_id)
    assert len(events) >= 4
    assert start.payload["evse"] == {"id": 1, "connectorId": 1}
    assert ended.payload["meterValue"][-1]["sampledValue"][0]["context"] == "Transaction.End"


async def test_kill_while_the_queue_drains_loses_nothing(tmp_path):
    """TC_E_40_CS, TC_E_43_CS (crash variant): events pile up while the CSMS is away (offline: true), the
    station dies while it delivers them to a slow CSMS; after the restart every event arrives once, in seqNo
    order without a gap, and the queue empties."""
    csms = RecordingCsms()
    await csms.start()
    station = station_for(tmp_path, csms)
    station.start()
    try:
        start = await csms.wait_for(started)
        tx_id = start.payload["transactionInfo"]["transactionId"]
        await csms.wait_for(periodic_of(tx_id))
        await csms.stop()  # the CSMS goes away; TransactionEvents pile up in the queue
        await asyncio.wait_for(queued_at_least(tmp_path, 6), WAIT_S)
        csms.answer_delay_s = 0.3
        mark = len(csms.received)
        await csms.start()
        delivered = await csms.wait_for(lambda r: r.action == "TransactionEvent", after=mark)
        await csms.wait_for(lambda r: r.action == "TransactionEvent", after=csms.received.index(delivered) + 1)
        station.kill()
        csms.answer_delay_s = 0.0
        station.start()
        await csms.wait_for(ended_of(tx_id))
        await asyncio.wait_for(queued_at_least(tmp_path, 0, exact=True), WAIT_S)
    finally:
        station.stop()
        await csms.stop()
    events = check_transaction(csms, tx_id)
    assert any(p.get("offline") is True for p in events), "no event was marked as generated offline"
    assert events[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
