"""The connectors of a 1.6 station and the one rule that turns their state into an OCPP status."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

# everpy error type (without namespace) -> OCPP 1.6 ChargePointErrorCode
ERROR_CODES = {
    "MREC2GroundFailure": "GroundFailure", "RCDTriggered": "GroundFailure", "MREC3HighTemperature": "HighTemperature",
    "MREC19CableOverTempStop": "HighTemperature", "MREC4OverCurrentFailure": "OverCurrentFailure",
    "MREC5OverVoltage": "OverVoltage", "MREC6UnderVoltage": "UnderVoltage", "PowermeterLost": "PowerMeterFailure",
    "MREC17EVSEContactorFault": "PowerSwitchFailure", "MREC25BrokenLatch": "ConnectorLockFailure",
    "MREC14PilotFault": "EVCommunicationError", "DiodeFault": "EVCommunicationError",
    "MREC10InvalidVehicleMode": "EVCommunicationError", "CommunicationFault": "InternalError",
    "Internal": "InternalError",
}  # fmt: skip
# Every session event of the evse_manager interface -> the connector's status while the session runs.
# None ends the session (the idle status applies); KEEP leaves the status as it is (the event says
# nothing about the connector). A table test checks that every event of the interface is here.
KEEP = "keep"
SESSION_STATUS: dict[str, str | None] = {
    "SessionStarted": "Preparing", "AuthRequired": "Preparing", "Authorized": "Preparing",
    "TransactionStarted": "Preparing", "PrepareCharging": "Preparing", "ChargingStarted": "Charging",
    "ChargingResumed": "Charging", "SessionResumed": "Charging", "ChargingPausedEV": "SuspendedEV",
    "ChargingPausedEVSE": "SuspendedEVSE", "StoppingCharging": "Finishing", "ChargingFinished": "Finishing",
    "TransactionFinished": "Finishing", "SessionFinished": None,
    # no transaction existed: straight back to the idle status, never through Finishing
    "PluginTimeout": None,
    "Deauthorized": KEEP, "Enabled": KEEP, "Disabled": KEEP, "ReservationStart": KEEP, "ReservationEnd": KEEP,
    "SwitchingPhases": KEEP,
}  # fmt: skip


@dataclass
class Transaction:
    tx_key: str
    id_tag: str
    start_time: float
    meter_start: int
    parent_id_tag: str | None = None
    stop_samples: list[dict[str, Any]] = field(default_factory=list)
    sampler: asyncio.Task[None] | None = None
    last_sent_wh: int | None = None  # the highest energy already sent to the CSMS in this transaction


@dataclass
class Connector:
    id: int
    session_status: str | None = None  # Preparing/Charging/... while a session runs
    operative: bool = True
    scheduled_operative: bool | None = None
    errors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reservation_id: int | None = None
    transaction: Transaction | None = None
    reading: dict[str, Any] | None = None


class Connectors:
    """State of the station (connector 0) and each connector; status_of is the only status rule."""

    def __init__(self, connector_ids: list[int]) -> None:
        self.by_id = {c: Connector(c) for c in connector_ids}
        self.station_operative = True

    def __contains__(self, connector_id: object) -> bool:
        return connector_id in self.by_id

    def __iter__(self) -> Any:
        return iter(self.by_id.values())

    def __getitem__(self, connector_id: int) -> Connector:
        return self.by_id[connector_id]

    def get(self, connector_id: int | None) -> Connector | None:
        return None if connector_id is None else self.by_id.get(connector_id)

    def ids(self) -> list[int]:
        return list(self.by_id)

    def any_transaction(self) -> bool:
        return any(c.transaction is not None for c in self.by_id.values())

    def status_of(self, connector_id: int) -> tuple[str, str, dict[str, Any] | None]:
        """(status, errorCode, error) of a connector (0 = the station)."""
        if connector_id == 0:
            return ("Available" if self.station_operative else "Unavailable"), "NoError", None
        c = self.by_id[connector_id]
        if c.errors:
            error = next(iter(c.errors.values()))
            name = error.get("type", "").rsplit("/", 1)[-1]
            return "Faulted", ERROR_CODES.get(name, "OtherError"), error
        if c.transaction is None and not (c.operative and self.station_operative):
            # Inoperative takes effect once no transaction runs: when it ends (a Scheduled change), not
            # when the car is unplugged; a car plugged in without a transaction does not hide it
            return "Unavailable", "NoError", None
        if c.reservation_id is not None and c.transaction is None:
            # someone else's car at a reserved connector does not take it (1.6 §5.13)
            return "Reserved", "NoError", None
        if c.session_status is not None:
            return c.session_status, "NoError", None
        return "Available", "NoError", None
