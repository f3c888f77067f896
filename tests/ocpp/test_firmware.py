"""Firmware Management (TC_044, TC_045): UpdateFirmware over a real HTTP server and GetDiagnostics to a
real FTP server (pyftpdlib), carried out by the System module, reported with status notifications."""

from __future__ import annotations

from pathlib import Path

from everpy.csms import Csms

from ..system.servers import FtpServer, HttpServer
from .station import WAIT_S, sil_station

FIRMWARE = b"everpy firmware image 2.0\n" * 100


def _statuses(csms: Csms, action: str) -> list[str]:
    return [r.payload["status"] for r in csms.messages(action)]


async def test_tc_044_update_firmware_download_install(tmp_path: Path, csms: Csms):
    async with HttpServer(tmp_path / "http") as http:
        (http.root / "fw.bin").write_bytes(FIRMWARE)
        installer = {"firmware_installer_command": "{python} -m everpy_modules.System.sil_installer",
                     "wait_for_installation_permission": True}
        async with sil_station(tmp_path, csms, system=installer) as station:
            await station.charging()
            answer = await station.call("UpdateFirmware", location=http.url("/files/fw.bin"),
                                        retrieveDate="2020-01-01T00:00:00Z", retries=2, retryInterval=1)
            assert answer == {}
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "Downloaded", WAIT_S)
            assert "Installing" not in _statuses(csms, "FirmwareStatusNotification")  # a transaction runs
            await station.unplug()
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "Installed", WAIT_S)
            assert _statuses(csms, "FirmwareStatusNotification") == ["Downloading", "Downloaded", "Installing",
                                                                      "Installed"]
            stop = csms.messages("StopTransaction")[0]
            installing = csms.messages("FirmwareStatusNotification")[2]
            assert csms.received.index(stop) < csms.received.index(installing)


async def test_tc_045_get_diagnostics_uploads_to_ftp(tmp_path: Path, csms: Csms):
    with FtpServer(tmp_path / "ftp") as ftp:
        async with sil_station(tmp_path, csms) as station:
            (tmp_path / "logs" / "everpy.log").write_text("a log line\n")
            answer = await station.call("GetDiagnostics", location=ftp.url("/"), retries=1, retryInterval=1)
            assert answer["fileName"]
            await csms.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", WAIT_S)
            stored = await ftp.wait_for_file(answer["fileName"], WAIT_S)
            assert stored.stat().st_size > 0
            assert _statuses(csms, "DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]


async def test_tc_044_2_download_failure_and_tc_045_2_upload_failure(tmp_path: Path, csms: Csms):
    async with sil_station(tmp_path, csms, system={"default_retry_interval_s": 0}) as station:
        (tmp_path / "logs" / "everpy.log").write_text("a log line\n")
        await station.call("UpdateFirmware", location="http://127.0.0.1:9/nothing-listens-here.bin",
                           retrieveDate="2020-01-01T00:00:00Z", retries=1)
        await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "DownloadFailed", WAIT_S)
        await station.call("GetDiagnostics", location="ftp://nobody:nothing@127.0.0.1:9/", retries=0)
        await csms.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "UploadFailed", WAIT_S)


async def test_tc_044_3_installation_failure(tmp_path: Path, csms: Csms):
    async with HttpServer(tmp_path / "http") as http:
        (http.root / "fw.bin").write_bytes(FIRMWARE)
        async with sil_station(tmp_path, csms, system={"firmware_installer_command": "false"}):
            await csms.call_action("CP1", "UpdateFirmware", {"location": http.url("/files/fw.bin"),
                                                             "retrieveDate": "2020-01-01T00:00:00Z"})
            await csms.wait_for("FirmwareStatusNotification", lambda p: p["status"] == "InstallationFailed", WAIT_S)
