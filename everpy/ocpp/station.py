"""What the OCPP logic needs from the rest of the charger, as one small interface.

The OCPP module implements it over the bus (evse_manager, system, auth, energy connections); the
station logic never touches the bus itself, which keeps it independent of OCPP version and testable
on its own. Connector ids here are OCPP 1.6 connector ids = EVSE ids (1-based).
"""

from __future__ import annotations

from typing import Any, Protocol


class Station(Protocol):
    def connector_ids(self) -> list[int]: ...

    async def set_available(self, connector: int, available: bool) -> bool:
        """Enable or disable one EVSE on behalf of the CSMS."""
        ...

    async def stop_transaction(self, connector: int, reason: str) -> bool: ...

    async def pause_charging(self, connector: int) -> bool: ...

    async def allow_firmware_installation(self) -> None: ...

    async def unlock(self, connector: int) -> bool: ...

    async def reserve(self, connector: int, reservation_id: int) -> bool: ...

    async def cancel_reservation(self, connector: int) -> None: ...

    def provide_token(self, id_tag: str, connectors: list[int] | None, prevalidated: bool) -> None:
        """Hand a remote-start id tag to Auth (auth_token_provider)."""
        ...

    async def set_connection_timeout(self, seconds: int) -> None: ...

    async def apply_limits(self, connector: int, schedule: list[dict[str, Any]]) -> None:
        """Enforce a composite schedule: energy ScheduleReqEntry list (empty = no external limit)."""
        ...

    async def set_system_time(self, timestamp: str) -> bool:
        """Set the system clock (RFC 3339); True if it was set."""
        ...

    async def reset(self, kind: str) -> None:
        """Soft or Hard reset of the whole station (the process ends)."""
        ...

    async def update_firmware(self, request: dict[str, Any]) -> str:
        """Start a firmware update: a system FirmwareUpdateRequest (request_id -1 for plain 1.6 updates).
        Returns the system's answer (Accepted, Rejected, AcceptedCanceled, InvalidCertificate, ...)."""
        ...

    async def upload_logs(self, request: dict[str, Any]) -> tuple[str, str | None]:
        """Start a log upload: a system UploadLogsRequest. Returns (status, file name)."""
        ...

    async def data_transfer(self, vendor_id: str, message_id: str | None, data: str | None) -> dict[str, Any]:
        """A DataTransfer from the CSMS for a local consumer; {status, data?}."""
        ...

    def publish(self, var: str, value: Any) -> None:
        """Publish a var of the ocpp interface (connection_status, ...)."""
        ...
