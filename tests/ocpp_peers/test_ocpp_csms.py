"""The SIL charger against an independent CSMS: the PyPI package `ocpp-csms` (AGPL-3.0, installed into
its own venv under .cache/, run as its own process, never imported into the test's interpreter).

Its command line prints events; for remote operations the tests run its `CentralSystem` through
ocpp_csms_driver.py (in the same venv)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..ocpp.station import wait_file
from .conftest import FileServer, peer_station
from .peers import WAIT_S, OcppCsmsCli, OcppCsmsDriver, PeerCallError

CP1 = "(charge_point_id='CP1'"


async def test_cli_prints_boot_status_and_a_whole_transaction(tmp_path: Path, ocpp_csms_executable: Path):
    async with OcppCsmsCli(ocpp_csms_executable, tmp_path / "ocpp-csms.log") as csms:
        async with peer_station(tmp_path, csms.url, keys={"MeterValueSampleInterval": "1"}) as station:
            await csms.wait_printed(f"ConnectedEvent{CP1})")
            _, boot = await csms.wait_printed(f"BootEvent{CP1}")
            assert "vendor='everpy'" in boot and "serial_number='SIL-0001'" in boot
            assert "firmware_version='everpy-0.1.0'" in boot
            await csms.wait_printed(f"StatusEvent{CP1}", "connector_id=0, status=<ConnectorStatus.AVAILABLE")
            await csms.wait_printed(f"StatusEvent{CP1}", "connector_id=1, status=<ConnectorStatus.AVAILABLE")
            await station.plug_in()
            await station.swipe("TAG1")
            at, started = await csms.wait_printed(f"TransactionStartedEvent{CP1}")
            assert "connector_id=1, id_tag='TAG1'" in started
            assert "id_tag_status=<AuthorizationStatus.ACCEPTED" in started
            match = re.search(r"transaction_id=(\d+)", started)
            assert match is not None
            transaction_id = match.group(1)
            await csms.wait_printed(f"StatusEvent{CP1}", "status=<ConnectorStatus.CHARGING", after=at)
            _, meter = await csms.wait_printed(f"MeterValuesEvent{CP1}", f"transaction_id={transaction_id}")
            assert "measurand='Power.Active.Import'" in meter
            await station.unplug()
            _, stopped = await csms.wait_printed(f"TransactionStoppedEvent{CP1}")
            assert f"transaction_id={transaction_id}" in stopped and "stop_reason='EVDisconnected'" in stopped
            assert "meter_stop=" in stopped and "meter_stop=None" not in stopped
        await csms.wait_printed(f"DisconnectedEvent{CP1})")
        assert "Traceback" not in csms.process.stderr()


async def test_authorize_decides_and_a_rejected_id_tag_starts_nothing(tmp_path: Path, ocpp_csms_executable: Path):
    settings = {"idTags": {"BAD": "Invalid"}}
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log", settings) as csms:
        async with peer_station(tmp_path, csms.url) as station:
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            await station.plug_in()
            await station.swipe("BAD")
            assert (await csms.wait_for("Authorize"))["id_tag"] == "BAD"
            mark = csms.mark()
            await station.swipe("GOOD")
            assert (await csms.wait_for("Authorize", after=mark))["id_tag"] == "GOOD"
            started = (await csms.wait_for("TransactionStartedEvent"))["transaction"]
            assert started["id_tag"] == "GOOD" and started["connector_id"] == 1
            assert [e["transaction"]["id_tag"] for e in csms.events if e["event"] == "TransactionStartedEvent"] \
                == ["GOOD"]


async def test_boot_pending_configured_then_accepted_by_a_triggered_boot(tmp_path: Path, ocpp_csms_executable: Path):
    settings = {"registration": ["Pending"]}
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log", settings) as csms:
        async with peer_station(tmp_path, csms.url):
            await csms.wait_for("BootEvent")
            configuration = await csms.method("async_get_configuration", keys=["HeartbeatInterval"])
            assert list(configuration["values"]) == ["HeartbeatInterval"]
            assert await csms.method("async_change_configuration", key="MeterValueSampleInterval", value="30") \
                == "Accepted"
            assert not [e for e in csms.events if e["event"] == "StatusEvent"]  # nothing sent while Pending
            assert await csms.method("async_trigger_message", message="BootNotification") == "Accepted"
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            assert [e["event"] for e in csms.events].count("BootEvent") == 2


async def test_remote_start_stop_with_the_csms_s_large_transaction_ids(tmp_path: Path, ocpp_csms_executable: Path):
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log") as csms:
        async with peer_station(tmp_path, csms.url) as station:
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            await station.plug_in()
            assert await csms.method("async_remote_start_transaction", id_tag="REMOTE1", connector_id=1) == "Accepted"
            started = (await csms.wait_for("TransactionStartedEvent"))["transaction"]
            transaction_id = started["transaction_id"]
            assert started["id_tag"] == "REMOTE1" and transaction_id > 1_000_000_000  # ids count from Unix time
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["status"] == "Charging")
            assert await csms.method("async_remote_stop_transaction", transaction_id=transaction_id) == "Accepted"
            stopped = (await csms.wait_for("TransactionStoppedEvent"))["transaction"]
            assert stopped["transaction_id"] == transaction_id and stopped["stop_reason"] == "Remote"


async def test_configuration_trigger_availability_unlock_data_transfer_reset(tmp_path: Path,
                                                                             ocpp_csms_executable: Path):
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log") as csms:
        async with peer_station(tmp_path, csms.url) as station:
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            everything = await csms.method("async_get_configuration")
            assert everything["values"]["NumberOfConnectors"] == {"key": "NumberOfConnectors", "value": "1",
                                                                  "readonly": True}
            assert await csms.method("async_change_configuration", key="HeartbeatInterval", value="90") == "Accepted"
            assert await csms.method("async_change_configuration", key="NoSuchKey", value="1") == "NotSupported"
            mark = csms.mark()
            assert await csms.method("async_trigger_message", message="MeterValues", connector_id=1) == "Accepted"
            await csms.wait_for("MeterValuesEvent", lambda e: e["connector_id"] == 1, after=mark)
            assert await csms.method("async_change_availability", connector_id=1, availability="Inoperative") \
                == "Accepted"
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["status"] == "Unavailable", after=mark)
            assert await csms.method("async_change_availability", connector_id=0, availability="Operative") \
                == "Accepted"
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["status"] == "Available", after=mark)
            assert await csms.method("async_unlock_connector", connector_id=1) == "Unlocked"
            assert await csms.method("async_data_transfer", vendor_id="com.example", data="x") \
                == {"status": "UnknownVendorId", "data": None}
            answer = await station.system.call("ocpp", "data_transfer", "data_transfer",
                                               request={"vendor_id": "everpy.test", "data": "42"})
            assert answer == {"status": "Accepted", "data": "echo:42"}
            with pytest.raises(PeerCallError):  # 1.6 has no ChangeAvailability type "Broken": the package refuses
                await csms.request("ChangeAvailability", connector_id=1, type="Broken")
            assert await csms.method("async_unlock_connector", connector_id=4) == "NotSupported"
            assert await csms.method("async_reset", reset_type="Soft") == "Accepted"
            await wait_file(tmp_path / "soft-reset")


async def test_smart_charging_through_async_call(tmp_path: Path, ocpp_csms_executable: Path):
    profile = {"charging_profile_id": 5, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
               "charging_profile_kind": "Absolute",
               "charging_schedule": {"charging_rate_unit": "A", "start_schedule": "2020-01-01T00:00:00Z",
                                     "charging_schedule_period": [{"start_period": 0, "limit": 12.5}]}}
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log") as csms:
        async with peer_station(tmp_path, csms.url):
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            assert await csms.request("SetChargingProfile", connector_id=1, cs_charging_profiles=profile) \
                == {"status": "Accepted"}
            schedule = await csms.request("GetCompositeSchedule", connector_id=1, duration=600)
            assert schedule["status"] == "Accepted"
            periods = schedule["charging_schedule"]["charging_schedule_period"]
            assert float(periods[0]["limit"]) == 12.5
            assert await csms.request("ClearChargingProfile", id=5) == {"status": "Accepted"}


async def test_basic_auth_through_the_authenticate_hook(tmp_path: Path, ocpp_csms_executable: Path):
    key = "0123456789abcdef0123456789abcdef"
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log", {"password": key}) as csms:
        async with peer_station(tmp_path, csms.url, keys={"SecurityProfile": "1", "AuthorizationKey": key}):
            await csms.wait_for("BootEvent")
            authenticated = await csms.wait_for("Authenticate")
            assert authenticated == {"event": "Authenticate", "charge_point_id": "CP1", "accepted": True,
                                     "had_password": True}


async def test_offline_transaction_reaches_ocpp_csms_whole_after_reconnect(tmp_path: Path,
                                                                          ocpp_csms_executable: Path):
    keys = {"LocalAuthorizeOffline": "true", "AllowOfflineTxForUnknownId": "true"}
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log") as csms:
        async with peer_station(tmp_path, csms.url, keys=keys) as station:
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            mark = csms.mark()
            await csms.refuse_connections()
            await csms.wait_for("Authenticate", lambda e: not e["accepted"], after=mark)  # the station retries
            await station.plug_in()
            await station.swipe("OFFLINE1")
            transactions = station.system.watch("ocpp", "main", "ocpp_transaction_event")
            await transactions.wait_for(lambda e: e["transaction_event"] == "Started", WAIT_S)
            await station.unplug()
            await transactions.wait_for(lambda e: e["transaction_event"] == "Ended", WAIT_S)
            assert not [e for e in csms.events if e["event"] == "TransactionStartedEvent"]
            await csms.accept_connections()
            stopped = (await csms.wait_for("TransactionStoppedEvent"))["transaction"]
            started = (await csms.wait_for("TransactionStartedEvent"))["transaction"]
            # ocpp-csms matched the Stop to the Start it saw first: same id, same tag, a consistent meter
            assert stopped["transaction_id"] == started["transaction_id"] and stopped["id_tag"] == "OFFLINE1"
            assert stopped["stop_reason"] == "EVDisconnected" and stopped["meter_stop"] >= started["meter_start"]
            assert [e["event"] for e in csms.events].count("BootEvent") == 1


async def test_firmware_and_diagnostics_status_reach_ocpp_csms(tmp_path: Path, ocpp_csms_executable: Path,
                                                               file_server: FileServer):
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "ocpp.log").write_text("a log line to upload\n")
    system = {"firmware_installer_command": "{python} -m everpy_modules.System.sil_installer",
              "default_retry_interval_s": 0}
    async with OcppCsmsDriver(ocpp_csms_executable, tmp_path / "driver.log") as csms:
        async with peer_station(tmp_path, csms.url, system=system):
            await csms.wait_for("StatusEvent", lambda e: e["connector"]["connector_id"] == 1)
            await csms.request("UpdateFirmware", location=f"{file_server.url}/firmware/image.bin",
                               retrieve_date="2020-01-01T00:00:00Z", retries=1)
            await csms.wait_for("FirmwareStatusEvent", lambda e: e["status"] == "Installed")
            assert [e["status"] for e in csms.events if e["event"] == "FirmwareStatusEvent"] == [
                "Downloading", "Downloaded", "Installing", "Installed"]
            answer = await csms.request("GetDiagnostics", location=f"{file_server.url}/uploads", retries=1)
            await csms.wait_for("DiagnosticsStatusEvent", lambda e: e["status"] == "Uploaded")
            assert list(file_server.uploads) == [answer["file_name"]]
