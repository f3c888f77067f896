"""Firmware management (L) end to end: the SIL charger of config/sil-ocpp201.yaml as its own process (its
System module downloads over real HTTP, checks a real ECDSA signature against the firmware CA and runs the
SIL installer) and the development CSMS (everpy/csms/v201.py) over a real websocket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from everpy.csms import v201
from tests.ocpp.certs import make_firmware_signer
from tests.ocpp.sil import CHARGE_FOREVER, SIL_OCPP201, StationProcess, sil_ocpp_config
from tests.system.servers import HttpServer

pytestmark = pytest.mark.slow

STATION = "CP1"
WAIT_S = 20.0
VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
IMAGE = b"signed everpy firmware 4.0\n" * 200


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def firmware(location: str, certificate: str | None, signature: str | None, **more: Any) -> dict[str, Any]:
    found = {"location": location, "retrieveDateTime": at(-7200), "signingCertificate": certificate,
             "signature": signature, **more}
    return {k: v for k, v in found.items() if v is not None}


def statuses(csms: v201.Csms, request_id: int) -> list[str]:
    return [r.payload["status"] for r in csms.distinct("FirmwareStatusNotification")
            if r.payload.get("requestId") == request_id]


def connector_statuses(csms: v201.Csms, after: int = 0) -> list[str]:
    return [r.payload["connectorStatus"] for r in csms.received[after:] if r.action == "StatusNotification"]


def index_of(csms: v201.Csms, action: str, status: str, request_id: int | None = None) -> int:
    return next(i for i, r in enumerate(csms.received) if r.action == action
                and status in (r.payload.get("status"), r.payload.get("connectorStatus"))
                and request_id in (None, r.payload.get("requestId")))


def station_config(tmp_path: Path, csms: v201.Csms, ca: Path, **more: Any) -> dict[str, Any]:
    return sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, keys=VARIABLES, test_keys={},
                           system={"firmware_signing_ca_file": str(ca), "default_retry_interval_s": 0}, **more)


async def test_signed_updates_installed_refused_and_failed(tmp_path: Path):
    """TC_L_01_CS TC_L_05_CS TC_L_06_CS TC_L_07_CS TC_L_18_CS: a signed image: Accepted, Downloading,
    Downloaded, SignatureVerified, Installing, Installed (the EVSE Unavailable meanwhile, Available after);
    TriggerMessage FirmwareStatusNotification then Idle. A certificate the firmware CA did not issue:
    InvalidCertificate and the security event InvalidFirmwareSigningCertificate; an image that does not match
    its signature: InvalidSignature and InvalidFirmwareSignature; no certificate and signature: Rejected; a
    location that does not exist: DownloadFailed."""
    ca, certificate, signature = make_firmware_signer(tmp_path / "fw", IMAGE)
    _, foreign_certificate, _ = make_firmware_signer(tmp_path / "foreign", IMAGE, ca_name="someone else")
    async with HttpServer(tmp_path / "http") as http, v201.Csms() as csms:
        (http.root / "fw.bin").write_bytes(IMAGE)
        (http.root / "tampered.bin").write_bytes(IMAGE + b"evil")
        station = StationProcess(station_config(tmp_path, csms, ca), tmp_path)
        station.start()
        try:
            await csms.wait_for("StatusNotification", timeout=WAIT_S)
            update = await csms.call(STATION, "UpdateFirmware", {"requestId": 1, "retries": 0, "firmware": firmware(
                http.url("/files/fw.bin"), certificate, signature)})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "Installed", WAIT_S)
            await csms.wait_until(lambda: connector_statuses(csms, index_of(
                csms, "FirmwareStatusNotification", "Installed", 1)), WAIT_S)
            mark = len(csms.received)
            trigger = await csms.call(STATION, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
            idle = await csms.wait_for("FirmwareStatusNotification", timeout=WAIT_S, after=mark)
            untrusted = await csms.call(STATION, "UpdateFirmware", {"requestId": 2, "firmware": firmware(
                http.url("/files/fw.bin"), foreign_certificate, signature)})
            await csms.wait_for("SecurityEventNotification",
                                lambda p: p["type"] == "InvalidFirmwareSigningCertificate", WAIT_S)
            tampered = await csms.call(STATION, "UpdateFirmware", {"requestId": 3, "firmware": firmware(
                http.url("/files/tampered.bin"), certificate, signature)})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "InvalidSignature", WAIT_S)
            await csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature",
                                WAIT_S)
            unsigned = await csms.call(STATION, "UpdateFirmware", {"requestId": 4, "firmware": firmware(
                http.url("/files/fw.bin"), None, None)})
            missing = await csms.call(STATION, "UpdateFirmware", {"requestId": 5, "retries": 0, "firmware": firmware(
                http.url("/files/fw.bin_does_not_exist"), certificate, signature)})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "DownloadFailed", WAIT_S)
        finally:
            station.stop()
    assert update == {"status": "Accepted"}, station.log()
    assert statuses(csms, 1) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
    unavailable = index_of(csms, "StatusNotification", "Unavailable")
    assert index_of(csms, "FirmwareStatusNotification", "Downloaded", 1) < unavailable < index_of(
        csms, "FirmwareStatusNotification", "Installing", 1)
    assert connector_statuses(csms, index_of(csms, "FirmwareStatusNotification", "Installed", 1))[0] == "Available"
    assert trigger == {"status": "Accepted"} and idle.payload == {"status": "Idle"}
    assert untrusted == {"status": "InvalidCertificate"}
    assert tampered == {"status": "Accepted"} and statuses(csms, 3)[-1] == "InvalidSignature"
    assert "Installing" not in statuses(csms, 3)
    assert unsigned["status"] == "Rejected" and statuses(csms, 4) == []
    assert missing == {"status": "Accepted"} and statuses(csms, 5)[-1] == "DownloadFailed"


async def test_a_scheduled_update_waits_for_the_transaction_to_end(tmp_path: Path):
    """TC_L_02_CS TC_L_03_CS TC_L_15_CS: the car charges; an update to be downloaded in 2 s and installed in
    4 s: Accepted, DownloadScheduled, Downloading, Downloaded, SignatureVerified, InstallScheduled; nothing is
    installed while the transaction runs; it is stopped, the EVSE becomes Unavailable and the firmware is
    installed (Installing, Installed), then the EVSE is no longer held (Occupied: the car is still there)."""
    ca, certificate, signature = make_firmware_signer(tmp_path / "fw", IMAGE)
    async with HttpServer(tmp_path / "http") as http, v201.Csms() as csms:
        (http.root / "fw.bin").write_bytes(IMAGE)
        station = StationProcess(station_config(tmp_path, csms, ca, car_script=CHARGE_FOREVER), tmp_path)
        station.start()
        try:
            transaction = await csms.wait_transaction(timeout=WAIT_S)
            install_at = datetime.now(UTC) + timedelta(seconds=4)
            update = await csms.call(STATION, "UpdateFirmware", {"requestId": 11, "firmware": firmware(
                http.url("/files/fw.bin"), certificate, signature, retrieveDateTime=at(2),
                installDateTime=install_at.isoformat())})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "InstallScheduled", WAIT_S)
            # a negative to show: past the install time (and a second more) nothing is installed
            await csms.wait_until(lambda: datetime.now(UTC) > install_at + timedelta(seconds=1), WAIT_S)
            waited = statuses(csms, 11)
            stop = await csms.call(STATION, "RequestStopTransaction", {"transactionId": transaction.transaction_id})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "Installed", WAIT_S)
            await csms.wait_until(lambda: connector_statuses(csms, index_of(
                csms, "FirmwareStatusNotification", "Installed", 11)), WAIT_S)
        finally:
            station.stop()
    assert update == {"status": "Accepted"}, station.log()
    assert waited[:5] == ["DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled"]
    assert stop["status"] == "Accepted"
    assert statuses(csms, 11)[5:] == ["Installing", "Installed"]
    ended = next(i for i, r in enumerate(csms.received) if r.action == "TransactionEvent"
                 and r.payload["eventType"] == "Ended")
    assert ended < index_of(csms, "FirmwareStatusNotification", "Installing", 11)
    assert "Unavailable" in connector_statuses(csms, ended)
    assert connector_statuses(csms, index_of(csms, "FirmwareStatusNotification", "Installed", 11)) == ["Occupied"]
