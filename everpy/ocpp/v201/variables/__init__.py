"""Every component and variable definition of the everpy OCPP 2.0.1 station, one file per controller.

``DEFINITIONS`` is what the DeviceModel is built from and what ``docs/ocpp201-device-model.md`` is
generated from (``python -m everpy.ocpp.v201.variables``).
"""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables import auth, charging, comm, evse, firmware, security, tx

DEFINITIONS: tuple[Variable, ...] = (*comm.DEFINITIONS, *security.DEFINITIONS, *auth.DEFINITIONS,
                                     *tx.DEFINITIONS, *charging.DEFINITIONS, *evse.DEFINITIONS,
                                     *firmware.DEFINITIONS)
