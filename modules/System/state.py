"""What the System module must remember across a reset: why it rebooted and which update was installed.

Files are replaced atomically (write, fsync, rename) so a power cut leaves either the old or the new
content, never half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

BOOT_REASON_FILE = "next_boot_reason"
INSTALLED_UPDATE_FILE = "installed_firmware_update.json"
DEFAULT_BOOT_REASON = "PowerUp"


@dataclass(frozen=True)
class StartupState:
    boot_reason: str
    installed_update_request_id: int | None  # an update installed before the reboot that led here


class SystemState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take_startup_state(self) -> StartupState:
        """Read and consume what the previous run left; called once at start."""
        self.directory.mkdir(parents=True, exist_ok=True)
        reason = self._take(BOOT_REASON_FILE)
        installed = self._take(INSTALLED_UPDATE_FILE)
        request_id: int | None = None
        if installed is not None:
            try:
                request_id = int(json.loads(installed)["request_id"])
            except (ValueError, KeyError, TypeError):
                request_id = None
        if request_id is not None:
            reason = "FirmwareUpdate"
        return StartupState(
            boot_reason=(reason or "").strip() or DEFAULT_BOOT_REASON, installed_update_request_id=request_id
        )

    def remember_boot_reason(self, reason: str) -> None:
        self._write(BOOT_REASON_FILE, reason)

    def forget_boot_reason(self) -> None:
        (self.directory / BOOT_REASON_FILE).unlink(missing_ok=True)

    def remember_installed_update(self, request_id: int) -> None:
        self._write(INSTALLED_UPDATE_FILE, json.dumps({"request_id": request_id}))

    def forget_installed_update(self) -> None:
        (self.directory / INSTALLED_UPDATE_FILE).unlink(missing_ok=True)

    def _take(self, name: str) -> str | None:
        path = self.directory / name
        try:
            content = path.read_text()
        except FileNotFoundError:
            return None
        path.unlink()
        return content

    def _write(self, name: str, content: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        temporary = target.with_suffix(target.suffix + ".tmp")
        with temporary.open("w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
