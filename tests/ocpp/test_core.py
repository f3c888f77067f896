"""OCPP 1.6 Core scenarios, named after the OCA test cases, station on the bus against the in-repo CSMS."""

from __future__ import annotations

from ocpp.v16 import call

from everpy.ocpp.csms import Csms
from everpy.testing import run_system

from .conftest import STANDINS, station_config


async def test_tc_001_cold_boot(tmp_path, csms: Csms):
    csms.behaviour.boot_statuses = ["Rejected", "Accepted"]
    csms.behaviour.boot_interval = 1
    async with run_system(station_config(tmp_path, csms.url), extra_module_dirs=[STANDINS]):
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
        actions = [r.action for r in csms.received]
        assert actions[:2] == ["BootNotification", "BootNotification"]  # nothing else before Accepted
        statuses = {r.payload["connectorId"]: r.payload["status"] for r in csms.messages("StatusNotification")}
        assert statuses == {0: "Available", 1: "Available"}


async def test_tc_003_plug_in_first_rfid_charge_unplug(tmp_path, csms: Csms):
    async with run_system(station_config(tmp_path, csms.url), extra_module_dirs=[STANDINS]) as system:
        evse = system.instances["evse"]
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
        evse.plug_in()
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
        evse.swipe("TAG1")
        await csms.wait_for("Authorize", lambda p: p["idTag"] == "TAG1")
        start = await csms.wait_for("StartTransaction")
        assert start.payload["idTag"] == "TAG1" and start.payload["meterStart"] == 1000
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging")
        evse.set_energy(3500)
        evse.unplug()
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == "EVDisconnected"
        assert stop.payload["meterStop"] == 3500 and stop.payload["transactionId"] == 1
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Available",
                            after=csms.received.index(stop))


async def test_tc_012_remote_start_and_stop(tmp_path, csms: Csms):
    async with run_system(station_config(tmp_path, csms.url), extra_module_dirs=[STANDINS]) as system:
        evse = system.instances["evse"]
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
        evse.plug_in()
        result = await csms.call("CP1", call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
        assert result.status == "Accepted"
        start = await csms.wait_for("StartTransaction")
        assert start.payload["idTag"] == "REMOTE1"
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging")
        result = await csms.call("CP1", call.RemoteStopTransaction(transaction_id=1))
        assert result.status == "Accepted"
        stop = await csms.wait_for("StopTransaction")
        assert stop.payload["reason"] == "Remote"
        result = await csms.call("CP1", call.RemoteStopTransaction(transaction_id=99))
        assert result.status == "Rejected"
