"""OCPPCommCtrlr, DeviceDataCtrlr, ClockCtrlr, ChargingStation and CustomizationCtrlr: the link to the CSMS,
per-message limits and the station itself (OCPP 2.0.1 Part 2, Appendix 3 / referenced components)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import R, boolean, integer, members, option, ref, string

COMM = "OCPPCommCtrlr"
DEVICE_DATA = "DeviceDataCtrlr"
CLOCK = "ClockCtrlr"
STATION = "ChargingStation"
DAY_S = 86400
FILE_TRANSFER_PROTOCOLS = ("FTP", "FTPS", "HTTP", "HTTPS")  # what the System module transfers with
MESSAGES_WITH_LIMITS = ("GetReport", "GetVariables", "SetVariables")


def _priority_check(value: str) -> str | None:
    slots = [part.strip() for part in value.split(",") if part.strip()]
    if not all(slot.isdigit() and int(slot) <= 8 for slot in slots):
        return "not a list of configuration slots 0..8"
    if len(set(slots)) != len(slots):
        return "a slot is named twice"
    return None


DEFINITIONS: tuple[Variable, ...] = (
    integer(COMM, "HeartbeatInterval", 300, "Seconds between Heartbeats when nothing else is sent (a Boot answer"
            " sets it)", unit="s", min_limit=1, max_limit=DAY_S),
    integer(COMM, "MessageTimeout", 30, "Seconds to wait for the answer to a CALL", instance="Default", unit="s",
            min_limit=1, max_limit=600, mutability=R),
    integer(COMM, "MessageAttempts", 3, "How often a TransactionEvent the CSMS failed to process is sent",
            instance="TransactionEvent", min_limit=1, max_limit=10),
    integer(COMM, "MessageAttemptInterval", 60, "Seconds before the 2nd attempt of a TransactionEvent; the n-th"
            " waits (n-1) times this", instance="TransactionEvent", unit="s", min_limit=1, max_limit=DAY_S),
    string(COMM, "NetworkConfigurationPriority", "0", "Configuration slots of SetNetworkProfile in the order they"
           " are tried (slot 0 is the module's configured CSMS)", check=_priority_check, max_length=32),
    integer(COMM, "NetworkProfileConnectionAttempts", 3, "Failed connection attempts before the next profile of"
            " NetworkConfigurationPriority is tried", min_limit=1, max_limit=100),
    integer(COMM, "OfflineThreshold", 60, "After an outage longer than this, all connector statuses are sent"
            " again on reconnect", unit="s", min_limit=0, max_limit=DAY_S),
    boolean(COMM, "QueueAllMessages", False, "Also queue non-transaction messages while offline"),
    integer(COMM, "ResetRetries", 2, "How often a failed reset is retried", min_limit=0, max_limit=10),
    integer(COMM, "RetryBackOffRandomRange", 10, "Largest random addition to the reconnect wait", unit="s",
            min_limit=0, max_limit=3600),
    integer(COMM, "RetryBackOffRepeatTimes", 5, "How often the reconnect wait doubles before it stays",
            min_limit=0, max_limit=20),
    integer(COMM, "RetryBackOffWaitMinimum", 3, "The first reconnect wait", unit="s", min_limit=0, max_limit=3600),
    boolean(COMM, "UnlockOnEVSideDisconnect", True, "Unlock the cable when the EV unplugs", mutability=R),
    integer(COMM, "WebSocketPingInterval", 30, "Seconds between websocket pings (0 = none)", unit="s",
            min_limit=0, max_limit=DAY_S),
    members(COMM, "FileTransferProtocols", ",".join(FILE_TRANSFER_PROTOCOLS), FILE_TRANSFER_PROTOCOLS,
            "Protocols for firmware and log transfers", mutability=R),
    integer(COMM, "ActiveNetworkProfile", 0, "The configuration slot in use", mutability=R, min_limit=0,
            max_limit=8, persistent=False),
    *(integer(DEVICE_DATA, "ItemsPerMessage", 50, f"Most entries a {message} request may hold",
              instance=message, mutability=R, min_limit=1) for message in MESSAGES_WITH_LIMITS),
    *(integer(DEVICE_DATA, "BytesPerMessage", 65000, f"Largest {message} request in bytes", instance=message,
              mutability=R, min_limit=1) for message in MESSAGES_WITH_LIMITS),
    string(CLOCK, "DateTime", None, "The station's current time", mutability=R, persistent=False),
    members(CLOCK, "TimeSource", "Heartbeat", ("Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork",
            "RadioTimeTransmitter"), "Where the station takes its time from"),
    boolean(STATION, "Available", True, "The station exists and is reachable", mutability=R, persistent=False),
    option(STATION, "AvailabilityState", "Available", ("Available", "Occupied", "Reserved", "Unavailable",
           "Faulted"), "The station's state: Unavailable when set Inoperative", mutability=R, persistent=False),
    integer(STATION, "SupplyPhases", 3, "Phases the station is connected to", mutability=R, min_limit=0, max_limit=3),
    string(STATION, "Model", None, "chargingStation.model of the BootNotification", mutability=R, persistent=False),
    string(STATION, "VendorName", None, "chargingStation.vendorName of the BootNotification", mutability=R,
           persistent=False),
    string(STATION, "SerialNumber", None, "chargingStation.serialNumber of the BootNotification", mutability=R,
           persistent=False),
    string(STATION, "FirmwareVersion", None, "chargingStation.firmwareVersion of the BootNotification",
           mutability=R, persistent=False),
)

HEARTBEAT_INTERVAL = ref(DEFINITIONS, COMM, "HeartbeatInterval")
MESSAGE_TIMEOUT = ref(DEFINITIONS, COMM, "MessageTimeout", "Default")
MESSAGE_ATTEMPTS = ref(DEFINITIONS, COMM, "MessageAttempts", "TransactionEvent")
MESSAGE_ATTEMPT_INTERVAL = ref(DEFINITIONS, COMM, "MessageAttemptInterval", "TransactionEvent")
NETWORK_CONFIGURATION_PRIORITY = ref(DEFINITIONS, COMM, "NetworkConfigurationPriority")
NETWORK_PROFILE_CONNECTION_ATTEMPTS = ref(DEFINITIONS, COMM, "NetworkProfileConnectionAttempts")
OFFLINE_THRESHOLD = ref(DEFINITIONS, COMM, "OfflineThreshold")
QUEUE_ALL_MESSAGES = ref(DEFINITIONS, COMM, "QueueAllMessages")
RESET_RETRIES = ref(DEFINITIONS, COMM, "ResetRetries")
RETRY_BACKOFF_RANDOM_RANGE = ref(DEFINITIONS, COMM, "RetryBackOffRandomRange")
RETRY_BACKOFF_REPEAT_TIMES = ref(DEFINITIONS, COMM, "RetryBackOffRepeatTimes")
RETRY_BACKOFF_WAIT_MINIMUM = ref(DEFINITIONS, COMM, "RetryBackOffWaitMinimum")
WEBSOCKET_PING_INTERVAL = ref(DEFINITIONS, COMM, "WebSocketPingInterval")
FILE_TRANSFER_PROTOCOLS_VARIABLE = ref(DEFINITIONS, COMM, "FileTransferProtocols")
ACTIVE_NETWORK_PROFILE = ref(DEFINITIONS, COMM, "ActiveNetworkProfile")
DATE_TIME = ref(DEFINITIONS, CLOCK, "DateTime")
STATION_AVAILABILITY_STATE = ref(DEFINITIONS, STATION, "AvailabilityState")


def items_per_message(message: str) -> Variable:
    return next(d for d in DEFINITIONS if d.name == "ItemsPerMessage" and d.instance == message)


def bytes_per_message(message: str) -> Variable:
    return next(d for d in DEFINITIONS if d.name == "BytesPerMessage" and d.instance == message)
