"""TxCtrlr, SampledDataCtrlr and AlignedDataCtrlr: when a transaction starts and stops and which meter
values go with it (OCPP 2.0.1 Part 2, Appendix 3; functional blocks E and J)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import boolean, integer, members, ref

TX = "TxCtrlr"
SAMPLED = "SampledDataCtrlr"
ALIGNED = "AlignedDataCtrlr"
# TxStart/StopPoint values this station can reach: ParkingBayOccupancy (no bay sensor) and DataSigned (no
# signed meter data) are left out, so SetVariables refuses a start point that would never come
TX_POINTS = ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")
# what the everpy powermeter interface can deliver (the measurands of a Powermeter reading)
MEASURANDS = ("Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
              "Power.Active.Export", "Current.Import", "Current.Export", "Voltage", "Frequency", "Current.Offered")

DEFINITIONS: tuple[Variable, ...] = (
    integer(TX, "EVConnectionTimeOut", 60, "Seconds an authorization waits for the EV to be plugged in (the"
            " Auth module takes 10 s at least)", unit="s", min_limit=10, max_limit=3600),
    boolean(TX, "StopTxOnEVSideDisconnect", True, "Unplugging on the EV side ends the transaction"),
    boolean(TX, "StopTxOnInvalidId", True, "A token the CSMS declares invalid during the transaction ends it"),
    integer(TX, "MaxEnergyOnInvalidId", 0, "Wh an offline-started transaction may still charge once its token"
            " proves invalid (0 = stop at once)", unit="Wh", min_limit=0),
    members(TX, "TxStartPoint", "PowerPathClosed", TX_POINTS, "Events that start a transaction"),
    members(TX, "TxStopPoint", "EVConnected,Authorized", TX_POINTS, "Events that end a transaction"),
    members(SAMPLED, "TxStartedMeasurands", "Energy.Active.Import.Register", MEASURANDS,
            "Meter values in TransactionEvent Started"),
    members(SAMPLED, "TxUpdatedMeasurands", "Energy.Active.Import.Register,Power.Active.Import", MEASURANDS,
            "Meter values in TransactionEvent Updated"),
    integer(SAMPLED, "TxUpdatedInterval", 60, "Seconds between sampled meter values during a transaction"
            " (0 = none)", unit="s", min_limit=0, max_limit=86400),
    members(SAMPLED, "TxEndedMeasurands", "Energy.Active.Import.Register", MEASURANDS,
            "Meter values in TransactionEvent Ended"),
    integer(SAMPLED, "TxEndedInterval", 0, "Seconds between the samples kept for TransactionEvent Ended"
            " (0 = only start and end)", unit="s", min_limit=0, max_limit=86400),
    integer(ALIGNED, "Interval", 0, "Seconds between clock-aligned meter values (0 = none)", unit="s",
            min_limit=0, max_limit=86400),
    members(ALIGNED, "Measurands", "Energy.Active.Import.Register", MEASURANDS, "Clock-aligned meter values"),
    boolean(ALIGNED, "SendDuringIdle", False, "Send clock-aligned meter values only when no transaction runs"),
    members(ALIGNED, "TxEndedMeasurands", "Energy.Active.Import.Register", MEASURANDS,
            "Clock-aligned values kept for TransactionEvent Ended"),
    integer(ALIGNED, "TxEndedInterval", 0, "Seconds between the clock-aligned samples of TransactionEvent Ended",
            unit="s", min_limit=0, max_limit=86400),
)

TX_START_POINT = ref(DEFINITIONS, TX, "TxStartPoint")
TX_STOP_POINT = ref(DEFINITIONS, TX, "TxStopPoint")
EV_CONNECTION_TIMEOUT = ref(DEFINITIONS, TX, "EVConnectionTimeOut")
MAX_ENERGY_ON_INVALID_ID = ref(DEFINITIONS, TX, "MaxEnergyOnInvalidId")
STOP_TX_ON_INVALID_ID = ref(DEFINITIONS, TX, "StopTxOnInvalidId")
TX_UPDATED_INTERVAL = ref(DEFINITIONS, SAMPLED, "TxUpdatedInterval")
ALIGNED_INTERVAL = ref(DEFINITIONS, ALIGNED, "Interval")
STOP_TX_ON_EV_SIDE_DISCONNECT = ref(DEFINITIONS, TX, "StopTxOnEVSideDisconnect")
TX_STARTED_MEASURANDS = ref(DEFINITIONS, SAMPLED, "TxStartedMeasurands")
TX_UPDATED_MEASURANDS = ref(DEFINITIONS, SAMPLED, "TxUpdatedMeasurands")
TX_ENDED_MEASURANDS = ref(DEFINITIONS, SAMPLED, "TxEndedMeasurands")
TX_ENDED_INTERVAL = ref(DEFINITIONS, SAMPLED, "TxEndedInterval")
ALIGNED_MEASURANDS = ref(DEFINITIONS, ALIGNED, "Measurands")
ALIGNED_SEND_DURING_IDLE = ref(DEFINITIONS, ALIGNED, "SendDuringIdle")
ALIGNED_TX_ENDED_MEASURANDS = ref(DEFINITIONS, ALIGNED, "TxEndedMeasurands")
ALIGNED_TX_ENDED_INTERVAL = ref(DEFINITIONS, ALIGNED, "TxEndedInterval")
