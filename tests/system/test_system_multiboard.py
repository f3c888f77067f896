"""Main board + 3 satellites as separate processes (own mosquitto each, linked by SatelliteAgent/Controller):
firmware update, diagnostics and reset through SystemAggregator across all four boards.

Uses the multi-board test harness of tests/multiboard (boards.py) for the processes and links.
"""

from __future__ import annotations

import asyncio
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "multiboard"))

from boards import Board, controller_entry, main_config, new_serial, satellite_config

from .helpers import RecordingCommand, system_module_config
from .servers import FtpServer, HttpServer, eventually

SATELLITES = ("sat1", "sat2", "sat3")
IMAGE = b"multi-board firmware " * 2000


def board_system(tmp_path: Path, name: str, installer: RecordingCommand, reset: RecordingCommand) -> dict[str, Any]:
    (tmp_path / name / "logs").mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "logs" / f"{name}.log").write_text(f"log of {name}\n")
    config = system_module_config(
        tmp_path / name,
        firmware_installer_command=f"{installer.command} {name}",
        hard_reset_command=f"{reset.command} {name}",
    )
    return {"module": "System", "config_module": config}


def main_board_config(tmp_path: Path, serials: dict[str, str], installer: RecordingCommand, reset: RecordingCommand):
    config = main_config({name: controller_entry(serial) for name, serial in serials.items()})
    modules = config["active_modules"]
    modules["system"] = board_system(tmp_path, "main", installer, reset)
    modules["all_boards"] = {
        "module": "SystemAggregator",
        "config_module": {
            "state_dir": str(tmp_path / "aggregator" / "state"),
            "work_dir": str(tmp_path / "aggregator" / "work"),
            "upload_bind_host": "127.0.0.1",
            "satellite_reset_grace_s": 3,  # the default: satellites reset well before the main board
        },
        "connections": {
            "boards": [{"module_id": "system", "implementation_id": "main"}]
            + [{"module_id": name, "implementation_id": "system"} for name in SATELLITES],
            "satellites": [{"module_id": name, "implementation_id": "satellite"} for name in SATELLITES],
        },
    }
    return config


async def test_firmware_diagnostics_and_reset_across_four_boards(tmp_path: Path):
    installer = RecordingCommand(tmp_path / "bin", "installer")
    reset = RecordingCommand(tmp_path / "bin", "reset")
    serials = {name: new_serial() for name in SATELLITES}
    boards: list[Board] = []
    try:
        for name, serial in serials.items():
            config = satellite_config(serial)
            config["active_modules"]["system"] = board_system(tmp_path, name, installer, reset)
            config["active_modules"]["agent"]["connections"]["system"] = [
                {"module_id": "system", "implementation_id": "main"}
            ]
            boards.append(Board(name, config, tmp_path))
        await asyncio.gather(*(board.start() for board in boards))
        main = Board("main", main_board_config(tmp_path, serials, installer, reset), tmp_path)
        boards.append(main)
        await main.start()
        probe = main.probe
        assert probe is not None
        firmware = probe.watch("all_boards", "main", "firmware_update_status")
        logs = probe.watch("all_boards", "main", "log_status")
        await probe.flush()

        async with HttpServer(tmp_path / "http") as http:
            (http.root / "fw.img").write_bytes(IMAGE)
            request = {"request_id": 12, "location": http.url("/files/fw.img")}
            assert (
                await probe.call("all_boards", "main", "update_firmware", firmware_update_request=request) == "Accepted"
            )
            await firmware.wait_for(lambda v: v["firmware_update_status"] == "Downloaded", timeout=20)
            assert len(http.requests) == 4 and installer.calls == []
            await probe.call("all_boards", "main", "allow_firmware_installation")
            await firmware.wait_for(lambda v: v["firmware_update_status"] == "Installed", timeout=20)
        assert [v["firmware_update_status"] for v in firmware.values] == [
            "Downloading", "Downloaded", "Installing", "Installed",
        ]  # fmt: skip
        install_order = [call["argv"][0] for call in installer.calls]
        assert sorted(install_order[:3]) == sorted(SATELLITES) and install_order[3] == "main"

        with FtpServer(tmp_path / "ftp") as ftp:
            answer = await probe.call(
                "all_boards", "main", "upload_logs", upload_logs_request={"location": ftp.url("/")}
            )
            assert answer["upload_logs_status"] == "Accepted"
            await logs.wait_for(lambda v: v["log_status"] == "Uploaded", timeout=30)
            stored = await ftp.wait_for_file(answer["file_name"])
        with tarfile.open(stored) as merged:
            boards_txt = merged.extractfile("BOARDS.txt").read().decode()  # type: ignore[union-attr]
            board_dirs = sorted(name.split("/")[0] for name in merged.getnames() if name.endswith(".tar.gz"))
        assert board_dirs == ["0-system", "1-sat1", "2-sat2", "3-sat3"]
        assert boards_txt.count(": uploaded") == 4

        assert await probe.call("all_boards", "main", "is_reset_allowed", type="Hard") is True
        await probe.call("all_boards", "main", "reset", type="Hard", scheduled=False)
        await eventually(lambda: len(reset.calls) == 4, what="every board reset")
        reset_order = [call["argv"][0] for call in reset.calls]
        assert sorted(reset_order[:3]) == sorted(SATELLITES) and reset_order[3] == "main"
    finally:
        for board in reversed(boards):
            await board.close()


REBOOT_SCRIPT = """
import os, signal, sys
from pathlib import Path
os.kill(int(Path(sys.argv[1]).read_text()), signal.SIGTERM)
"""


async def test_update_completes_when_a_satellite_reboots_into_the_new_firmware(tmp_path: Path):
    """The satellite's stack goes down after installing; started again (same state dir, as after a reboot),
    it reports Installed through the link, and only then does the main board install."""
    installer = RecordingCommand(tmp_path / "bin", "installer")
    reset = RecordingCommand(tmp_path / "bin", "reset")
    reboot_script, pid_file = tmp_path / "bin" / "reboot.py", tmp_path / "sat1.pid"
    reboot_script.write_text(REBOOT_SCRIPT)
    serial = new_serial()
    satellite = satellite_config(serial)
    satellite["active_modules"]["system"] = board_system(tmp_path, "sat1", installer, reset)
    satellite["active_modules"]["system"]["config_module"]["reboot_command"] = (
        f"{sys.executable} {reboot_script} {pid_file}"
    )
    satellite["active_modules"]["agent"]["connections"]["system"] = [
        {"module_id": "system", "implementation_id": "main"}
    ]
    main_cfg = main_board_config(tmp_path, {"sat1": serial}, installer, reset)
    main_cfg["active_modules"]["all_boards"]["connections"] = {
        "boards": [
            {"module_id": "system", "implementation_id": "main"},
            {"module_id": "sat1", "implementation_id": "system"},
        ],
        "satellites": [{"module_id": "sat1", "implementation_id": "satellite"}],
    }
    sat1, main = Board("sat1", satellite, tmp_path), Board("main", main_cfg, tmp_path)
    try:
        await sat1.start()
        pid_file.write_text(str(sat1.pid))
        await main.start()
        probe = main.probe
        assert probe is not None
        firmware = probe.watch("all_boards", "main", "firmware_update_status")
        await probe.flush()
        async with HttpServer(tmp_path / "http") as http:
            (http.root / "fw.img").write_bytes(IMAGE)
            request = {"request_id": -1, "location": http.url("/files/fw.img")}
            assert (
                await probe.call("all_boards", "main", "update_firmware", firmware_update_request=request) == "Accepted"
            )
            await firmware.wait_for(lambda v: v["firmware_update_status"] == "Downloaded", timeout=20)
            await probe.call("all_boards", "main", "allow_firmware_installation")
            await firmware.wait_for(lambda v: v["firmware_update_status"] == "InstallRebooting", timeout=20)
        assert sat1.process is not None
        await asyncio.wait_for(sat1.process.wait(), 20)
        assert [call["argv"][0] for call in installer.calls] == ["sat1"], "the main board waits for the satellite"

        await sat1.start()  # the satellite boots the new firmware
        await firmware.wait_for(lambda v: v["firmware_update_status"] == "Installed", timeout=30)
        assert [call["argv"][0] for call in installer.calls] == ["sat1", "main"]
        assert [v["firmware_update_status"] for v in firmware.values] == [
            "Downloading", "Downloaded", "Installing", "InstallRebooting", "Installed",
        ]  # fmt: skip
        assert {v["request_id"] for v in firmware.values} == {-1}
        assert await probe.call("sat1", "system", "get_boot_reason") == "FirmwareUpdate"
    finally:
        await main.close()
        await sat1.close()
