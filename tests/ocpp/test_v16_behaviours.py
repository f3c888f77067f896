"""OCPP 1.6 behaviours of status, availability, reservation, configuration, local list, trigger and
security on the SIL charger (EvseManager, board, car, RFID reader, Auth, System) against the in-repo CSMS
over a real websocket. The rules behind them are unit-tested in tests/ocpp/blocks/test_v16_blocks.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from everpy.core.clock import FakeClock
from everpy.csms import Behaviour, Csms
from everpy.testing import run_system

from .sil import CHARGE_FOREVER
from .station import WAIT_S, Station, advance, sil_station, wait_file
from .test_two_evses import two_evse_config

KEY = "0123456789abcdef0123"  # AuthorizationKey: 16-40 characters


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _token(tag: str) -> dict:
    return {"id_token": {"value": tag, "type": "ISO14443"}, "authorization_type": "RFID"}


def statuses(csms: Csms, after: int = 0, connector: int = 1) -> list[str]:
    return [r.payload["status"] for r in csms.received[after:]
            if r.action == "StatusNotification" and r.payload["connectorId"] == connector]


def index_of(csms: Csms, action: str, after: int = 0, **fields: object) -> int:
    return next(i for i, r in enumerate(csms.received) if i >= after and r.action == action
                and all(r.payload.get(k) == v for k, v in fields.items()))


def station_frames(csms: Csms, after: int) -> list[list]:
    """What the station sent from frame `after` on: [2, id, action, payload] or [3, id, payload]."""
    return [json.loads(raw) for _, raw in csms.frames[after:]]




# -- 1. every session event has its status: a car charging again is Charging at the CSMS ----------------
async def test_charging_resumed_after_an_evse_pause_is_charging_at_the_csms(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        await station.charging()
        mark = len(csms.received)
        assert await station.system.call("evse", "evse", "pause_charging") is True
        await station.wait_event("ChargingPausedEVSE")
        await station.status("SuspendedEVSE", after=mark)
        resumed = len(csms.received)
        assert await station.system.call("evse", "evse", "resume_charging") is True
        await station.wait_event("ChargingResumed")
        await station.status("Charging", after=resumed)
        assert statuses(csms, resumed)[-1] == "Charging"
        assert not csms.messages("StopTransaction")


# -- 2. one StatusNotification per change ------------------------------------------------------------------
async def test_accepted_change_availability_sends_each_status_once(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        mark = len(csms.received)
        assert (await station.call("ChangeAvailability", connectorId=1, type="Inoperative"))["status"] == "Accepted"
        await station.wait_event("Disabled")  # the charger's own event says the same: it must not repeat it
        await station.status("Unavailable", after=mark)
        assert (await station.call("ChangeAvailability", connectorId=1, type="Operative"))["status"] == "Accepted"
        await station.wait_event("Enabled")
        await station.status("Available", after=mark)
        # the charger's events are handled in order: once Preparing is in, Disabled and Enabled were handled
        await station.plug_in()
        await station.status("Preparing", after=mark)
        assert statuses(csms, mark) == ["Unavailable", "Available", "Preparing"]


async def test_cancel_reservation_sends_available_once_and_after_its_answer(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        mark = len(csms.received)
        for reservation_id in (1, 2, 3):  # a race would not always show in one round
            reserving = len(csms.received)
            answer = await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="A",
                                        reservationId=reservation_id)
            assert answer["status"] == "Accepted"
            await station.status("Reserved", after=reserving)
            await station.wait_event("ReservationStart")
            frames = len(csms.frames)
            assert (await station.call("CancelReservation", reservationId=reservation_id))["status"] == "Accepted"
            await station.wait_event("ReservationEnd")
            await csms.wait_until(lambda: statuses(csms, mark)[-1:] == ["Available"], WAIT_S)
            # 3. the answer is on the wire before the StatusNotification it causes
            sent = station_frames(csms, frames)
            answered = next(i for i, f in enumerate(sent) if f[0] == 3)
            reported = next(i for i, f in enumerate(sent) if f[0] == 2 and f[2] == "StatusNotification")
            assert sent[answered][2] == {"status": "Accepted"} and answered < reported, sent
        await station.plug_in()  # handled after every ReservationEnd of the charger
        await station.status("Preparing", after=mark)
        assert statuses(csms, mark) == ["Reserved", "Available"] * 3 + ["Preparing"]


# -- 4. a Scheduled Inoperative takes effect with the transaction's end --------------------------------------
async def test_scheduled_inoperative_takes_effect_at_stop_transaction_not_at_unplug(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        transaction_id = await station.charging()
        assert (await station.call("ChangeAvailability", connectorId=1, type="Inoperative"))["status"] == "Scheduled"
        mark = len(csms.received)
        station.evse_events.drain()
        assert (await station.call("RemoteStopTransaction", transactionId=transaction_id))["status"] == "Accepted"
        await csms.wait_for("StopTransaction", after=mark)
        await station.status("Unavailable", after=mark)
        stopped = index_of(csms, "StopTransaction", mark)
        assert index_of(csms, "StatusNotification", mark, status="Unavailable") > stopped
        assert statuses(csms, stopped) == ["Unavailable"]
        assert "SessionFinished" not in [e["event"] for e in station.evse_events.drain()]  # the car is still in
        assert (await station.call("RemoteStartTransaction", idTag="X", connectorId=1))["status"] == "Rejected"
        unplugged = len(csms.received)
        await station.unplug()
        await station.wait_event("SessionFinished")
        assert (await station.call("ChangeAvailability", connectorId=1, type="Operative"))["status"] == "Accepted"
        await station.status("Available", after=unplugged)
        assert statuses(csms, unplugged) == ["Available"]  # nothing happened at the unplug


# -- 5. someone else's car at a reserved connector ---------------------------------------------------------
async def test_a_strangers_car_leaves_the_connector_reserved_until_the_holder_comes(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("ReserveNow", connectorId=1, expiryDate=_in(600), idTag="HOLDER",
                                    reservationId=7)
        assert answer["status"] == "Accepted"
        await station.status("Reserved")
        mark = len(csms.received)
        validations = station.system.watch("auth", "main", "token_validation_status")
        await station.plug_in()
        await station.swipe("STRANGER")
        refused = await validations.wait_for(lambda s: s["token"]["id_token"]["value"] == "STRANGER"
                                             and s["status"] != "Processing", WAIT_S)
        assert refused["status"] == "Rejected"
        await station.swipe("HOLDER")
        start = await csms.wait_for("StartTransaction", after=mark, timeout=WAIT_S)
        assert start.payload["idTag"] == "HOLDER" and start.payload["reservationId"] == 7
        await station.status("Charging", after=mark)
        # Reserved all along until then: no status of connector 1 between the plug-in and the start
        assert index_of(csms, "StatusNotification", mark, connectorId=1) > csms.received.index(start)


async def test_a_car_at_a_reserved_connector_is_preparing_once_the_reservation_expires(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("ReserveNow", connectorId=1, expiryDate=_in(4), idTag="HOLDER",
                                    reservationId=8)
        assert answer["status"] == "Accepted"
        await station.status("Reserved")
        mark = len(csms.received)
        await station.plug_in()
        await station.wait_event("ReservationEnd")
        await station.status("Preparing", after=mark)
        assert statuses(csms, mark) == ["Preparing"]
        assert not station.ocpp.store.records("reservation")


# -- 6. a plug-in timeout never passes through Finishing ---------------------------------------------------
async def test_plug_in_timeout_goes_from_preparing_straight_to_available(tmp_path):
    clock = FakeClock()
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys={"ConnectionTimeOut": "15"}, clock=clock) as station:
            mark = len(csms.received)
            await station.swipe("NOCAR")
            await station.status("Preparing", after=mark)
            await advance(station, clock, 17)
            await station.wait_event("PluginTimeout")
            await station.wait_event("SessionFinished")
            await station.status("Available", after=mark)
            assert statuses(csms, mark) == ["Preparing", "Available"]
            assert not csms.messages("StartTransaction")


# -- 7. configuration keys are CiString ----------------------------------------------------------------------
async def test_configuration_keys_match_in_any_case_and_answer_in_the_tables_spelling(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        for spelling, value in (("connectiontimeout", "30"), ("ConnectionTimeout", "45"), ("CONNECTIONTIMEOUT", "50")):
            assert (await station.call("ChangeConfiguration", key=spelling, value=value))["status"] == "Accepted"
            answer = await station.call("GetConfiguration", key=[spelling])
            assert answer == {"configurationKey": [{"key": "ConnectionTimeOut", "readonly": False, "value": value}]}
        assert await station.config_key("ConnectionTimeOut") == "50"


# -- 8. an empty full local list ------------------------------------------------------------------------------
async def test_full_send_local_list_with_an_empty_list_reports_version_zero(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        listed = [{"idTag": "LISTED", "idTagInfo": {"status": "Accepted"}}]
        assert (await station.call("SendLocalList", listVersion=4, updateType="Full",
                                   localAuthorizationList=listed))["status"] == "Accepted"
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 4
        assert (await station.call("SendLocalList", listVersion=1, updateType="Full",
                                   localAuthorizationList=[]))["status"] == "Accepted"
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 0
        assert station.ocpp.cp.local_auth.info("LISTED") is None


# -- 9. a new AuthorizationKey under security profile 1 ----------------------------------------------------------
async def test_new_authorization_key_while_pending_is_used_by_the_next_connection(tmp_path):
    new_key = "fedcba9876543210-NEW-KEY"
    behaviour = Behaviour(boot_statuses=["Pending"], boot_interval=300)  # every connection's boot is Pending
    async with Csms(passwords={"CP1": KEY}, behaviour=behaviour) as csms:
        keys = {"SecurityProfile": "1", "AuthorizationKey": KEY}
        async with sil_station(tmp_path, csms, keys=keys, wait_boot=False) as station:
            await csms.wait_for("BootNotification", timeout=WAIT_S)
            csms.passwords = {"CP1": new_key}  # from now on only the new key opens a connection
            answer = await station.call("ChangeConfiguration", key="AuthorizationKey", value=new_key)
            assert answer["status"] == "Accepted"
            await csms.wait_until(lambda: csms.connections == 2, WAIT_S)
            assert not csms.refused  # the next connection's Basic auth header had the new key
            first = csms.received.index(csms.messages("BootNotification")[0])
            await csms.wait_for("BootNotification", after=first + 1, timeout=WAIT_S)  # on the new connection
            assert csms.connections == 2 and not csms.refused


# -- 10. reservations of connector 0 -----------------------------------------------------------------------------
async def test_connector_zero_reservation_keeps_a_connector_for_its_holder(tmp_path, csms: Csms):
    async with run_system(two_evse_config(tmp_path, csms.url)) as system:
        station = Station(system, csms)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 2, WAIT_S)
        assert await station.config_key("ReserveConnectorZeroSupported") == "true"
        answer = await station.call("ReserveNow", connectorId=0, expiryDate=_in(600), idTag="HOLDER",
                                    reservationId=11)
        assert answer["status"] == "Accepted"  # two connectors free
        validate = "auth_validator", "validate_token"
        other = await system.call("ocpp", *validate, provided_token=_token("OTHER"))
        assert other["authorization_status"] == "Accepted"  # one free connector is left for HOLDER
        await station.charging("OTHER")  # on connector 1
        refused = await system.call("ocpp", *validate, provided_token=_token("THIRD"))
        assert refused["authorization_status"] == "NotAtThisTime"  # the last free connector is HOLDER's
        mark = len(csms.received)
        assert await system.call("car2", "main", "execute_charging_session", value=CHARGE_FOREVER) is True
        await station.swipe("HOLDER")
        start = await csms.wait_for("StartTransaction", after=mark, timeout=WAIT_S)
        assert start.payload["connectorId"] == 2 and start.payload["idTag"] == "HOLDER"
        assert start.payload["reservationId"] == 11
        await station.status("Charging", after=mark, connector=2)
        assert not station.ocpp.store.records("reservation")
        assert "Reserved" not in statuses(csms, 0, 1) + statuses(csms, 0, 2)  # no connector was reserved


# -- 11. a SignCertificate triggered while Pending --------------------------------------------------------------
async def test_sign_certificate_triggered_while_pending_is_accepted_and_sent(tmp_path):
    async with Csms(behaviour=Behaviour(boot_statuses=["Pending"], boot_interval=300)) as csms:
        async with sil_station(tmp_path, csms, wait_boot=False) as station:
            await csms.wait_for("BootNotification", timeout=WAIT_S)
            answer = await station.call("ExtendedTriggerMessage", requestedMessage="SignChargePointCertificate")
            assert answer == {"status": "Accepted"}
            sign = await csms.wait_for("SignCertificate", timeout=WAIT_S)
            assert "CERTIFICATE REQUEST" in sign.payload["csr"]
            assert [r.action for r in csms.received] == ["BootNotification", "SignCertificate"]


# -- 12. security events of the station's life ------------------------------------------------------------------
async def test_startup_and_reset_security_events_reach_the_csms(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        startup = await csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice",
                                      WAIT_S)
        assert startup.payload["timestamp"]
        assert (await station.call("Reset", type="Soft"))["status"] == "Accepted"
        await wait_file(tmp_path / "soft-reset")
        # the event was delivered before the System module was asked to reset
        events = [r.payload["type"] for r in csms.messages("SecurityEventNotification")]
        assert events.count("StartupOfTheDevice") == 1 and events[-1] == "ResetOrReboot"


# -- 13. SupportedFileTransferProtocols -------------------------------------------------------------------------
async def test_supported_file_transfer_protocols_are_readable(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        answer = await station.call("GetConfiguration", key=["SupportedFileTransferProtocols"])
        assert answer == {"configurationKey": [{"key": "SupportedFileTransferProtocols", "readonly": True,
                                                "value": "FTP,FTPS,HTTP,HTTPS"}]}
        answer = await station.call("ChangeConfiguration", key="SupportedFileTransferProtocols", value="SFTP")
        assert answer["status"] == "Rejected"


# -- 14. bounds of the integer keys ---------------------------------------------------------------------------
async def test_change_configuration_beyond_a_keys_bounds_is_rejected(tmp_path, csms: Csms):
    bounds = {"HeartbeatInterval": (1, 86400), "MeterValueSampleInterval": (0, 86400),
              "ClockAlignedDataInterval": (0, 86400), "MinimumStatusDuration": (0, 3600),
              "TransactionMessageRetryInterval": (0, 86400), "WebSocketPingInterval": (0, 3600)}
    async with sil_station(tmp_path, csms) as station:
        for key, (low, high) in bounds.items():
            before = await station.config_key(key)
            for value in (low - 1, high + 1):
                answer = await station.call("ChangeConfiguration", key=key, value=str(value))
                assert answer["status"] == "Rejected", (key, value)
            assert await station.config_key(key) == before
        assert (await station.call("ChangeConfiguration", key="WebSocketPingInterval", value="3600"))["status"] \
            == "Accepted"
        assert (await station.call("ChangeConfiguration", key="MinimumStatusDuration", value="0"))["status"] \
            == "Accepted"
