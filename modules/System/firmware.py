"""One board's firmware update: schedule, download (retries, checksum), wait for permission, install, reboot.

The statuses follow OCPP's FirmwareStatus; every change is handed to `publish(status, request_id)`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from .commands import run_command
from .signing import CertificateRefused, check_signing_certificate, signature_matches
from .state import SystemState
from .timestamps import is_timestamp, parse_timestamp
from .transfer import TransferError, TransferOutcome, download, with_retries

PublishStatus = Callable[[str, int], None]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


class Clock(Protocol):
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class FirmwareSettings:
    download_dir: Path
    installer_command: str
    reboot_command: str
    default_retries: int = 1
    default_retry_interval_s: float = 60.0
    wait_for_installation_permission: bool = True
    download_timeout_s: float = 600.0
    install_timeout_s: float = 1800.0
    reboot_delay_s: float = 2.0
    signing_ca_file: str = ""  # PEM CA(s) that issue firmware signing certificates; "" = signed updates refused
    checksum_sidecar: bool = False  # fetch "<location>.sha256" when the request carries no checksum
    tls: ssl.SSLContext | None = None  # verifies https/ftps servers; None = system CA store


class FirmwareUpdater:
    def __init__(
        self,
        settings: FirmwareSettings,
        state: SystemState,
        clock: Clock,
        publish: PublishStatus,
        spawn: Spawn,
        log: Any,
    ) -> None:
        self.settings = settings
        self.state = state
        self.clock = clock
        self.publish = publish
        self.spawn = spawn
        self.log = log
        self._job: asyncio.Task[None] | None = None
        self._installing = False
        self._permission = asyncio.Event()

    @property
    def installing(self) -> bool:
        """True from the start of the installation until the update ended (resets must wait)."""
        return self._installing

    async def request(self, request: dict[str, Any]) -> str:
        """Start an update; answers like OCPP's UpdateFirmware (Accepted, Rejected, AcceptedCanceled)."""
        checksum = request.get("checksum_sha256")
        if checksum is not None and not SHA256_HEX.match(str(checksum)):
            self.log.warning("firmware update rejected: checksum_sha256 is not 64 hex digits")
            return "Rejected"
        for key in ("retrieve_timestamp", "install_timestamp"):
            if request.get(key) is not None and not is_timestamp(request[key]):
                self.log.warning("firmware update rejected: %s %r is not an RFC 3339 time", key, request[key])
                return "Rejected"
        certificate: x509.Certificate | None = None
        if self.settings.signing_ca_file and not (request.get("signature") or request.get("signing_certificate")):
            # with a firmware CA configured, an unsigned image (1.6's plain UpdateFirmware, or any caller on
            # the bus) never installs: whoever can ask for an update cannot choose what runs on the board
            self.log.warning("firmware update rejected: firmware_signing_ca_file is set, so only signed images install")
            return "Rejected"
        if request.get("signature") or request.get("signing_certificate"):
            refusal, certificate = await self._check_signed_request(request)
            if refusal is not None:
                return refusal
        answer = "Accepted"
        if self._job is not None and not self._job.done():
            if self._installing:
                self.log.warning("firmware update rejected: an installation is running")
                return "Rejected"
            self.log.info("new firmware update cancels the running one")
            self._job.cancel()
            answer = "AcceptedCanceled"
        self._permission.clear()
        self._job = self.spawn(self._run(request, certificate))
        return answer

    async def _check_signed_request(self, request: dict[str, Any]) -> tuple[str | None, x509.Certificate | None]:
        if not (request.get("signature") and request.get("signing_certificate")):
            self.log.warning("firmware update rejected: a signed update needs both signature and signing_certificate")
            return "Rejected", None
        if not self.settings.signing_ca_file:
            self.log.warning("firmware update rejected: signed updates need firmware_signing_ca_file")
            return "Rejected", None
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        try:
            certificate = await asyncio.to_thread(
                check_signing_certificate, str(request["signing_certificate"]), Path(self.settings.signing_ca_file), now
            )
        except CertificateRefused as refusal:
            self.log.warning("firmware update rejected: %s", refusal)
            return "InvalidCertificate", None
        return None, certificate

    def allow_installation(self) -> None:
        self._permission.set()

    async def _run(self, request: dict[str, Any], certificate: x509.Certificate | None) -> None:
        request_id = int(request["request_id"])
        try:
            image = await self._fetch(request, request_id)
            if image is None:
                return
            if certificate is not None:
                if not await asyncio.to_thread(signature_matches, certificate, str(request["signature"]), image):
                    await asyncio.to_thread(image.unlink, missing_ok=True)
                    self.publish("InvalidSignature", request_id)
                    return
                self.publish("SignatureVerified", request_id)
            await self._wait_until(request.get("install_timestamp"), "InstallScheduled", request_id)
            if self.settings.wait_for_installation_permission:
                await self._permission.wait()
            self._installing = True
            await self._install(image, request_id)
        except OSError as error:  # local storage trouble (full or broken flash): the update cannot go on
            self.log.error("firmware update %d failed on local storage: %s", request_id, error)
            self.publish("InstallationFailed" if self._installing else "DownloadFailed", request_id)
        finally:
            self._installing = False

    async def _fetch(self, request: dict[str, Any], request_id: int) -> Path | None:
        await self._wait_until(request.get("retrieve_timestamp"), "DownloadScheduled", request_id)
        location = str(request["location"])
        image = self.settings.download_dir / f"firmware-{request_id}.img"
        try:
            await asyncio.to_thread(_clear_old_images, self.settings.download_dir)
        except OSError as error:  # the download itself will tell whether there is room
            self.log.warning("cannot clear old firmware images: %s", error)
        self.publish("Downloading", request_id)

        attempts_made = 0

        async def attempt() -> None:
            nonlocal attempts_made
            attempts_made += 1
            # A retry continues where the interrupted attempt stopped (images are large, links may be slow).
            result = await download(
                location,
                image,
                timeout_s=self.settings.download_timeout_s,
                tls=self.settings.tls,
                resume=attempts_made > 1,
            )
            expected = await self._expected_checksum(request)
            if expected is not None and result.sha256.lower() != expected.lower():
                await asyncio.to_thread(image.unlink, missing_ok=True)  # corrupt: the next attempt starts afresh
                raise TransferError(f"checksum mismatch: expected {expected}, got {result.sha256}")

        def on_failure(number: int, error: TransferError) -> None:
            self.log.warning("firmware download attempt %d failed: %s", number, error)

        try:
            await with_retries(
                attempt,
                attempts=int(request.get("retries", self.settings.default_retries)),
                interval_s=float(request.get("retry_interval_s", self.settings.default_retry_interval_s)),
                clock=self.clock,
                on_failure=on_failure,
            )
        except TransferError:
            await asyncio.to_thread(image.unlink, missing_ok=True)
            self.publish("DownloadFailed", request_id)
            return None
        self.publish("Downloaded", request_id)
        return image

    async def _expected_checksum(self, request: dict[str, Any]) -> str | None:
        if request.get("checksum_sha256"):
            return str(request["checksum_sha256"])
        if not self.settings.checksum_sidecar:
            return None
        sidecar = self.settings.download_dir / "firmware.sha256"
        await download(str(request["location"]) + ".sha256", sidecar, timeout_s=60.0, tls=self.settings.tls)
        try:
            text = await asyncio.to_thread(sidecar.read_text, errors="replace")
        except OSError as error:
            raise TransferError(f"cannot read the checksum file: {error}") from error
        digest = text.split()[0] if text.split() else ""
        if not SHA256_HEX.match(digest):
            raise TransferError("checksum file does not start with a SHA-256 hex digest", TransferOutcome.BAD_LOCATION)
        return digest

    async def _install(self, image: Path, request_id: int) -> None:
        self.publish("Installing", request_id)
        if not self.settings.installer_command.strip():
            self.log.error("firmware installation failed: firmware_installer_command is not configured")
            self.publish("InstallationFailed", request_id)
            return
        result = await run_command(
            self.settings.installer_command,
            str(image),
            timeout_s=self.settings.install_timeout_s,
            env={"EVERPY_FIRMWARE_REQUEST_ID": str(request_id)},
        )
        await asyncio.to_thread(image.unlink, missing_ok=True)
        if not result.ok:
            self.log.error("firmware installer %s failed (%s): %s", result.argv, result.returncode, result.output)
            self.publish("InstallationFailed", request_id)
            return
        self.log.info("firmware installed by %s", result.argv)
        if not self.settings.reboot_command.strip():
            self.publish("Installed", request_id)
            return
        # The new firmware reports Installed after the reboot, from what we persist here.
        await asyncio.to_thread(self.state.remember_installed_update, request_id)
        await asyncio.to_thread(self.state.remember_boot_reason, "FirmwareUpdate")
        self.publish("InstallRebooting", request_id)
        await self.clock.sleep(self.settings.reboot_delay_s)
        reboot = await run_command(self.settings.reboot_command, timeout_s=60.0)
        if not reboot.ok:
            self.log.error("reboot after firmware installation failed (%s): %s", reboot.returncode, reboot.output)
            await asyncio.to_thread(self.state.forget_installed_update)
            self.publish("InstallationFailed", request_id)

    async def _wait_until(self, timestamp: str | None, status: str, request_id: int) -> None:
        if not timestamp:
            return
        delay = parse_timestamp(timestamp) - self.clock.time()
        if delay > 0:
            self.publish(status, request_id)
            await self.clock.sleep(delay)


def _clear_old_images(directory: Path) -> None:
    """Small boards have little flash: never keep an earlier image next to the new one."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("firmware-*.img"):
        old.unlink(missing_ok=True)
