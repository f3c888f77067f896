"""The System module on the real bus: firmware update, log upload, reset, time and boot reason."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from everpy.core.clock import FakeClock

from .helpers import RecordingCommand, power_cycle, recorder_of, running, system_module_config
from .servers import FtpServer, HttpServer, eventually

IMAGE = b"new firmware " * 5000


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "sys": {"module": "System", "config_module": system_module_config(tmp_path / "board", **overrides)},
            "recorder": recorder_of("sys"),
        }
    }


@pytest.fixture
async def http(tmp_path: Path):
    async with HttpServer(tmp_path / "http") as server:
        (server.root / "fw.img").write_bytes(IMAGE)
        yield server


@pytest.fixture
def ftp(tmp_path: Path):
    with FtpServer(tmp_path / "ftp") as server:
        yield server


async def test_firmware_update_waits_for_permission_then_installs(tmp_path: Path, http: HttpServer):
    installer = RecordingCommand(tmp_path / "bin", "installer")
    async with running(config(tmp_path, firmware_installer_command=installer.command)) as system:
        recorder = system.instances["recorder"]
        request = {
            "request_id": 7,
            "location": http.url("/files/fw.img"),
            "checksum_sha256": hashlib.sha256(IMAGE).hexdigest(),
        }
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 2) == ["Downloading", "Downloaded"]
        assert await system.call("sys", "main", "get_boot_reason") == "PowerUp"  # a round trip later: still waiting
        assert len(recorder.firmware) == 2 and installer.calls == []

        await system.call("sys", "main", "allow_firmware_installation")
        statuses = await recorder.wait_for(recorder.firmware, 4)
    assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert {status["request_id"] for status in recorder.firmware} == {7}
    [call] = installer.calls
    assert call["request_id"] == "7" and call["content"].encode("latin-1") == IMAGE
    assert not Path(call["argv"][0]).exists(), "the image is removed after installation"


async def test_retry_after_a_dropped_connection_resumes_the_download(tmp_path: Path, http: HttpServer):
    installer = RecordingCommand(tmp_path / "bin", "installer")
    cfg = config(tmp_path, firmware_installer_command=installer.command, wait_for_installation_permission=False)
    async with running(cfg) as system:
        recorder = system.instances["recorder"]
        big = os.urandom(4 * 1024 * 1024)  # arrives in many pieces before the drop
        (http.root / "big.img").write_bytes(big)
        http.cut_next = 1
        request = {
            "request_id": 4,
            "location": http.url("/files/big.img"),
            "retries": 2,
            "retry_interval_s": 0,
            "checksum_sha256": hashlib.sha256(big).hexdigest(),
        }
        await system.call("sys", "main", "update_firmware", firmware_update_request=request)
        assert await recorder.wait_for(recorder.firmware, 4) == ["Downloading", "Downloaded", "Installing", "Installed"]
    first, second = http.ranges
    assert first is None and second is not None and second.startswith("bytes=") and second != "bytes=0-"
    assert hashlib.sha256(installer.calls[0]["content"].encode("latin-1")).hexdigest() == request["checksum_sha256"]


async def test_checksum_mismatch_is_retried_after_the_interval_then_fails(tmp_path: Path, http: HttpServer):
    clock = FakeClock()
    installer = RecordingCommand(tmp_path / "bin", "installer")
    cfg = config(tmp_path, firmware_installer_command=installer.command, wait_for_installation_permission=False)
    async with running(cfg, clock=clock) as system:
        recorder = system.instances["recorder"]
        request = {
            "request_id": 3,
            "location": http.url("/files/fw.img"),
            "retries": 2,
            "retry_interval_s": 120,
            "checksum_sha256": "0" * 64,
        }
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        await eventually(lambda: len(http.requests) == 1 and clock.pending_timers > 0, what="first attempt")
        await clock.advance(119)
        assert len(http.requests) == 1, "no second attempt before the retry interval"
        await clock.advance(1)
        statuses = await recorder.wait_for(recorder.firmware, 2)
    assert statuses == ["Downloading", "DownloadFailed"]
    assert len(http.requests) == 2 and installer.calls == []


async def test_ftp_update_with_reboot_reports_installed_after_restart(tmp_path: Path, ftp: FtpServer):
    (ftp.root / "fw.img").write_bytes(IMAGE)
    installer = RecordingCommand(tmp_path / "bin", "installer")
    reboot = RecordingCommand(tmp_path / "bin", "reboot")
    cfg = config(
        tmp_path,
        firmware_installer_command=installer.command,
        reboot_command=reboot.command,
        wait_for_installation_permission=False,
    )
    async with running(cfg) as system:
        recorder = system.instances["recorder"]
        request = {"request_id": 11, "location": ftp.url("/fw.img")}
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        statuses = await recorder.wait_for(recorder.firmware, 4)
        await eventually(lambda: len(reboot.calls) == 1, what="reboot command")
    assert statuses == ["Downloading", "Downloaded", "Installing", "InstallRebooting"]

    async with running(cfg) as system:  # the "rebooted" board
        recorder = system.instances["recorder"]
        assert await recorder.wait_for(recorder.firmware, 1) == ["Installed"]
        assert recorder.firmware[0]["request_id"] == 11
        assert await system.call("sys", "main", "get_boot_reason") == "FirmwareUpdate"
        # Reported first, forgotten after (at-least-once): wait for the forgetting, not just the report.
        pending = tmp_path / "board" / "state" / "installed_firmware_update.json"
        await eventually(lambda: not pending.exists(), what="installed update forgotten")

    async with running(cfg) as system:  # the stack restarts within the same OS boot: same reason, no repeat
        assert await system.call("sys", "main", "get_boot_reason") == "FirmwareUpdate"
        assert system.instances["recorder"].firmware == []

    power_cycle(tmp_path / "board")
    async with running(cfg) as system:  # a later power cycle: nothing left over
        assert await system.call("sys", "main", "get_boot_reason") == "PowerUp"
        assert system.instances["recorder"].firmware == []


async def test_installation_failures(tmp_path: Path, http: HttpServer):
    installer = RecordingCommand(tmp_path / "bin", "installer", exit_code=3)
    request = {"request_id": 1, "location": http.url("/files/fw.img")}
    async with running(config(tmp_path, firmware_installer_command=installer.command)) as system:
        recorder = system.instances["recorder"]
        await system.call("sys", "main", "allow_firmware_installation")
        await system.call("sys", "main", "update_firmware", firmware_update_request=request)
        await system.call("sys", "main", "allow_firmware_installation")
        assert (await recorder.wait_for(recorder.firmware, 4))[-1] == "InstallationFailed"
    assert len(installer.calls) == 1

    async with running(config(tmp_path, wait_for_installation_permission=False)) as system:  # no installer at all
        recorder = system.instances["recorder"]
        await system.call("sys", "main", "update_firmware", firmware_update_request=request)
        assert await recorder.wait_for(recorder.firmware, 4) == [
            "Downloading",
            "Downloaded",
            "Installing",
            "InstallationFailed",
        ]


async def test_new_update_cancels_a_scheduled_one_and_bad_requests_are_rejected(tmp_path: Path, http: HttpServer):
    installer = RecordingCommand(tmp_path / "bin", "installer")
    cfg = config(tmp_path, firmware_installer_command=installer.command, wait_for_installation_permission=False)
    async with running(cfg) as system:
        recorder = system.instances["recorder"]
        later = {"request_id": 1, "location": http.url("/files/fw.img"), "retrieve_timestamp": "2999-01-01T00:00:00Z"}
        now = {"request_id": 2, "location": http.url("/files/fw.img")}
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=later) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 1) == ["DownloadScheduled"]
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=now) == "AcceptedCanceled"
        await recorder.wait_for(recorder.firmware, 5)
        bad_time = {"request_id": 4, "location": http.url("/x"), "install_timestamp": "tomorrow"}
        signed = {"request_id": 5, "location": http.url("/x"), "signature": "c2ln", "signing_certificate": "PEM"}
        for bad in (bad_time, signed):
            assert await system.call("sys", "main", "update_firmware", firmware_update_request=bad) == "Rejected"
    assert [(s["request_id"], s["firmware_update_status"]) for s in recorder.firmware] == [
        (1, "DownloadScheduled"),
        (2, "Downloading"),
        (2, "Downloaded"),
        (2, "Installing"),
        (2, "Installed"),
    ]
    assert len(installer.calls) == 1


async def test_log_upload_to_ftp_packs_the_configured_logs(tmp_path: Path, ftp: FtpServer):
    cfg = config(tmp_path, log_file_name_prefix="CP1-")
    (tmp_path / "board" / "logs" / "everpy.log").write_text("charging started\n")
    async with running(cfg) as system:
        recorder = system.instances["recorder"]
        request = {"location": ftp.url("/"), "request_id": 9, "type": "DiagnosticsLog"}
        answer = await system.call("sys", "main", "upload_logs", upload_logs_request=request)
        assert answer["upload_logs_status"] == "Accepted"
        assert answer["file_name"].startswith("CP1-DiagnosticsLog-") and answer["file_name"].endswith(".tar.gz")
        assert await recorder.wait_for(recorder.logs, 2) == ["Uploading", "Uploaded"]
    stored = await ftp.wait_for_file(answer["file_name"])
    with tarfile.open(stored) as tar:
        assert tar.extractfile("logs/everpy.log").read() == b"charging started\n"  # type: ignore[union-attr]
    assert not list((tmp_path / "board" / "work" / "logs").iterdir()), "the archive is removed after upload"


async def test_log_upload_over_http_post_retries_and_failures(tmp_path: Path, http: HttpServer, ftp: FtpServer):
    async with running(config(tmp_path, http_upload_method="POST")) as system:
        recorder = system.instances["recorder"]
        http.fail_next = 1
        request = {"location": http.url("/upload/"), "retries": 2}
        answer = await system.call("sys", "main", "upload_logs", upload_logs_request=request)
        assert await recorder.wait_for(recorder.logs, 2) == ["Uploading", "Uploaded"]
        assert recorder.logs[-1]["request_id"] == -1  # OCPP 1.6: no request id
        assert answer["file_name"] in http.uploads and len(http.requests) == 2

        denied = {"location": ftp.url("/", password="wrong"), "retries": 3, "request_id": 2}
        assert (await system.call("sys", "main", "upload_logs", upload_logs_request=denied))[
            "upload_logs_status"
        ] == "Accepted"
        assert (await recorder.wait_for(recorder.logs, 4))[2:] == ["Uploading", "PermissionDenied"]

        for location in ("sftp://host/logs/", "http:///nohost"):
            answer = await system.call("sys", "main", "upload_logs", upload_logs_request={"location": location})
            assert answer == {"upload_logs_status": "Rejected"}


async def test_reset_runs_the_configured_command_and_sets_the_boot_reason(tmp_path: Path):
    hard_reset = RecordingCommand(tmp_path / "bin", "hard_reset")
    cfg = config(tmp_path, hard_reset_command=hard_reset.command)
    async with running(cfg) as system:
        assert await system.call("sys", "main", "is_reset_allowed", type="Soft") is True  # restarts the stack
        assert await system.call("sys", "main", "is_reset_allowed", type="Hard") is True
        assert await system.call("sys", "main", "reset", type="Hard", scheduled=True) is None
        await eventually(lambda: len(hard_reset.calls) == 1, what="reset command")
    async with running(cfg) as system:
        assert await system.call("sys", "main", "get_boot_reason") == "ScheduledReset"

    hard_reset.exit_code = 1  # a reset that did not happen must not be claimed at the next start
    async with running(cfg) as system:
        # Started again within the same OS boot without a new cause: still that boot's reason.
        assert await system.call("sys", "main", "get_boot_reason") == "ScheduledReset"
        await system.call("sys", "main", "reset", type="Hard", scheduled=False)
        await eventually(lambda: len(hard_reset.calls) == 2, what="reset command")
        await eventually(lambda: not (tmp_path / "board" / "state" / "next_boot_reason").exists(), what="cleanup")
    power_cycle(tmp_path / "board")
    async with running(cfg) as system:
        assert await system.call("sys", "main", "get_boot_reason") == "PowerUp"
        await system.call("sys", "main", "reset", type="Soft", scheduled=False)  # no command: restart in place
        await asyncio.wait_for(system.runtime.stop_requested.wait(), 10)
        assert system.runtime.restart_requested


async def test_set_system_time_is_refused_unless_configured(tmp_path: Path):
    async with running(config(tmp_path)) as system:
        assert await system.call("sys", "main", "set_system_time", timestamp="2026-03-01T12:00:00Z") is False
    set_time = RecordingCommand(tmp_path / "bin", "set_time")
    async with running(config(tmp_path, set_system_time_command=set_time.command)) as system:
        assert await system.call("sys", "main", "set_system_time", timestamp="2026-03-01T13:30:00+01:00") is True
    assert set_time.calls[0]["argv"] == ["2026-03-01 12:30:00"]
