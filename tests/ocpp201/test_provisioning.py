"""Provisioning (B) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (real bus,
EvseManager, simulated car) and the `ocpp` package's 2.0.1 CSMS over a real websocket (every frame checked
against the official schemas): the boot Rejected, Pending (the CSMS configures the station meanwhile) and
Accepted; Get/SetVariables, reports, the Basic-auth password reconnect; Reset with and without a transaction and
the RemoteReset boot after it; statuses after an outage longer than OfflineThreshold. And the 2.0.1 reconnect
backoff (RetryBackOff*) of the station's own session on a fake clock."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.exceptions import SecurityError
from ocpp.routing import on
from ocpp.v201 import call, call_result

from everpy.core.clock import FakeClock
from everpy.ocpp.settings import StationSettings
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v201.chargepoint import ChargePoint201
from tests.ocpp.blocks.fakes import LOG, FakeStation
from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config
from tests.ocpp.station import wait_file

from .test_availability import status_of
from .test_crash import VARIABLES, WAIT_S, Received, RecordingCsms, _Peer, ended_of, started

HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
OFFLINE_THRESHOLD = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}
INITIAL_PASSWORD = "initial-password-16"
NEW_PASSWORD = "the-new-password-1234"


class ProvisioningCsms(RecordingCsms):
    """The recording CSMS that answers BootNotification from a plan, takes NotifyReport, and keeps the
    Authorization header of every connection."""

    def __init__(self, *boots: tuple[str, int]) -> None:
        super().__init__()
        self.boots = list(boots)  # (status, interval) of the first BootNotifications; then Accepted
        self.boot_times: list[float] = []
        self.authorizations: list[str | None] = []
        self._opened = asyncio.Condition()

    async def _serve(self, connection: Any) -> None:
        async with self._opened:
            self.authorizations.append(connection.request.headers.get("Authorization"))
            self._opened.notify_all()
        self._connections.add(connection)
        peer = self.peer = ProvisioningPeer("CP1", connection, self)
        try:
            await peer.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._connections.discard(connection)

    async def wait_connections(self, count: int, timeout: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout), self._opened:
            await self._opened.wait_for(lambda: len(self.authorizations) >= count)

    def password(self, connection: int = -1) -> str:
        header = self.authorizations[connection]
        assert header is not None and header.startswith("Basic "), header
        return base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")[2]

    def reports(self, request_id: int) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if r.action == "NotifyReport" and r.payload["requestId"] == request_id]


class ProvisioningPeer(_Peer):
    csms: ProvisioningCsms

    @on("BootNotification")
    async def boot(self, **_: Any) -> call_result.BootNotification:
        self.csms.boot_times.append(time.monotonic())
        status, interval = self.csms.boots.pop(0) if self.csms.boots else ("Accepted", 300)
        return call_result.BootNotification(current_time=datetime.now(UTC).isoformat(), interval=interval,
                                            status=status)

    @on("NotifyReport")
    async def notify_report(self, **_: Any) -> call_result.NotifyReport:
        return call_result.NotifyReport()


def booted(r: Received) -> bool:
    return r.action == "BootNotification"


def last_report_of(request_id: int) -> Any:
    return lambda r: r.action == "NotifyReport" and r.payload["requestId"] == request_id and not r.payload["tbc"]


def status_notification(r: Received) -> bool:
    return r.action == "StatusNotification"


async def status_delivered(csms: RecordingCsms) -> None:
    """The first StatusNotification came and the station has its answer: a round trip after it (frames come in
    order), so an outage from now on cannot leave it undelivered (and resent for that reason)."""
    await csms.wait_for(status_notification)
    await csms.call(call.GetVariables(get_variable_data=[OFFLINE_THRESHOLD]))


def station_for(tmp_path: Path, csms: RecordingCsms, car_script: str | None = None, **variables: str
                ) -> StationProcess:
    config = sil_ocpp_config(tmp_path, csms.url, car_script=car_script, base=SIL_OCPP201,
                             keys=VARIABLES | variables, test_keys={})
    return StationProcess(config, tmp_path)


@pytest.mark.slow
async def test_boot_rejected_then_pending_while_the_csms_configures_then_accepted(tmp_path):
    """TC_B_01_CS TC_B_02_CS TC_B_03_CS TC_B_06_CS TC_B_07_CS TC_B_09_CS TC_B_32_CS TC_B_30_CS: Rejected: the
    next boot waits the interval; Pending: the CSMS reads and sets variables and gets a report (B02), a remote
    start is answered SecurityError, the station sends nothing else of its own; Accepted: statuses follow, and
    the value set while Pending holds."""
    csms = ProvisioningCsms(("Rejected", 1), ("Pending", 4))
    await csms.start()
    station = station_for(tmp_path, csms)
    station.start()
    try:
        rejected = await csms.wait_for(booted)
        pending = await csms.wait_for(booted, after=csms.received.index(rejected) + 1)
        read = await csms.call(call.GetVariables(get_variable_data=[
            HEARTBEAT, {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Enabled"}}]))
        written = await csms.call(call.SetVariables(set_variable_data=[OFFLINE_THRESHOLD | {"attribute_value": "5"}]))
        report = await csms.call(call.GetReport(request_id=7, component_variable=[HEARTBEAT]))
        page = await csms.wait_for(last_report_of(7))
        assert csms.peer is not None
        with pytest.raises(SecurityError):
            await csms.peer.call(call.RequestStartTransaction(
                id_token={"id_token": "DEADBEEF", "type": "ISO14443"}, remote_start_id=1), suppress=False)
        accepted = await csms.wait_for(booted, after=csms.received.index(pending) + 1)
        first_status = await csms.wait_for(status_notification)
        after = await csms.call(call.GetVariables(get_variable_data=[OFFLINE_THRESHOLD]))
    finally:
        station.stop()
        await csms.stop()
    assert csms.boot_times[1] - csms.boot_times[0] >= 0.9, "the Rejected interval was not waited"
    assert [r["attribute_status"] for r in read.get_variable_result] == ["Accepted", "UnknownComponent"]
    assert int(read.get_variable_result[0]["attribute_value"]) > 0  # the SIL config's, until a boot is Accepted
    assert written.set_variable_result[0]["attribute_status"] == "Accepted"
    assert report.status == "Accepted"
    assert [e["variable"]["name"] for e in page.payload["reportData"]] == ["HeartbeatInterval"]
    order = csms.received
    assert order.index(page) < order.index(accepted) < order.index(first_status), station.log()
    before_accepted = {r.action for r in order[:order.index(accepted)]}
    assert before_accepted <= {"BootNotification", "NotifyReport"}, before_accepted
    assert after.get_variable_result[0]["attribute_value"] == "5"


@pytest.mark.slow
async def test_reports_and_a_new_basic_auth_password(tmp_path):
    """TC_B_12_CS TC_B_13_CS TC_B_53_CS TC_A_09_CS TC_A_10_CS: FullInventory in pages (seqNo 0.., tbc until the
    last) with every mandatory variable; ConfigurationInventory without read-only ones; an empty GetReport;
    SetVariables of the password: Accepted, then the station reconnects with the new password (profile 1)."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms, **{"SecurityCtrlr.SecurityProfile": "1",
                                            "SecurityCtrlr.BasicAuthPassword": INITIAL_PASSWORD,
                                            "DeviceDataCtrlr.ItemsPerMessage[GetReport]": "20"})
    station.start()
    try:
        await csms.wait_for(status_notification)
        full = await csms.call(call.GetBaseReport(request_id=1, report_base="FullInventory"))
        await csms.wait_for(last_report_of(1))
        configuration = await csms.call(call.GetBaseReport(request_id=2, report_base="ConfigurationInventory"))
        await csms.wait_for(last_report_of(2))
        empty = await csms.call(call.GetReport(request_id=3, component_variable=[{"component": {"name": "Nope"}}]))
        mark = len(csms.received)
        changed = await csms.call(call.SetVariables(set_variable_data=[{
            "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
            "attribute_value": NEW_PASSWORD}]))
        await csms.wait_connections(2)
        await csms.call(call.GetVariables(get_variable_data=[OFFLINE_THRESHOLD]))  # the new connection works
    finally:
        station.stop()
        await csms.stop()
    assert (full.status, configuration.status, empty.status) == ("Accepted", "Accepted", "EmptyResultSet")
    pages = csms.reports(1)
    assert len(pages) > 1 and [p["seqNo"] for p in pages] == list(range(len(pages)))
    assert [p["tbc"] for p in pages] == [True] * (len(pages) - 1) + [False]
    entries = [e for p in pages for e in p["reportData"]]
    names = {(e["component"]["name"], e["variable"]["name"]) for e in entries}
    assert {("OCPPCommCtrlr", "HeartbeatInterval"), ("SecurityCtrlr", "SecurityProfile"),
            ("EVSE", "AvailabilityState"), ("Connector", "AvailabilityState"), ("DeviceDataCtrlr", "ItemsPerMessage"),
            ("AuthCtrlr", "Enabled"), ("TxCtrlr", "TxStartPoint")} <= names
    password = next(e for e in entries if e["variable"]["name"] == "BasicAuthPassword")
    assert all("value" not in a for a in password["variableAttribute"])
    assert not [e for p in csms.reports(2) for e in p["reportData"]
                if any(a["mutability"] == "ReadOnly" for a in e["variableAttribute"])]
    assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
    assert len(csms.authorizations) == 2, station.log()
    assert (csms.password(0), csms.password(1)) == (INITIAL_PASSWORD, NEW_PASSWORD)
    assert not [r for r in csms.received[mark:] if r.action == "BootNotification"], "a reconnect is no new boot"


@pytest.mark.slow
async def test_reset_immediate_stops_the_transaction_and_the_next_boot_says_remote_reset(tmp_path):
    """TC_B_22_CS TC_B_20_CS: Immediate during a transaction: Accepted, the transaction Ended with
    stoppedReason ImmediateReset, then the system resets; the station comes back with reason RemoteReset."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms, CHARGE_FOREVER)
    station.start()
    try:
        first_boot = await csms.wait_for(booted)
        tx_id = (await csms.wait_for(started)).payload["transactionInfo"]["transactionId"]
        reset = await csms.call(call.Reset(type="Immediate"))
        end = await csms.wait_for(ended_of(tx_id))
        await wait_file(tmp_path / "hard-reset")
        station.kill()  # the reset's reboot
        mark = len(csms.received)
        station.start()
        second_boot = await csms.wait_for(booted, after=mark)
    finally:
        station.stop()
        await csms.stop()
    assert reset.status == "Accepted"
    assert end.payload["transactionInfo"]["stoppedReason"] == "ImmediateReset", station.log()
    assert end.payload["triggerReason"] == "ResetCommand"
    assert (first_boot.payload["reason"], second_boot.payload["reason"]) == ("PowerUp", "RemoteReset")


@pytest.mark.slow
async def test_an_unavailable_station_stays_unavailable_across_a_reset(tmp_path):
    """TC_B_23_CS TC_B_20_CS: the EVSE Inoperative, then Reset OnIdle with nothing running: Accepted, the system
    resets; the station comes back (RemoteReset) with the connector still Unavailable."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms)
    station.start()
    try:
        await status_delivered(csms)
        mark = len(csms.received)
        await csms.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
        await csms.wait_for(status_of("Unavailable"), after=mark)
        reset = await csms.call(call.Reset(type="OnIdle"))
        await wait_file(tmp_path / "hard-reset")
        station.kill()  # the reset's reboot
        mark = len(csms.received)
        station.start()
        boot = await csms.wait_for(booted, after=mark)
        back = await csms.wait_for(status_notification, after=mark)
    finally:
        station.stop()
        await csms.stop()
    assert reset.status == "Accepted"
    assert boot.payload["reason"] == "RemoteReset"
    assert back.payload["connectorStatus"] == "Unavailable", station.log()


@pytest.mark.slow
async def test_reset_on_idle_waits_for_the_transaction(tmp_path):
    """TC_B_21_CS: OnIdle during a transaction: Scheduled, the transaction goes on; the reset follows its
    end (here a remote stop), never before."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms, CHARGE_FOREVER)
    station.start()
    try:
        tx_id = (await csms.wait_for(started)).payload["transactionInfo"]["transactionId"]
        reset = await csms.call(call.Reset(type="OnIdle"))
        # the station answered; a reset it did at once would have reached the System module by now
        still_running = not (tmp_path / "hard-reset").exists()
        await csms.call(call.RequestStopTransaction(transaction_id=tx_id))
        end = await csms.wait_for(ended_of(tx_id))
        await wait_file(tmp_path / "hard-reset")
    finally:
        station.stop()
        await csms.stop()
    assert reset.status == "Scheduled" and still_running, station.log()
    assert end.payload["eventType"] == "Ended"


@pytest.mark.slow
async def test_statuses_are_sent_again_after_an_outage_longer_than_offline_threshold(tmp_path):
    """TC_B_51_CS TC_B_57_CS: the CSMS goes away for longer than OfflineThreshold; on reconnect (no new
    BootNotification) every connector's status is sent again."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms, **{"OCPPCommCtrlr.OfflineThreshold": "1"})
    station.start()
    try:
        await status_delivered(csms)
        await csms.stop()
        outage = time.monotonic()
        await asyncio.sleep(1.5)  # the outage under test (longer than OfflineThreshold), not a synchronisation
        mark = len(csms.received)
        await csms.start()
        again = await csms.wait_for(status_notification, after=mark)
    finally:
        station.stop()
        await csms.stop()
    assert csms.boot_times and time.monotonic() - outage > 1
    assert again.payload["connectorStatus"] == "Available" and again.payload["evseId"] == 1
    assert not [r for r in csms.received[mark:] if r.action == "BootNotification"], station.log()


@pytest.mark.slow
async def test_after_a_short_outage_only_changed_statuses_are_sent(tmp_path):
    """TC_B_52_CS TC_B_57_CS: the CSMS is away for less than OfflineThreshold and nothing changed: the station
    reconnects without a BootNotification and sends no StatusNotification."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms, **{"OCPPCommCtrlr.OfflineThreshold": "600"})
    station.start()
    try:
        await status_delivered(csms)
        await csms.stop()
        mark = len(csms.received)
        await csms.start()
        await csms.wait_connections(2)
        alive = await csms.call(call.GetVariables(get_variable_data=[OFFLINE_THRESHOLD]))
        with pytest.raises(TimeoutError):  # bounded: a status would follow the reconnect at once
            await csms.wait_for(status_notification, timeout=2.0, after=mark)
    finally:
        station.stop()
        await csms.stop()
    assert alive.get_variable_result[0]["attribute_value"] == "600"
    assert not [r for r in csms.received[mark:] if r.action in ("BootNotification", "StatusNotification")]


# -- the reconnect backoff (B10) of ChargePoint201's session, on a fake clock -------------------------------
class RecordingStation(FakeStation):
    """Tells the test each connection state the station publishes."""

    def __init__(self) -> None:
        super().__init__([1])
        self.states: asyncio.Queue[str] = asyncio.Queue()

    def publish(self, var: str, value: Any) -> None:
        super().publish(var, value)
        if var == "connection_status":
            self.states.put_nowait(value["state"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_reconnect_backoff_follows_the_retry_backoff_variables(tmp_path):
    """TC_B_57_CS (B10.FR.01-03): with no CSMS, the first retry waits RetryBackOffWaitMinimum, each further one
    twice the last, RetryBackOffRepeatTimes times, then stays; RetryBackOffRandomRange adds at most that."""
    station = RecordingStation()
    settings = StationSettings("CP1", f"ws://127.0.0.1:{closed_port()}/ocpp", certificate_store_dir=str(tmp_path),
                               initial_configuration={"OCPPCommCtrlr.RetryBackOffWaitMinimum": "4",
                                                      "OCPPCommCtrlr.RetryBackOffRepeatTimes": "2",
                                                      "OCPPCommCtrlr.RetryBackOffRandomRange": "0"})
    clock = FakeClock()
    cp = ChargePoint201(station, OcppStore(tmp_path / "ocpp.db", ocpp_version="2.0.1", log=LOG), settings, clock,
                        LOG)
    running = asyncio.ensure_future(cp.session.run())
    try:
        for wait in (4, 8, 16, 16):
            assert await asyncio.wait_for(station.states.get(), 5) == "Connecting"
            assert await asyncio.wait_for(station.states.get(), 5) == "Disconnected"
            for _ in range(100):  # a few loop steps (no time passes) until the backoff sleep is armed
                if clock.pending_timers:
                    break
                await asyncio.sleep(0)
            await clock.advance(wait - 0.25)  # quarters are exact: the next wait starts exactly at this end
            assert station.states.empty(), f"retried before {wait} s"
            await clock.advance(0.25)
    finally:
        cp.close()
        await asyncio.wait_for(running, 5)
    cp.model.set_internal(next(d.ref for d in cp.model.definitions if d.name == "RetryBackOffRandomRange"), "10")
    assert all(16 <= cp.backoff(5) <= 26 for _ in range(50))
    assert all(4 <= cp.backoff(1) <= 14 for _ in range(50))


@pytest.mark.slow
async def test_an_evse_reset_the_station_cannot_do_is_rejected_not_widened(tmp_path):
    """TC_B_28_CS: the OCPP module cannot reset one EVSE alone: Reset with an evseId, Immediate and OnIdle,
    is Rejected and the system is not reset (with a transaction: the block test of the same name)."""
    csms = ProvisioningCsms()
    await csms.start()
    station = station_for(tmp_path, csms)
    station.start()
    try:
        await status_delivered(csms)
        idle = await csms.call(call.Reset(type="Immediate", evse_id=1))
        on_idle = await csms.call(call.Reset(type="OnIdle", evse_id=1))
        alive = await csms.call(call.GetVariables(get_variable_data=[OFFLINE_THRESHOLD]))
    finally:
        station.stop()
        await csms.stop()
    assert (idle.status, on_idle.status) == ("Rejected", "Rejected")
    assert not (tmp_path / "hard-reset").exists() and not (tmp_path / "soft-reset").exists()
    assert alive.get_variable_result[0]["attribute_status"] == "Accepted"
