"""What each error does to charging. docs/charging.md shows this table to users; keep them in sync.

Every error listed here (and any unknown error from the board or meter) stops power delivery while it
is active: relays open at once, the pilot goes to F for ``state_F_after_fault_ms`` and then to X1, the
session pauses with reason Error and resumes by itself when the last such error clears. Some errors
also end the transaction, with the reason given here. Errors marked ``WARN`` are only logged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorEffect:
    stops_charging: bool
    # When set, the running transaction is finished with this StopTransactionReason.
    ends_transaction_with: str | None = None


PAUSE = ErrorEffect(stops_charging=True)
WARN = ErrorEffect(stops_charging=False)

ERROR_EFFECTS: dict[str, ErrorEffect] = {
    "evse_board_support/DiodeFault": PAUSE,
    "evse_board_support/VentilationNotAvailable": PAUSE,
    "evse_board_support/BrownOut": PAUSE,
    "evse_board_support/EnergyManagement": PAUSE,
    "evse_board_support/PermanentFault": ErrorEffect(True, "Other"),
    "evse_board_support/RCDTriggered": ErrorEffect(True, "GroundFault"),
    "evse_board_support/RCDSelfTestFailed": PAUSE,
    "evse_board_support/MREC2GroundFailure": ErrorEffect(True, "GroundFault"),
    "evse_board_support/MREC3HighTemperature": PAUSE,
    "evse_board_support/MREC4OverCurrentFailure": ErrorEffect(True, "OvercurrentFault"),
    "evse_board_support/MREC5OverVoltage": PAUSE,
    "evse_board_support/MREC6UnderVoltage": PAUSE,
    "evse_board_support/MREC8EmergencyStop": ErrorEffect(True, "EmergencyStop"),
    "evse_board_support/MREC10InvalidVehicleMode": PAUSE,
    "evse_board_support/MREC14PilotFault": PAUSE,
    "evse_board_support/MREC15PowerLoss": ErrorEffect(True, "PowerLoss"),
    "evse_board_support/MREC17EVSEContactorFault": ErrorEffect(True, "Other"),
    "evse_board_support/MREC18CableOverTempDerate": WARN,
    "evse_board_support/MREC19CableOverTempStop": PAUSE,
    "evse_board_support/MREC20PartialInsertion": PAUSE,
    "evse_board_support/MREC23ProximityFault": PAUSE,
    "evse_board_support/MREC24ConnectorVoltageHigh": ErrorEffect(True, "Other"),
    "evse_board_support/MREC25BrokenLatch": PAUSE,
    "evse_board_support/MREC26CutCable": ErrorEffect(True, "Other"),
    "evse_board_support/TiltDetected": PAUSE,
    "evse_board_support/WaterIngressDetected": PAUSE,
    "evse_board_support/EnclosureOpen": PAUSE,
    "evse_board_support/VendorError": PAUSE,
    "evse_board_support/VendorWarning": WARN,
    "evse_board_support/CommunicationFault": PAUSE,
    "evse_manager/MREC4OverCurrentFailure": ErrorEffect(True, "OvercurrentFault"),
    "evse_manager/Internal": PAUSE,
    "evse_manager/BoardCommandsFailing": PAUSE,
    "evse_manager/PowermeterTransactionStartFailed": PAUSE,
    "evse_manager/PowermeterLost": PAUSE,
}


def effect_of(error_type: str) -> ErrorEffect:
    """Unknown errors stop charging: a charger must not keep power on for a fault it does not know."""
    return ERROR_EFFECTS.get(error_type, PAUSE)
