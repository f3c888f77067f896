"""Offline behaviour: the persistent transaction queue, retries and offline authorisation."""

from __future__ import annotations

from everpy.ocpp.csms import Behaviour, Csms
from everpy.testing import run_system

from .conftest import STANDINS, station_config


async def _charge(evse, id_tag: str, energy_end: float) -> None:
    evse.plug_in()
    evse.swipe(id_tag)
    await evse.wait_for_call("authorize_response")
    assert evse.transaction, "the transaction did not start"
    evse.set_energy(energy_end)
    evse.unplug()


async def test_tc_039_transaction_while_offline_is_delivered_in_order(tmp_path):
    keys = {"LocalAuthorizeOffline": "true", "AllowOfflineTxForUnknownId": "true"}
    async with Csms() as first:
        port = first.port
        config = station_config(tmp_path, first.url, keys=keys)
        async with run_system(config, extra_module_dirs=[STANDINS]) as system:
            evse = system.instances["evse"]
            await first.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
            await first.stop()
            await system.watch("ocpp", "main", "connection_status").wait_for(lambda s: not s["connected"])
            events = system.watch("ocpp", "main", "ocpp_transaction_event")
            await _charge(evse, "OFFLINE1", 4200)
            await events.wait_for(lambda e: e["transaction_event"] == "Ended")
            ocpp = system.instances["ocpp"]
            assert ocpp.store.queued_actions() == ["StartTransaction", "StopTransaction"]
            async with Csms(port=port) as second:
                stop = await second.wait_for("StopTransaction")
                start = second.messages("StartTransaction")[0]
                assert second.received.index(start) < second.received.index(stop)
                assert start.payload["idTag"] == "OFFLINE1" and start.payload["meterStart"] == 1000
                assert stop.payload["transactionId"] == 1 and stop.payload["meterStop"] == 4200
                assert await ocpp.cp.wait_queue_empty(10) and not second.duplicates()
                assert not second.messages("BootNotification")  # same run: no new boot after reconnect


async def test_failed_start_is_retried_then_dropped_and_stop_uses_minus_one(tmp_path):
    behaviour = Behaviour(fail={"StartTransaction": 3})
    async with Csms(behaviour=behaviour) as csms:
        config = station_config(tmp_path, csms.url, keys={"TransactionMessageAttempts": "3"})
        async with run_system(config, extra_module_dirs=[STANDINS]) as system:
            await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
            await _charge(system.instances["evse"], "TAG", 2000)
            stop = await csms.wait_for("StopTransaction")
            assert len(csms.messages("StartTransaction")) == 3  # TransactionMessageAttempts
            assert stop.payload["transactionId"] == -1  # errata 3.18


async def test_unknown_id_offline_is_refused_unless_allowed(tmp_path):
    async with Csms() as csms:
        config = station_config(tmp_path, csms.url, keys={"AllowOfflineTxForUnknownId": "false"})
        async with run_system(config, extra_module_dirs=[STANDINS]) as system:
            await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
            await csms.stop()
            await system.watch("ocpp", "main", "connection_status").wait_for(lambda s: not s["connected"])
            result = await system.call("ocpp", "auth_validator", "validate_token", provided_token={
                "id_token": {"value": "STRANGER", "type": "ISO14443"}, "authorization_type": "RFID"})
            assert result["authorization_status"] == "Invalid"
            assert await system.call("ocpp", "main", "change_configuration", key="AllowOfflineTxForUnknownId",
                                     value="true") == "Accepted"
            result = await system.call("ocpp", "auth_validator", "validate_token", provided_token={
                "id_token": {"value": "STRANGER", "type": "ISO14443"}, "authorization_type": "RFID"})
            assert result["authorization_status"] == "Accepted"
