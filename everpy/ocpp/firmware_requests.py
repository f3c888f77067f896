"""The system interface's FirmwareUpdateRequest and UploadLogsRequest, built from what any OCPP version's
UpdateFirmware / SignedUpdateFirmware / GetDiagnostics / GetLog carries (1.6 and 2.0.1 share them)."""

from __future__ import annotations

from typing import Any


def firmware_request(request_id: int, location: str, retrieve: str, retries: int | None,
                     retry_interval: int | None, **extra: Any) -> dict[str, Any]:
    """A system FirmwareUpdateRequest. ``retries`` is the system's number of download attempts."""
    request: dict[str, Any] = {"request_id": request_id, "location": location, "retrieve_timestamp": retrieve}
    if retries is not None:
        request["retries"] = max(1, retries)
    if retry_interval is not None:
        request["retry_interval_s"] = max(0, retry_interval)
    return request | {k: v for k, v in extra.items() if v is not None}


def log_request(request_id: int, location: str, oldest: str | None, latest: str | None, retries: int | None,
                retry_interval: int | None, log_type: str | None = None) -> dict[str, Any]:
    """A system UploadLogsRequest. ``retries`` is the system's number of upload attempts."""
    request: dict[str, Any] = {"location": location, "request_id": request_id}
    for key, value in (("oldest_timestamp", oldest), ("latest_timestamp", latest), ("type", log_type),
                       ("retries", None if retries is None else max(0, retries)),
                       ("retry_interval_s", None if retry_interval is None else max(0, retry_interval))):
        if value is not None:
            request[key] = value
    return request
