"""Firmware management (functional block L): whether new sessions may start while an update waits for the
running transactions to end (OCPP 2.0.1 L01.FR.06/07). The spec names the variable on the ChargingStation
component; there is no FirmwareCtrlr in 2.0.1."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import boolean, ref

STATION = "ChargingStation"

DEFINITIONS: tuple[Variable, ...] = (
    boolean(STATION, "AllowNewSessionsPendingFirmwareUpdate", False, "While a downloaded firmware waits for the"
            " running transactions to end, idle EVSEs stay available for new sessions (false: they are set"
            " Unavailable)"),
)

ALLOW_NEW_SESSIONS_PENDING_FIRMWARE_UPDATE = ref(DEFINITIONS, STATION, "AllowNewSessionsPendingFirmwareUpdate")
