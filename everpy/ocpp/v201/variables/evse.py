"""The EVSE and Connector components: one per EVSE and connector of the module graph (OCPP 2.0.1 Part 2,
§3 and Appendix 3)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Attribute, Scope, Variable
from everpy.ocpp.v201.variables.kinds import R, boolean, decimal, integer, option, ref, string

EVSE = "EVSE"
CONNECTOR = "Connector"
STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
EVSE_ONLY = {"scope": Scope.EVSE, "persistent": False}
CONNECTOR_ONLY = {"scope": Scope.CONNECTOR, "persistent": False}

DEFINITIONS: tuple[Variable, ...] = (
    boolean(EVSE, "Available", True, "The EVSE exists", mutability=R, **EVSE_ONLY),
    option(EVSE, "AvailabilityState", "Available", STATES, "The EVSE's state", mutability=R, **EVSE_ONLY),
    decimal(EVSE, "Power", 0, "Power the EVSE delivers now; MaxSet: the most it can", mutability=R, unit="W",
            attributes=frozenset({Attribute.ACTUAL, Attribute.MAX_SET}), min_limit=0, **EVSE_ONLY),
    integer(EVSE, "SupplyPhases", 3, "Phases the EVSE can use", mutability=R, min_limit=0, max_limit=3,
            **EVSE_ONLY),
    boolean(CONNECTOR, "Available", True, "The connector exists", mutability=R, **CONNECTOR_ONLY),
    option(CONNECTOR, "AvailabilityState", "Available", STATES, "The connector's state", mutability=R,
           **CONNECTOR_ONLY),
    string(CONNECTOR, "ConnectorType", "cType2", "The connector type (ConnectorEnumType)", mutability=R,
           max_length=20, **CONNECTOR_ONLY),
    integer(CONNECTOR, "SupplyPhases", 3, "Phases the connector can use", mutability=R, min_limit=0,
            max_limit=3, **CONNECTOR_ONLY),
)

EVSE_AVAILABILITY_STATE = ref(DEFINITIONS, EVSE, "AvailabilityState")
EVSE_POWER = ref(DEFINITIONS, EVSE, "Power")
CONNECTOR_AVAILABILITY_STATE = ref(DEFINITIONS, CONNECTOR, "AvailabilityState")
CONNECTOR_TYPE = ref(DEFINITIONS, CONNECTOR, "ConnectorType")
