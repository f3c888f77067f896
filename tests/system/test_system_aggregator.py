"""SystemAggregator over three real System instances (one main board, two satellites) on one bus."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from everpy.core.clock import FakeClock

from .helpers import RecordingCommand, recorder_of, running, system_module_config
from .servers import FtpServer, HttpServer, eventually

IMAGE = b"charger firmware " * 4000
BOARDS = ("b0", "b1", "b2")  # b0 = main board


def config(
    tmp_path: Path, aggregator: dict[str, Any] | None = None, **board_overrides: dict[str, Any]
) -> dict[str, Any]:
    modules: dict[str, Any] = {
        board: {
            "module": "System",
            "config_module": system_module_config(tmp_path / board, **board_overrides.get(board, {})),
        }
        for board in BOARDS
    }
    modules["agg"] = {
        "module": "SystemAggregator",
        "config_module": {
            "state_dir": str(tmp_path / "agg" / "state"),
            "work_dir": str(tmp_path / "agg" / "work"),
            "upload_bind_host": "127.0.0.1",
            "default_retry_interval_s": 0,
            "board_upload_timeout_s": 20,
            "board_upload_retry_interval_s": 0,
            **(aggregator or {}),
        },
        "connections": {"boards": [{"module_id": board, "implementation_id": "main"} for board in BOARDS]},
    }
    modules["recorder"] = recorder_of("agg")
    return {"active_modules": modules}


def each_board(**overrides: Any) -> dict[str, dict[str, Any]]:
    return {board: dict(overrides) for board in BOARDS}


@pytest.fixture
async def http(tmp_path: Path):
    async with HttpServer(tmp_path / "http") as server:
        (server.root / "fw.img").write_bytes(IMAGE)
        yield server


def installers(tmp_path: Path) -> tuple[RecordingCommand, dict[str, dict[str, Any]]]:
    """One recording installer shared by all boards; each board passes its name first."""
    installer = RecordingCommand(tmp_path / "bin", "installer")
    return installer, {board: {"firmware_installer_command": f"{installer.command} {board}"} for board in BOARDS}


async def test_firmware_installs_everywhere_satellites_first_with_merged_statuses(tmp_path: Path, http: HttpServer):
    installer, boards = installers(tmp_path)
    async with running(config(tmp_path, **boards)) as system:
        recorder = system.instances["recorder"]
        request = {
            "request_id": 5,
            "location": http.url("/files/fw.img"),
            "checksum_sha256": hashlib.sha256(IMAGE).hexdigest(),
        }
        assert await system.call("agg", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 2) == ["Downloading", "Downloaded"]
        assert len(http.requests) == 3, "every board downloads for itself"
        assert installer.calls == []

        await system.call("agg", "main", "allow_firmware_installation")
        assert await recorder.wait_for(recorder.firmware, 4) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert {s["request_id"] for s in recorder.firmware} == {5}
    boards_in_install_order = [call["argv"][0] for call in installer.calls]
    assert sorted(boards_in_install_order[:2]) == ["b1", "b2"] and boards_in_install_order[2] == "b0"


async def test_one_board_failing_fails_the_whole_update_once(tmp_path: Path, http: HttpServer):
    installer, boards = installers(tmp_path)
    broken = tmp_path / "not-a-directory"
    broken.write_text("")
    boards["b2"]["work_dir"] = str(broken)  # b2 cannot store the image
    async with running(config(tmp_path, **boards)) as system:
        recorder = system.instances["recorder"]
        healthy = [system.watch(board, "main", "firmware_update_status") for board in ("b0", "b1")]
        request = {"request_id": 6, "location": http.url("/files/fw.img")}
        assert await system.call("agg", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 2) == ["Downloading", "DownloadFailed"]
        await system.call("agg", "main", "allow_firmware_installation")
        for board_status in healthy:
            await board_status.wait_for(lambda value: value["firmware_update_status"] == "Downloaded")
        assert await system.call("agg", "main", "get_boot_reason") == "PowerUp"  # a round trip later
    assert [s["firmware_update_status"] for s in recorder.firmware] == ["Downloading", "DownloadFailed"]
    assert installer.calls == []


async def test_logs_of_all_boards_arrive_in_one_archive(tmp_path: Path):
    for board in BOARDS:
        (tmp_path / board / "logs").mkdir(parents=True)
        (tmp_path / board / "logs" / "everpy.log").write_text(f"log of {board}\n")
    broken = tmp_path / "not-a-directory"
    broken.write_text("")
    cfg = config(
        tmp_path,
        aggregator={"log_file_name_prefix": "CHARGER-"},
        b1={"http_upload_method": "POST"},  # the inbox takes multipart as well as PUT
        b2={"work_dir": str(broken)},
    )
    with FtpServer(tmp_path / "ftp") as ftp:
        async with running(cfg) as system:
            recorder = system.instances["recorder"]
            answer = await system.call(
                "agg", "main", "upload_logs", upload_logs_request={"location": ftp.url("/"), "request_id": 3}
            )
            assert answer["upload_logs_status"] == "Accepted" and answer["file_name"].startswith("CHARGER-diagnostics-")
            assert await recorder.wait_for(recorder.logs, 2, timeout=30) == ["Uploading", "Uploaded"]
        stored = await ftp.wait_for_file(answer["file_name"])

    with tarfile.open(stored) as merged:
        names = merged.getnames()
        boards_txt = merged.extractfile("BOARDS.txt").read().decode()  # type: ignore[union-attr]
        inner = {name.split("/")[0]: merged.extractfile(name).read() for name in names if name.endswith(".tar.gz")}  # type: ignore[union-attr]
    assert sorted(inner) == ["0-b0", "1-b1"]
    for board_dir, content in inner.items():
        board = board_dir.split("-")[1]
        with tarfile.open(fileobj=io.BytesIO(content)) as board_archive:
            assert board_archive.extractfile("logs/everpy.log").read() == f"log of {board}\n".encode()  # type: ignore[union-attr]
    assert "0-b0: uploaded" in boards_txt and "1-b1: uploaded" in boards_txt
    assert "2-b2: upload failed (UploadFailure)" in boards_txt


async def test_reset_goes_to_satellites_first_and_questions_need_every_board(tmp_path: Path):
    clock = FakeClock()
    reset = RecordingCommand(tmp_path / "bin", "reset")
    boards = {board: {"hard_reset_command": f"{reset.command} {board}"} for board in BOARDS}
    async with running(config(tmp_path, aggregator={"satellite_reset_grace_s": 3}, **boards), clock=clock) as system:
        assert await system.call("agg", "main", "is_reset_allowed", type="Hard") is True
        assert await system.call("agg", "main", "is_reset_allowed", type="Soft") is True  # restart in place
        assert await system.call("agg", "main", "set_system_time", timestamp="2026-01-01T00:00:00Z") is False
        assert await system.call("agg", "main", "get_boot_reason") == "PowerUp"

        await system.call("agg", "main", "reset", type="Hard", scheduled=False)
        await clock.advance(0)
        await eventually(lambda: len(reset.calls) == 2, what="satellite resets")
        await clock.advance(2.9)
        assert len(reset.calls) == 2, "the main board waits for the grace period"
        await clock.advance(0.1)
        await eventually(lambda: clock.pending_timers > 0, what="main board reset scheduled")
        await clock.advance(0)
        await eventually(lambda: len(reset.calls) == 3, what="main board reset")
    order = [call["argv"][0] for call in reset.calls]
    assert sorted(order[:2]) == ["b1", "b2"] and order[2] == "b0"


async def test_board_that_fails_commands_is_reported_and_answers_conservatively(tmp_path: Path):
    cfg = config(tmp_path)
    cfg["active_modules"]["b2"] = {"module": "UnreachableSystem"}
    async with running(cfg) as system:
        errors = system.watch_errors("agg", "main")
        assert await system.call("agg", "main", "set_system_time", timestamp="2026-01-01T00:00:00Z") is False
        raised = await errors.next()
        assert raised["type"] == "system/BoardUnavailable" and raised["sub_type"] == "2-b2"
        request = {"request_id": 1, "location": "http://127.0.0.1:1/fw.img"}
        assert await system.call("agg", "main", "update_firmware", firmware_update_request=request) == "Rejected"


async def test_inbox_admits_one_upload_per_token_and_nothing_else(tmp_path: Path):
    from everpy_modules.SystemAggregator.inbox import UploadInbox

    async with (
        UploadInbox(tmp_path / "in", bind_host="127.0.0.1", port=0, max_bytes=1000) as inbox,
        aiohttp.ClientSession() as client,
    ):
        slot = inbox.expect("1-sat")
        base = inbox.location(slot, "127.0.0.1")
        async with client.put(base.replace(slot.token, "guess") + "a.tar.gz", data=b"x") as response:
            assert response.status == 403
        async with client.put(base + "big.tar.gz", data=b"x" * 1001) as response:
            assert response.status == 413
        async with client.put(base + "..%2F..%2Fescape.tar.gz", data=b"logs") as response:
            assert response.status == 201
        async with client.put(base + "again.tar.gz", data=b"more") as response:
            assert response.status == 403
    stored = slot.received.result()
    assert stored.parent == tmp_path / "in" / "1-sat" and stored.read_bytes() == b"logs"
    assert [p.name for p in (tmp_path / "in").rglob("*") if p.is_file()] == [stored.name]


async def test_main_board_installs_last_and_the_update_completes_after_its_reboot(tmp_path: Path, http: HttpServer):
    installer, boards = installers(tmp_path)
    reboot = RecordingCommand(tmp_path / "bin", "reboot")
    boards["b0"]["reboot_command"] = reboot.command
    cfg = config(tmp_path, **boards)
    async with running(cfg) as system:
        recorder = system.instances["recorder"]
        request = {"request_id": 8, "location": http.url("/files/fw.img")}
        assert await system.call("agg", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        await recorder.wait_for(recorder.firmware, 2)
        await system.call("agg", "main", "allow_firmware_installation")
        assert await recorder.wait_for(recorder.firmware, 4) == [
            "Downloading", "Downloaded", "Installing", "InstallRebooting",
        ]  # fmt: skip
        await eventually(lambda: len(reboot.calls) == 1, what="main board reboot")
    assert [call["argv"][0] for call in installer.calls][-1] == "b0"

    async with running(cfg) as system:  # the main board came back with the new firmware
        recorder = system.instances["recorder"]
        assert await recorder.wait_for(recorder.firmware, 1) == ["Installed"]
        assert recorder.firmware[0]["request_id"] == 8
        assert await system.call("agg", "main", "get_boot_reason") == "FirmwareUpdate"
    assert not (tmp_path / "agg" / "state" / "aggregated_firmware_update.json").exists()


async def test_update_that_does_not_finish_in_time_fails(tmp_path: Path, http: HttpServer):
    clock = FakeClock()
    async with running(config(tmp_path, aggregator={"board_update_timeout_s": 60}), clock=clock) as system:
        recorder = system.instances["recorder"]
        request = {"request_id": 2, "location": http.url("/files/fw.img"), "retrieve_timestamp": "2099-01-01T00:00:00Z"}
        assert await system.call("agg", "main", "update_firmware", firmware_update_request=request) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 1) == ["DownloadScheduled"]
        await clock.advance(59)
        assert len(recorder.firmware) == 1
        await clock.advance(1)
        assert await recorder.wait_for(recorder.firmware, 2) == ["DownloadScheduled", "DownloadFailed"]


async def test_boards_upload_over_https_when_the_inbox_has_a_certificate(tmp_path: Path):
    from .servers import tls_server_context

    _, ca_file = tls_server_context(tmp_path / "pki")
    inbox_tls = {
        "upload_tls_cert": str(tmp_path / "pki" / "server.pem"),
        "upload_tls_key": str(tmp_path / "pki" / "server.key"),
    }
    cfg = config(tmp_path, aggregator=inbox_tls, **each_board(tls_ca_file=str(ca_file)))
    with FtpServer(tmp_path / "ftp") as ftp:
        async with running(cfg) as system:
            recorder = system.instances["recorder"]
            answer = await system.call("agg", "main", "upload_logs", upload_logs_request={"location": ftp.url("/")})
            assert await recorder.wait_for(recorder.logs, 2, timeout=30) == ["Uploading", "Uploaded"]
        stored = await ftp.wait_for_file(answer["file_name"])
    with tarfile.open(stored) as merged:
        boards_txt = merged.extractfile("BOARDS.txt").read().decode()  # type: ignore[union-attr]
    assert boards_txt.count(": uploaded") == 3

    untrusting = config(tmp_path, aggregator=inbox_tls)  # boards without the CA refuse the inbox
    with FtpServer(tmp_path / "ftp2") as ftp:
        async with running(untrusting) as system:
            recorder = system.instances["recorder"]
            answer = await system.call("agg", "main", "upload_logs", upload_logs_request={"location": ftp.url("/")})
            assert await recorder.wait_for(recorder.logs, 2, timeout=60) == ["Uploading", "Uploaded"]
        stored = await ftp.wait_for_file(answer["file_name"])
    with tarfile.open(stored) as merged:
        boards_txt = merged.extractfile("BOARDS.txt").read().decode()  # type: ignore[union-attr]
    assert boards_txt.count("upload failed (UploadFailure)") == 3
