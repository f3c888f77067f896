"""The one northbound interface of the OCPP layer: what the charger (the OCPP module, or any other
user on the board) asks of OCPP, the same for every OCPP version.

``everpy.ocpp.v16.ChargePoint16`` implements it; a 2.0.1 station implements the same. The OCPP module
holds a ``ChargePointInterface`` and never reaches behind it. Bus types (session events, powermeter
readings, errors, system statuses) travel as the dicts the everpy interfaces define.
"""

from __future__ import annotations

from typing import Any, Protocol

from everpy.ocpp.values import EvseRef


class ChargePointInterface(Protocol):
    # -- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bring the station's state up (recover transactions, apply persisted settings to the charger)."""
        ...

    async def run(self) -> None:
        """Connect to the CSMS and serve it, reconnecting, until :meth:`stop`."""
        ...

    async def stop(self) -> None:
        """Close the connection and stop reconnecting; queued messages stay persisted."""
        ...

    def resume(self) -> None:
        """Allow :meth:`run` again after :meth:`stop`."""
        ...

    async def drain(self, timeout_s: float) -> bool:
        """Orderly stop: when connected, try for at most ``timeout_s`` to deliver the queued messages
        (what is left stays persisted); True if none is left."""
        ...

    def close(self) -> None:
        """Shutdown: stop every timer and job so nothing touches the store afterwards."""
        ...

    # -- what the charger reports ---------------------------------------------------------------------
    async def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None: ...

    async def on_evse_reappeared(self, evse_id: int) -> None:
        """The EVSE came back (its module restarted, its board's link returned): it gets OCPP's desired
        state again (availability, reservation) and OCPP re-reads its session."""
        ...

    def on_powermeter(self, evse_id: int, reading: dict[str, Any]) -> None: ...

    def on_limits(self, evse_id: int, limits: dict[str, Any]) -> None: ...

    async def on_error(self, evse_id: int, error: dict[str, Any]) -> None: ...

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None: ...

    async def on_log_status(self, status: dict[str, Any]) -> None: ...

    # -- what local users ask ------------------------------------------------------------------------
    def security_event(self, kind: str, info: str = "", critical: bool | None = None) -> None: ...

    def get_configuration(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """(known entries {key, readonly, value}, unknown names)."""
        ...

    def change_configuration(self, key: str, value: str) -> str:
        """Accepted, Rejected, RebootRequired or NotSupported."""
        ...

    def get_variables(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def set_variables(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]: ...

    async def change_availability(self, evse: EvseRef | None, operative: bool) -> dict[str, Any]: ...

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        """auth_token_validator.validate_token: an authorization ValidationResult."""
        ...

    async def data_transfer(self, request: dict[str, Any]) -> dict[str, Any]:
        """A DataTransfer from a local user to the CSMS: {status, data?} (status Offline when offline)."""
        ...

    def connection_timeout(self) -> int:
        """Seconds an authorised token waits for a car (the charger's Auth applies it)."""
        ...
