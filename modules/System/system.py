"""System module: the `system` interface for one board (firmware, logs, reset, time, boot reason)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from everpy import Module, command

from .archive import pack_logs
from .commands import run_command
from .firmware import FirmwareSettings, FirmwareUpdater
from .log_upload import LogUploader, UploadSettings
from .state import SystemState, read_boot_id
from .timestamps import parse_timestamp
from .transfer import tls_context

IMPL = "main"


class ResetRefused(RuntimeError):
    """reset() was called although is_reset_allowed() says no."""


class System(Module):
    async def init(self) -> None:
        config = self.config
        self.state = SystemState(Path(config["state_dir"]))
        boot_id = await asyncio.to_thread(read_boot_id, config["boot_id_file"])
        startup = await asyncio.to_thread(self.state.take_startup_state, boot_id)
        self.boot_reason = startup.boot_reason
        self.installed_update = startup.installed_update_request_id
        self.log.info("boot reason: %s", self.boot_reason)
        work_dir = Path(config["work_dir"])
        tls = await asyncio.to_thread(tls_context, config["tls_ca_file"])
        self.firmware = FirmwareUpdater(
            FirmwareSettings(
                download_dir=work_dir / "firmware",
                installer_command=config["firmware_installer_command"],
                reboot_command=config["reboot_command"],
                default_retries=config["default_retries"],
                default_retry_interval_s=config["default_retry_interval_s"],
                wait_for_installation_permission=config["wait_for_installation_permission"],
                download_timeout_s=config["transfer_timeout_s"],
                install_timeout_s=config["install_timeout_s"],
                reboot_delay_s=config["reboot_delay_s"],
                checksum_sidecar=config["firmware_checksum_sidecar"],
                signing_ca_file=config["firmware_signing_ca_file"],
                tls=tls,
            ),
            self.state,
            self.clock,
            self._publish_firmware_status,
            self.spawn,
            self.log,
        )
        self.logs = LogUploader(
            UploadSettings(
                work_dir=work_dir / "logs",
                file_name_prefix=config["log_file_name_prefix"],
                default_retries=config["default_retries"],
                default_retry_interval_s=config["default_retry_interval_s"],
                http_method=config["http_upload_method"],
                timeout_s=config["transfer_timeout_s"],
                tls=tls,
            ),
            self._pack_own_logs,
            self.clock,
            self._publish_log_status,
            self.spawn,
            self.log,
        )

    async def ready(self) -> None:
        if self.installed_update is not None:
            # We are the firmware that the previous run installed: finish that update's report.
            self._publish_firmware_status("Installed", self.installed_update)
            await asyncio.to_thread(self.state.forget_installed_update)

    @command(IMPL, "update_firmware")
    async def update_firmware(self, firmware_update_request: dict[str, Any]) -> str:
        return await self.firmware.request(firmware_update_request)

    @command(IMPL, "allow_firmware_installation")
    def allow_firmware_installation(self) -> None:
        self.firmware.allow_installation()

    @command(IMPL, "upload_logs")
    def upload_logs(self, upload_logs_request: dict[str, Any]) -> dict[str, str]:
        return self.logs.request(upload_logs_request)

    @command(IMPL, "is_reset_allowed")
    def is_reset_allowed(self, type: str) -> bool:
        return self._reset_refusal(type) is None

    @command(IMPL, "reset")
    async def reset(self, type: str, scheduled: bool) -> None:
        refusal = self._reset_refusal(type)
        if refusal is not None:
            raise ResetRefused(refusal)
        reason = "ScheduledReset" if scheduled else "ApplicationReset"
        await asyncio.to_thread(self.state.remember_boot_reason, reason)
        self.log.info("%s reset in %.1f s", type, self.config["reset_delay_s"])
        # Return first, so the caller (e.g. OCPP) can still confirm the reset before we go down.
        self.spawn(self._reset_later(self._reset_command(type)))

    @command(IMPL, "set_system_time")
    async def set_system_time(self, timestamp: str) -> bool:
        set_time = self.config["set_system_time_command"]
        if not set_time.strip():
            self.log.info("not setting the system time to %s: set_system_time_command is empty", timestamp)
            return False
        try:
            moment = datetime.fromtimestamp(parse_timestamp(timestamp), UTC)
        except ValueError:
            self.log.warning("not setting the system time: %r is not an RFC 3339 time", timestamp)
            return False
        result = await run_command(set_time, f"{moment:%Y-%m-%d %H:%M:%S}", timeout_s=30.0)
        if not result.ok:
            self.log.error("setting the system time failed (%s): %s", result.returncode, result.output)
        return result.ok

    @command(IMPL, "get_boot_reason")
    def get_boot_reason(self) -> str:
        return self.boot_reason

    # -----------------------------------------------------------------------------------------

    def _reset_command(self, reset_type: str) -> str:
        key = "soft_reset_command" if reset_type == "Soft" else "hard_reset_command"
        return str(self.config[key])

    def _reset_refusal(self, reset_type: str) -> str | None:
        if self.firmware.installing:
            return "a firmware installation is running"
        if reset_type != "Soft" and not self._reset_command(reset_type).strip():
            return f"no command configured for a {reset_type} reset"
        return None

    async def _reset_later(self, reset_command: str) -> None:
        await self.clock.sleep(self.config["reset_delay_s"])
        if not reset_command.strip():  # a Soft reset without a command restarts the everpy stack in place
            self.request_system_restart("Soft reset")
            return
        result = await run_command(reset_command, timeout_s=60.0)
        if not result.ok:
            self.log.error("reset command %s failed (%s): %s", result.argv, result.returncode, result.output)
            # We are still running: the next start must not claim it was this reset.
            await asyncio.to_thread(self.state.forget_boot_reason)

    async def _pack_own_logs(self, request: dict[str, Any], archive: Path) -> None:
        sources = [Path(entry.strip()) for entry in self.config["log_paths"].split(",") if entry.strip()]
        newer = request.get("oldest_timestamp")
        older = request.get("latest_timestamp")
        result = await pack_logs(
            sources,
            archive,
            newer_than=parse_timestamp(newer) if newer else None,
            older_than=parse_timestamp(older) if older else None,
        )
        for skipped in result.skipped:
            self.log.warning("log upload: skipped %s", skipped)

    def _publish_firmware_status(self, status: str, request_id: int) -> None:
        self.log.info("firmware update %d: %s", request_id, status)
        self.publish(IMPL, "firmware_update_status", {"firmware_update_status": status, "request_id": request_id})

    def _publish_log_status(self, status: str, request_id: int) -> None:
        self.log.info("log upload %d: %s", request_id, status)
        self.publish(IMPL, "log_status", {"log_status": status, "request_id": request_id})
