"""What the OCPP layer needs from the rest of the charger (southbound), as one small interface.

The OCPP module implements it over the bus (evse_manager, system, auth, energy connections); the
station logic of every OCPP version talks only to it, never to the bus, which keeps each version
testable alone against a fake Station. EVSE ids are 1-based; a 1.6 connector id is an EVSE id.

Every command answers whether the charger took the request (True) or not; a command whose bus call
failed after its retries answers False (or raises :class:`ChargerUnavailable` where "not done" needs
telling apart from "refused").
"""

from __future__ import annotations

from typing import Any, Protocol

from everpy.ocpp.values import EvseRef, IdToken, ResetRequest


class ChargerUnavailable(Exception):
    """The part of the charger that would carry out a request did not answer (bus down, module gone)."""


class Station(Protocol):
    def evse_ids(self) -> list[int]: ...

    async def set_available(self, evse_id: int, available: bool) -> bool:
        """Enable or disable one EVSE on behalf of the CSMS; True when the EVSE is in that state afterwards
        (a source of higher priority, or an EVSE that did not answer, leaves it otherwise: False)."""
        ...

    async def stop_transaction(self, evse_id: int, reason: str) -> bool: ...

    async def pause_charging(self, evse_id: int) -> bool: ...

    async def has_lock(self, evse: EvseRef) -> bool:
        """False for a fixed cable (nothing to unlock)."""
        ...

    async def unlock(self, evse: EvseRef) -> bool: ...

    async def reserve(self, evse_id: int, reservation_id: int) -> bool: ...

    async def cancel_reservation(self, evse_id: int) -> None: ...

    async def session_info(self, evse_id: int) -> dict[str, Any] | None:
        """What the EVSE says about its session now (after an OCPP restart), None if it cannot tell."""
        ...

    def provide_token(self, token: IdToken, evse_ids: list[int] | None, prevalidated: bool) -> None:
        """Hand a remote-start token to Auth (auth_token_provider)."""
        ...

    def validation_changed(self, evse_id: int, result: dict[str, Any]) -> None:
        """A later verdict on the token in use at an EVSE (e.g. the parent the CSMS named in its answer
        to the transaction's start), as an authorization ValidationResult."""
        ...

    async def set_connection_timeout(self, seconds: int) -> None: ...

    async def apply_limits(self, evse_id: int, schedule: list[dict[str, Any]]) -> None:
        """Enforce a composite schedule: energy ScheduleReqEntry list (empty = no external limit)."""
        ...

    async def read_meter(self, evse_id: int) -> dict[str, Any] | None:
        """A fresh Powermeter reading of the EVSE's meter (for the stop value), None if none came."""
        ...

    async def set_system_time(self, timestamp: str) -> bool:
        """Set the system clock (RFC 3339); True if it was set."""
        ...

    async def reset(self, request: ResetRequest) -> None:
        """Reset the whole station (the process ends), or with ``request.evse`` that EVSE alone."""
        ...

    def can_reset_evse(self) -> bool:
        """Whether one EVSE can be reset without the rest (else an EVSE reset is refused, never widened)."""
        ...

    async def update_firmware(self, request: dict[str, Any]) -> str:
        """Start a firmware update: a system FirmwareUpdateRequest (request_id -1 for plain 1.6 updates).
        Returns the system's answer (Accepted, Rejected, AcceptedCanceled, InvalidCertificate, ...)."""
        ...

    async def allow_firmware_installation(self) -> None: ...

    async def upload_logs(self, request: dict[str, Any]) -> tuple[str, str | None]:
        """Start a log upload: a system UploadLogsRequest. Returns (status, file name)."""
        ...

    async def data_transfer(self, vendor_id: str, message_id: str | None, data: str | None) -> dict[str, Any]:
        """A DataTransfer from the CSMS for a local consumer; {status, data?}."""
        ...

    def publish(self, var: str, value: Any) -> None:
        """Publish a var of the ocpp interface (connection_status, ...)."""
        ...

    def raise_error(self, kind: str, message: str) -> None:
        """Raise an error of the ocpp interface on the bus (a degraded store, ...)."""
        ...
