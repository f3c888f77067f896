"""Offline behaviour on the SIL charger: the persistent transaction queue, retries, offline authorisation."""

from __future__ import annotations

from everpy.csms import Behaviour, Csms

from .station import WAIT_S, Station, sil_station

STRANGER = {"id_token": {"value": "STRANGER", "type": "ISO14443"}, "authorization_type": "RFID"}


async def _offline(station: Station) -> None:
    await station.csms.stop()
    await station.system.watch("ocpp", "main", "connection_status").wait_for(lambda s: not s["connected"], WAIT_S)


async def test_tc_039_transaction_while_offline_is_delivered_in_order(tmp_path):
    keys = {"LocalAuthorizeOffline": "true", "AllowOfflineTxForUnknownId": "true"}
    async with Csms() as first:
        async with sil_station(tmp_path, first, keys=keys) as station:
            await _offline(station)
            await station.plug_in()
            await station.swipe("OFFLINE1")
            await station.transactions.wait_for(lambda e: e["transaction_event"] == "Started", WAIT_S)
            await station.unplug()
            await station.transactions.wait_for(lambda e: e["transaction_event"] == "Ended", WAIT_S)
            assert station.ocpp.store.queued_actions() == ["StartTransaction", "StopTransaction"]
            async with Csms(port=first.port) as second:
                stop = await second.wait_for("StopTransaction", timeout=WAIT_S)
                start = second.messages("StartTransaction")[0]
                assert second.received.index(start) < second.received.index(stop)
                assert start.payload["idTag"] == "OFFLINE1"
                assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "EVDisconnected"
                assert await station.ocpp.cp.session.wait_queue_empty(WAIT_S) and not second.duplicates()
                assert not second.messages("BootNotification")  # same run: no new boot after a reconnect
                await second.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)  # state resent


async def test_failed_start_is_retried_then_dropped_and_stop_uses_minus_one(tmp_path):
    async with Csms(behaviour=Behaviour(fail={"StartTransaction": 3})) as csms:
        async with sil_station(tmp_path, csms, keys={"TransactionMessageAttempts": "3"}) as station:
            await station.plug_in()
            await station.swipe("TAG")
            await station.transactions.wait_for(lambda e: e["transaction_event"] == "Started", WAIT_S)
            await station.unplug()
            stop = await csms.wait_for("StopTransaction", timeout=WAIT_S)
            assert len(csms.messages("StartTransaction")) == 3  # TransactionMessageAttempts
            assert stop.payload["transactionId"] == -1  # OCPP 1.6 errata 3.18


async def test_unknown_id_offline_is_refused_unless_allowed(tmp_path):
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys={"AllowOfflineTxForUnknownId": "false"}) as station:
            await _offline(station)
            system = station.system
            result = await system.call("ocpp", "auth_validator", "validate_token", provided_token=STRANGER)
            assert result["authorization_status"] == "Invalid"
            assert await system.call("ocpp", "main", "change_configuration", key="AllowOfflineTxForUnknownId",
                                     value="true") == "Accepted"
            result = await system.call("ocpp", "auth_validator", "validate_token", provided_token=STRANGER)
            assert result["authorization_status"] == "Accepted"


async def test_local_authorize_offline_uses_the_cache(tmp_path):
    keys = {"LocalAuthorizeOffline": "true", "AllowOfflineTxForUnknownId": "false"}
    async with Csms() as csms:
        csms.behaviour.id_tags["BLOCKED"] = "Blocked"
        async with sil_station(tmp_path, csms, keys=keys) as station:
            system = station.system
            for tag in ("KNOWN", "BLOCKED"):
                token = {"id_token": {"value": tag, "type": "ISO14443"}, "authorization_type": "RFID"}
                await system.call("ocpp", "auth_validator", "validate_token", provided_token=token)
            await _offline(station)
            results = {}
            for tag in ("KNOWN", "BLOCKED"):
                token = {"id_token": {"value": tag, "type": "ISO14443"}, "authorization_type": "RFID"}
                results[tag] = (await system.call("ocpp", "auth_validator", "validate_token",
                                                  provided_token=token))["authorization_status"]
            assert results == {"KNOWN": "Accepted", "BLOCKED": "Blocked"}
            assert await system.call("ocpp", "main", "change_configuration", key="LocalAuthorizeOffline",
                                     value="false") == "Accepted"
            token = {"id_token": {"value": "KNOWN", "type": "ISO14443"}, "authorization_type": "RFID"}
            result = await system.call("ocpp", "auth_validator", "validate_token", provided_token=token)
            assert result["authorization_status"] == "Invalid"
