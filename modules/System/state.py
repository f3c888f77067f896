"""What the System module must remember across a reset: why it rebooted and which update was installed.

A pending "installed update" stays on disk until the new firmware reported it (forget_installed_update).

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
CURRENT_BOOT_FILE = "current_boot.json"
DEFAULT_BOOT_REASON = "PowerUp"


@dataclass(frozen=True)
class StartupState:
    boot_reason: str
    installed_update_request_id: int | None  # an update installed before the reboot that led here


class SystemState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take_startup_state(self, boot_id: str) -> StartupState:
        """Work out why we started; called once per start of the module.

        `boot_id` identifies the running OS boot. A start without a recorded cause inside the same OS boot
        (the stack or the module was restarted) keeps the reason of that boot instead of claiming PowerUp.
        The record of this boot is written before the cause is consumed, so a crash in between loses nothing.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        recorded = self._read(BOOT_REASON_FILE)
        request_id = self._installed_request_id()
        previous = self._current_boot()
        previous_reason = previous.get("reason")
        if request_id is not None:
            reason = "FirmwareUpdate"
        elif recorded:
            reason = recorded
        elif boot_id and previous.get("boot_id") == boot_id and isinstance(previous_reason, str):
            reason = previous_reason
        else:
            reason = DEFAULT_BOOT_REASON
        self._write(CURRENT_BOOT_FILE, json.dumps({"boot_id": boot_id, "reason": reason}))
        (self.directory / BOOT_REASON_FILE).unlink(missing_ok=True)
        return StartupState(boot_reason=reason, installed_update_request_id=request_id)

    def remember_boot_reason(self, reason: str) -> None:
        self._write(BOOT_REASON_FILE, reason)

    def forget_boot_reason(self) -> None:
        (self.directory / BOOT_REASON_FILE).unlink(missing_ok=True)

    def remember_installed_update(self, request_id: int) -> None:
        self._write(INSTALLED_UPDATE_FILE, json.dumps({"request_id": request_id}))

    def forget_installed_update(self) -> None:
        (self.directory / INSTALLED_UPDATE_FILE).unlink(missing_ok=True)

    def _read(self, name: str) -> str:
        try:
            return (self.directory / name).read_text().strip()
        except FileNotFoundError:
            return ""

    def _installed_request_id(self) -> int | None:
        text = self._read(INSTALLED_UPDATE_FILE)
        if not text:
            return None
        try:
            return int(json.loads(text)["request_id"])
        except (ValueError, KeyError, TypeError):
            return None

    def _current_boot(self) -> dict[str, object]:
        try:
            value = json.loads(self._read(CURRENT_BOOT_FILE) or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _write(self, name: str, content: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        temporary = target.with_suffix(target.suffix + ".tmp")
        with temporary.open("w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)


def read_boot_id(path: str) -> str:
    """The OS boot id (Linux: /proc/sys/kernel/random/boot_id); "" if unavailable (every start then counts as
    a new boot)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
