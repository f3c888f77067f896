"""SmartChargingCtrlr and ReservationCtrlr (OCPP 2.0.1 Part 2, Appendix 3; functional blocks K and H)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import R, boolean, decimal, integer, members, ref

SMART = "SmartChargingCtrlr"
RESERVATION = "ReservationCtrlr"

DEFINITIONS: tuple[Variable, ...] = (
    boolean(SMART, "Enabled", True, "Smart charging is supported"),
    integer(SMART, "Entries", 0, "Installed charging profiles", mutability=R, min_limit=0, persistent=False,
            instance="ChargingProfiles"),
    decimal(SMART, "LimitChangeSignificance", 10.0, "Percentage of change of a local limit that is reported",
            unit="Percent", min_limit=0, max_limit=100),
    integer(SMART, "PeriodsPerSchedule", 24, "Most periods a schedule may hold", mutability=R, min_limit=1),
    integer(SMART, "ProfileStackLevel", 8, "Highest stack level of a profile", mutability=R, min_limit=0),
    members(SMART, "RateUnit", "A,W", ("A", "W"), "Units a charging schedule may use", mutability=R),
    boolean(SMART, "ExternalControlSignalsEnabled", False, "External limits are applied and reported"),
    boolean(RESERVATION, "Available", True, "Reservations are supported", mutability=R, persistent=False),
    boolean(RESERVATION, "Enabled", True, "ReserveNow is accepted (false: every reservation is Rejected)"),
    boolean(RESERVATION, "NonEvseSpecific", True, "A reservation need not name an EVSE"),
)

SMART_CHARGING_ENABLED = ref(DEFINITIONS, SMART, "Enabled")
SMART_CHARGING_ENTRIES = ref(DEFINITIONS, SMART, "Entries", "ChargingProfiles")
SMART_CHARGING_PERIODS_PER_SCHEDULE = ref(DEFINITIONS, SMART, "PeriodsPerSchedule")
SMART_CHARGING_PROFILE_STACK_LEVEL = ref(DEFINITIONS, SMART, "ProfileStackLevel")
SMART_CHARGING_RATE_UNIT = ref(DEFINITIONS, SMART, "RateUnit")
RESERVATION_ENABLED = ref(DEFINITIONS, RESERVATION, "Enabled")
RESERVATION_NON_EVSE_SPECIFIC = ref(DEFINITIONS, RESERVATION, "NonEvseSpecific")
