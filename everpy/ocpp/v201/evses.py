"""The EVSEs of a 2.0.1 station, their connectors, and the one rule that turns their state into a
ConnectorStatusEnumType (Available, Occupied, Reserved, Unavailable, Faulted).

everpy's EVSEs have one connector each (connector 1). Every block reads and changes this state; only
:meth:`Evse.connector_status` derives a status from it, so StatusNotification, the device model's
AvailabilityState and TriggerMessage can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CONNECTOR_ID = 1
# session events of the evse_manager interface that say a car is (True) or is no longer (False) plugged in
# (after an authorization first, the car's arrival is the TransactionStarted)
PLUGGED: dict[str, bool] = {"SessionStarted": True, "SessionResumed": True, "TransactionStarted": True,
                            "SessionFinished": False, "PluginTimeout": False}


@dataclass
class Evse:
    id: int
    connectors: int = 1
    plugged: bool = False
    session_id: str | None = None  # the EvseManager's session while a car is plugged in
    operative: bool = True  # what the CSMS wants (ChangeAvailability, persisted by the availability block)
    scheduled_operative: bool | None = None  # a change that waits for the transaction to end
    reservation_id: int | None = None
    transaction_id: str | None = None  # the 2.0.1 transaction running on this EVSE
    errors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reading: dict[str, Any] | None = None  # the latest powermeter reading

    def connector_status(self, station_operative: bool = True, connector_id: int = CONNECTOR_ID) -> str:
        if self.errors:
            return "Faulted"
        if self.transaction_id is None and not (self.operative and station_operative):
            # Inoperative takes effect once no transaction runs (2.0.1 G03.FR.04/05)
            return "Unavailable"
        if self.plugged or self.transaction_id is not None:
            return "Occupied"
        if self.reservation_id is not None:
            return "Reserved"
        return "Available"


class Evses:
    """State of the station and each EVSE."""

    def __init__(self, evse_ids: list[int]) -> None:
        self.by_id = {evse_id: Evse(evse_id) for evse_id in evse_ids}
        self.station_operative = True
        self.station_scheduled_operative: bool | None = None

    def __contains__(self, evse_id: object) -> bool:
        return evse_id in self.by_id

    def __iter__(self) -> Iterator[Evse]:
        return iter(self.by_id.values())

    def __getitem__(self, evse_id: int) -> Evse:
        return self.by_id[evse_id]

    def get(self, evse_id: int | None) -> Evse | None:
        return None if evse_id is None else self.by_id.get(evse_id)

    def ids(self) -> list[int]:
        return list(self.by_id)

    def connectors(self) -> dict[int, int]:
        """EVSE id -> number of connectors (the device model's places)."""
        return {e.id: e.connectors for e in self.by_id.values()}

    def has_connector(self, evse_id: int, connector_id: int) -> bool:
        evse = self.by_id.get(evse_id)
        return evse is not None and 1 <= connector_id <= evse.connectors

    def status(self, evse_id: int, connector_id: int = CONNECTOR_ID) -> str:
        return self.by_id[evse_id].connector_status(self.station_operative, connector_id)

    def any_transaction(self) -> bool:
        return any(e.transaction_id is not None for e in self.by_id.values())

    def session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        """What a session event says about the connector (plugged in or not, the session id)."""
        evse = self.by_id[evse_id]
        plugged = PLUGGED.get(event["event"])
        if event["event"] == "SessionStarted" and (event.get("session_started") or {}).get("reason") == "Authorized":
            plugged = None  # authorization first: the session waits for the car
        if plugged is not None:
            evse.plugged = plugged
            evse.session_id = event.get("uuid") if plugged else None

    def error(self, evse_id: int, error: dict[str, Any]) -> None:
        evse = self.by_id[evse_id]
        key = (error.get("type", ""), error.get("sub_type", ""))
        if error.get("state", "Active") == "Active":
            evse.errors[key] = error
        else:
            evse.errors = {k: v for k, v in evse.errors.items() if k[0] != key[0] or key[1] not in ("", k[1])}
