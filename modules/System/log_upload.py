"""A log upload: build the archive, send it to the requested location with retries, report each status.

How the archive is built is passed in (`collect`): the System module packs its own log files, the
SystemAggregator gathers every board's archive first. Request handling, cancellation, retries and
statuses are the same for both, so they live here once.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .timestamps import is_timestamp
from .transfer import Location, TransferError, redact, upload, with_retries

PublishStatus = Callable[[str, int], None]
Collect = Callable[[dict[str, Any], Path], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
NO_REQUEST_ID = -1  # OCPP 1.6 GetDiagnostics has no request id


class Clock(Protocol):
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class UploadSettings:
    work_dir: Path
    file_name_prefix: str = ""
    default_retries: int = 1
    default_retry_interval_s: float = 60.0
    http_method: str = "PUT"
    timeout_s: float = 600.0
    tls: ssl.SSLContext | None = None  # verifies https/ftps servers; None = system CA store


class LogUploader:
    def __init__(
        self,
        settings: UploadSettings,
        collect: Collect,
        clock: Clock,
        publish: PublishStatus,
        spawn: Spawn,
        log: Any,
    ) -> None:
        self.settings = settings
        self.collect = collect
        self.clock = clock
        self.publish = publish
        self.spawn = spawn
        self.log = log
        self._job: asyncio.Task[None] | None = None

    def request(self, request: dict[str, Any]) -> dict[str, str]:
        """Start an upload; answers like OCPP's GetLog (a new request cancels a running one)."""
        try:
            Location.parse(str(request["location"]))
        except TransferError as error:
            self.log.warning("log upload rejected: %s", error)
            return {"upload_logs_status": "Rejected"}
        for key in ("oldest_timestamp", "latest_timestamp"):
            if request.get(key) is not None and not is_timestamp(request[key]):
                self.log.warning("log upload rejected: %s %r is not an RFC 3339 time", key, request[key])
                return {"upload_logs_status": "Rejected"}
        answer = "Accepted"
        if self._job is not None and not self._job.done():
            self.log.info("new log upload request cancels the running one")
            self._job.cancel()
            answer = "AcceptedCanceled"
        file_name = self.file_name(request)
        self._job = self.spawn(self._run(request, file_name))
        return {"upload_logs_status": answer, "file_name": file_name}

    def file_name(self, request: dict[str, Any]) -> str:
        kind = re.sub(r"[^A-Za-z0-9_-]", "", str(request.get("type") or "diagnostics")) or "diagnostics"
        moment = datetime.fromtimestamp(self.clock.time(), UTC)
        return f"{self.settings.file_name_prefix}{kind}-{moment:%Y%m%dT%H%M%SZ}.tar.gz"

    async def _run(self, request: dict[str, Any], file_name: str) -> None:
        request_id = int(request.get("request_id", NO_REQUEST_ID))
        location = str(request["location"])
        archive = self.settings.work_dir / file_name
        self.publish("Uploading", request_id)
        try:
            status = await self._build_and_send(request, archive, location, file_name)
        finally:
            await asyncio.to_thread(self._remove, archive)
        # Reported only once the archive is gone: a final status means no leftovers on the board.
        self.publish(status, request_id)

    def _remove(self, archive: Path) -> None:
        try:
            archive.unlink(missing_ok=True)
        except OSError as error:  # e.g. the work dir itself is broken; the status still has to go out
            self.log.warning("cannot remove %s: %s", archive, error)

    async def _build_and_send(self, request: dict[str, Any], archive: Path, location: str, file_name: str) -> str:
        """Returns the final log status."""
        try:
            await asyncio.to_thread(self.settings.work_dir.mkdir, parents=True, exist_ok=True)
            await self.collect(request, archive)
        except OSError as error:
            self.log.error("cannot build the log archive %s: %s", archive, error)
            return "UploadFailure"

        def on_failure(number: int, error: TransferError) -> None:
            self.log.warning("log upload attempt %d to %s failed: %s", number, redact(location), error)

        try:
            sent_to = await with_retries(
                lambda: upload(
                    archive,
                    location,
                    file_name=file_name,
                    http_method=self.settings.http_method,
                    timeout_s=self.settings.timeout_s,
                    tls=self.settings.tls,
                ),
                attempts=int(request.get("retries", self.settings.default_retries)),
                interval_s=float(request.get("retry_interval_s", self.settings.default_retry_interval_s)),
                clock=self.clock,
                on_failure=on_failure,
            )
        except TransferError as error:
            return error.outcome.value
        self.log.info("logs uploaded to %s", sent_to)
        return "Uploaded"
