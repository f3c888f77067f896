"""Functional block B (provisioning) of OCPP 2.0.1 against a fake context: Get/SetVariables with their
per-message limits, the Basic-auth password reconnect, base and custom reports with their NotifyReport pages,
Reset of the station and of an EVSE (Immediate and OnIdle), the boot reason across a restart, and the module's
local commands. Every message is checked against the official 2.0.1 schemas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.blocks import Signal
from everpy.ocpp.rpc import OcppCallError, Reply
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.provisioning import BOOT_KIND, BOOT_RECORD, RESET_STOP_TIMEOUT_S, Provisioning
from everpy.ocpp.v201.variables.charging import SMART_CHARGING_ENABLED
from everpy.ocpp.v201.variables.comm import HEARTBEAT_INTERVAL
from everpy.ocpp.v201.variables.security import BASIC_AUTH_PASSWORD
from everpy.ocpp.values import EvseRef, ResetKind, ResetRequest, ResetWhen

from .fakes import Fixture, block_context

PASSWORD = {"name": "SecurityCtrlr"}, {"name": "BasicAuthPassword"}
HEARTBEAT = {"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"}


class Transactions:
    """The transactions block's two parts provisioning uses: stop (the charger ends the transaction, its end
    is signalled) and the ended signal."""

    def __init__(self, evses: Evses) -> None:
        self.evses = evses
        self.ended: Signal[int] = Signal()
        self.stops: list[tuple[int, str]] = []
        self.ends_on_stop = True

    def start(self, evse_id: int) -> None:
        self.evses[evse_id].transaction_id = f"tx-{evse_id}"

    def end(self, evse_id: int) -> None:
        self.evses[evse_id].transaction_id = None
        self.ended.emit(evse_id)

    async def stop(self, evse_id: int, reason: str) -> bool:
        self.stops.append((evse_id, reason))
        if self.ends_on_stop:
            self.end(evse_id)
        return True


class Events:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        self.kinds.append(kind)


class Block:
    def __init__(self, tmp_path: Path, evse_ids: list[int] | None = None, variables: dict[str, str] | None = None,
                 fx: Fixture | None = None) -> None:
        self.fx = fx or block_context(tmp_path, evse_ids, variables)
        self.transactions = Transactions(self.fx.evses)
        self.events = Events()
        self.block = Provisioning(self.fx.ctx, self.fx.evses, self.transactions, self.events)

    async def call(self, action: str, payload: dict[str, Any], *, run_after: bool = True) -> dict[str, Any]:
        """The handler as the RPC layer runs it: request and answer schema-checked, then the work after."""
        DIALECT.check(action, payload, response=False)
        handler = {"GetVariables": self.block.on_get_variables, "SetVariables": self.block.on_set_variables,
                   "GetBaseReport": self.block.on_get_base_report, "GetReport": self.block.on_get_report,
                   "Reset": self.block.on_reset}[action]
        reply = await handler(payload)
        assert isinstance(reply, Reply), "the RPC layer takes a Reply"
        DIALECT.check(action, reply.payload, response=True)
        if run_after and reply.after is not None:
            await reply.after()
            await self.fx.ctx.jobs.wait_idle()
        return reply.payload

    def reports(self) -> list[dict[str, Any]]:
        reports = self.fx.sender.of("NotifyReport")
        for report in reports:
            DIALECT.check("NotifyReport", report, response=False)
        return reports


def get(component: dict[str, Any], variable: dict[str, Any], attribute: str | None = None) -> dict[str, Any]:
    return {"component": component, "variable": variable} | ({"attributeType": attribute} if attribute else {})


def put(component: dict[str, Any], variable: dict[str, Any], value: str, attribute: str | None = None
        ) -> dict[str, Any]:
    return get(component, variable, attribute) | {"attributeValue": value}


# -- GetVariables ----------------------------------------------------------------------------------------
async def test_get_variables_answers_each_entry(tmp_path):
    """TC_B_06_CS TC_B_07_CS TC_B_32_CS TC_B_33_CS TC_B_34_CS: one value, several values, an unknown component,
    an unknown variable and an attribute the variable does not have, each in its own result."""
    b = Block(tmp_path, [1, 2])
    answer = await b.call("GetVariables", {"getVariableData": [
        get(*HEARTBEAT),
        get({"name": "EVSE", "evse": {"id": 2}}, {"name": "AvailabilityState"}),
        get({"name": "NoSuchCtrlr"}, {"name": "Enabled"}),
        get({"name": "OCPPCommCtrlr"}, {"name": "NoSuchVariable"}),
        get(*HEARTBEAT, attribute="Target"),
        get({"name": "EVSE", "evse": {"id": 7}}, {"name": "AvailabilityState"}),
    ]})
    results = answer["getVariableResult"]
    assert [r["attributeStatus"] for r in results] == ["Accepted", "Accepted", "UnknownComponent",
                                                       "UnknownVariable", "NotSupportedAttributeType",
                                                       "UnknownComponent"]
    assert results[0]["attributeValue"] == "300" and results[1]["attributeValue"] == "Available"
    assert results[1]["component"] == {"name": "EVSE", "evse": {"id": 2}}
    assert all("attributeValue" not in r for r in results[2:])


async def test_a_write_only_value_is_never_read(tmp_path):
    """TC_B_06_CS (write-only variant, A01): the password is Rejected on read, with a reason, never shown."""
    b = Block(tmp_path, variables={"SecurityCtrlr.BasicAuthPassword": "a-secret-of-16-chars"})
    result = (await b.call("GetVariables", {"getVariableData": [get(*PASSWORD)]}))["getVariableResult"][0]
    assert result["attributeStatus"] == "Rejected" and "attributeValue" not in result
    assert result["attributeStatusInfo"]["reasonCode"] == "WriteOnly"


async def test_an_unset_value_is_reported_without_a_value(tmp_path):
    """TC_B_06_CS: ClockCtrlr.DateTime has no value until the station sets it: Accepted without a made-up one."""
    b = Block(tmp_path)
    result = (await b.call("GetVariables", {"getVariableData": [get({"name": "ClockCtrlr"}, {"name": "DateTime"})]}
                           ))["getVariableResult"][0]
    assert result["attributeStatus"] == "Accepted" and "attributeValue" not in result


@pytest.mark.parametrize("message", ["GetVariables", "SetVariables"])
async def test_more_entries_than_items_per_message_is_an_occurrence_violation(tmp_path, message):
    """TC_B_08_CS: more entries than DeviceDataCtrlr.ItemsPerMessage of the message: CALLERROR
    OccurrenceConstraintViolation; at the limit every entry is answered."""
    b = Block(tmp_path)
    limit = b.fx.model.int(next(d.ref for d in b.fx.model.definitions
                                if d.name == "ItemsPerMessage" and d.instance == message))
    entry = get(*HEARTBEAT) if message == "GetVariables" else put(*HEARTBEAT, "300")
    field = "getVariableData" if message == "GetVariables" else "setVariableData"
    with pytest.raises(OcppCallError) as error:
        await b.call(message, {field: [entry] * (limit + 1)})
    assert DIALECT.codes[error.value.code] == "OccurrenceConstraintViolation"
    answer = await b.call(message, {field: [entry] * limit})
    assert len(next(iter(answer.values()))) == limit


@pytest.mark.parametrize("message", ["GetVariables", "SetVariables"])
async def test_a_request_over_bytes_per_message_is_a_format_violation(tmp_path, message):
    """TC_B_08_CS (bytes): a request longer than DeviceDataCtrlr.BytesPerMessage of the message: CALLERROR
    FormatViolation, nothing set."""
    b = Block(tmp_path)
    bytes_ref = next(d.ref for d in b.fx.model.definitions if d.name == "BytesPerMessage" and d.instance == message)
    b.fx.model.set_internal(bytes_ref, "200")
    field = "getVariableData" if message == "GetVariables" else "setVariableData"
    entries = [get(*HEARTBEAT) if message == "GetVariables" else put(*HEARTBEAT, str(100 + n)) for n in range(5)]
    with pytest.raises(OcppCallError) as error:
        await b.call(message, {field: entries})
    assert DIALECT.codes[error.value.code] == "FormatViolation"
    assert b.fx.model.str(HEARTBEAT_INTERVAL) == "300"
    assert len(next(iter((await b.call(message, {field: entries[:1]})).values()))) == 1


# -- SetVariables ----------------------------------------------------------------------------------------


async def test_set_variables_answers_each_entry_and_persists(tmp_path):
    """TC_B_09_CS TC_B_10_CS TC_B_35_CS TC_B_36_CS TC_B_37_CS TC_B_11_CS TC_B_39_CS: set one and several values;
    unknown component / variable, an attribute it lacks, a malformed value and a read-only variable get their
    own status; what was accepted is there after a restart."""
    b = Block(tmp_path)
    answer = await b.call("SetVariables", {"setVariableData": [
        put(*HEARTBEAT, "120"),
        put({"name": "OCPPCommCtrlr"}, {"name": "OfflineThreshold"}, "30"),
        put({"name": "NoSuchCtrlr"}, {"name": "Enabled"}, "true"),
        put({"name": "OCPPCommCtrlr"}, {"name": "NoSuchVariable"}, "1"),
        put(*HEARTBEAT, "120", attribute="MaxSet"),
        put({"name": "OCPPCommCtrlr"}, {"name": "WebSocketPingInterval"}, "often"),
        put({"name": "OCPPCommCtrlr"}, {"name": "MessageTimeout", "instance": "Default"}, "10"),
    ]})
    results = answer["setVariableResult"]
    assert [r["attributeStatus"] for r in results] == ["Accepted", "Accepted", "UnknownComponent",
                                                       "UnknownVariable", "NotSupportedAttributeType", "Rejected",
                                                       "Rejected"]
    assert results[5]["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert results[6]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    restarted = Block(tmp_path, fx=block_context(tmp_path, store=b.fx.store))
    read = await restarted.call("GetVariables", {"getVariableData": [
        get(*HEARTBEAT), get({"name": "OCPPCommCtrlr"}, {"name": "WebSocketPingInterval"})]})
    assert [r["attributeValue"] for r in read["getVariableResult"]] == ["120", "30"]


async def test_max_set_of_a_read_only_variable_is_read_not_set(tmp_path):
    """TC_B_09_CS (attributes): EVSE.Power has MaxSet besides Actual; MaxSet is read-only like the variable."""
    b = Block(tmp_path)
    evse_power = {"name": "EVSE", "evse": {"id": 1}}, {"name": "Power"}
    result = (await b.call("SetVariables", {"setVariableData": [put(*evse_power, "11000", "MaxSet")]}
                           ))["setVariableResult"][0]
    assert result["attributeStatus"] == "Rejected" and result["attributeType"] == "MaxSet"
    got = (await b.call("GetVariables", {"getVariableData": [get(*evse_power, "MaxSet")]}))["getVariableResult"][0]
    assert got["attributeStatus"] == "Accepted" and "attributeValue" not in got


async def test_a_new_basic_auth_password_reconnects_after_the_answer(tmp_path):
    """TC_A_09_CS TC_A_10_CS (B05): SetVariables of SecurityCtrlr.BasicAuthPassword: Accepted, and only after
    the answer the station reconnects (with the new password); a refused password does not reconnect."""
    b = Block(tmp_path, variables={"SecurityCtrlr.SecurityProfile": "1"})
    short = await b.call("SetVariables", {"setVariableData": [put(*PASSWORD, "short")]})
    assert short["setVariableResult"][0]["attributeStatus"] == "Rejected" and b.fx.sender.reconnects == 0
    answer = await b.call("SetVariables", {"setVariableData": [put(*PASSWORD, "a-new-secret-16chars")]},
                          run_after=False)
    assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert b.fx.sender.reconnects == 0, "the reconnect must wait for the answer"
    reply = await b.block.on_set_variables({"setVariableData": [put(*PASSWORD, "another-secret-16ch")]})
    assert isinstance(reply, Reply) and reply.after is not None
    await reply.after()
    assert b.fx.sender.reconnects == 1
    assert b.fx.model.str(BASIC_AUTH_PASSWORD) == "another-secret-16ch"


async def test_a_new_password_without_basic_auth_needs_no_reconnect(tmp_path):
    """TC_A_09_CS (profile 0 or 3): the password is kept for a later Basic-auth profile; the link stays."""
    b = Block(tmp_path)
    answer = await b.call("SetVariables", {"setVariableData": [put(*PASSWORD, "a-new-secret-16chars")]})
    assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted" and b.fx.sender.reconnects == 0
    assert b.fx.model.str(BASIC_AUTH_PASSWORD) == "a-new-secret-16chars"


# -- reports ---------------------------------------------------------------------------------------------
async def test_full_inventory_is_paged_by_items_per_message(tmp_path):
    """TC_B_13_CS TC_B_53_CS: FullInventory: Accepted, then NotifyReport pages of at most
    ItemsPerMessage[GetReport] entries, seqNo 0.., tbc on all but the last, every variable of every EVSE."""
    b = Block(tmp_path, [1, 2], variables={"DeviceDataCtrlr.ItemsPerMessage[GetReport]": "7"})
    answer = await b.call("GetBaseReport", {"requestId": 42, "reportBase": "FullInventory"})
    assert answer == {"status": "Accepted"}
    reports = b.reports()
    expected = len(b.fx.model.report_data())
    assert len(reports) == -(-expected // 7) > 1
    assert [r["seqNo"] for r in reports] == list(range(len(reports)))
    assert [r["tbc"] for r in reports] == [True] * (len(reports) - 1) + [False]
    assert all(r["requestId"] == 42 and len(r["reportData"]) <= 7 for r in reports)
    entries = [e for r in reports for e in r["reportData"]]
    assert len(entries) == expected
    evse_states = [e for e in entries
                   if e["component"]["name"] == "EVSE" and e["variable"]["name"] == "AvailabilityState"]
    assert [e["component"]["evse"] for e in evse_states] == [{"id": 1}, {"id": 2}]
    password = next(e for e in entries if e["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variableAttribute"][0]


async def test_configuration_inventory_holds_only_what_can_be_set(tmp_path):
    """TC_B_12_CS: ConfigurationInventory: only variables the CSMS may set (no ReadOnly)."""
    b = Block(tmp_path)
    assert await b.call("GetBaseReport", {"requestId": 1, "reportBase": "ConfigurationInventory"}) \
        == {"status": "Accepted"}
    entries = [e for r in b.reports() for e in r["reportData"]]
    assert entries and all(a["mutability"] != "ReadOnly" for e in entries for a in e["variableAttribute"])
    assert any(e["variable"]["name"] == "HeartbeatInterval" for e in entries)
    assert not any(e["variable"]["name"] == "MessageTimeout" for e in entries)


async def test_summary_inventory_reports_the_state_of_the_components(tmp_path):
    """TC_B_12_CS (SummaryInventory variant; TC_B_15_CS: every base report is supported): the availability of
    the station, each EVSE and each connector."""
    b = Block(tmp_path, [1, 2])
    assert await b.call("GetBaseReport", {"requestId": 3, "reportBase": "SummaryInventory"}) == {"status": "Accepted"}
    entries = [e for r in b.reports() for e in r["reportData"]]
    assert {e["variable"]["name"] for e in entries} <= {"Available", "AvailabilityState", "Problem"}
    assert {(e["component"]["name"], e["variable"]["name"]) for e in entries} >= {
        ("ChargingStation", "AvailabilityState"), ("EVSE", "AvailabilityState"), ("Connector", "AvailabilityState")}


async def test_get_report_filters_by_component_and_variable(tmp_path):
    """TC_B_13_CS (GetReport, B08): componentVariable names one variable, a whole component, or one EVSE of a
    per-EVSE component; what names nothing answers EmptyResultSet and sends no report."""
    b = Block(tmp_path, [1, 2])
    await b.call("GetReport", {"requestId": 1, "componentVariable": [{"component": {"name": "OCPPCommCtrlr"},
                                                                      "variable": {"name": "HeartbeatInterval"}}]})
    [report] = b.reports()
    assert [(e["component"], e["variable"]) for e in report["reportData"]] == [
        ({"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"})]
    await b.call("GetReport", {"requestId": 2, "componentVariable": [{"component": {"name": "EVSE",
                                                                                    "evse": {"id": 2}}}]})
    second = b.reports()[1]["reportData"]
    assert second and all(e["component"] == {"name": "EVSE", "evse": {"id": 2}} for e in second)
    nothing = await b.call("GetReport", {"requestId": 3, "componentVariable": [{"component": {"name": "Nope"}}]})
    assert nothing == {"status": "EmptyResultSet"} and len(b.reports()) == 2


async def test_get_report_filters_by_component_criteria(tmp_path):
    """TC_B_13_CS (componentCriteria, B08.FR.07-10): Enabled reports the components whose Enabled is true (or
    that have none); Problem only those with a Problem that is true: none here."""
    b = Block(tmp_path)
    b.fx.model.set_internal(SMART_CHARGING_ENABLED, "false")
    await b.call("GetReport", {"requestId": 1, "componentCriteria": ["Enabled"]})
    components = {e["component"]["name"] for r in b.reports() for e in r["reportData"]}
    assert "SmartChargingCtrlr" not in components and {"AuthCtrlr", "OCPPCommCtrlr"} <= components
    assert await b.call("GetReport", {"requestId": 2, "componentCriteria": ["Problem"]}) \
        == {"status": "EmptyResultSet"}


async def test_get_report_with_too_many_component_variables_is_refused(tmp_path):
    """TC_B_08_CS (GetReport): more componentVariable entries than ItemsPerMessage[GetReport]: CALLERROR
    OccurrenceConstraintViolation."""
    b = Block(tmp_path, variables={"DeviceDataCtrlr.ItemsPerMessage[GetReport]": "2"})
    with pytest.raises(OcppCallError) as error:
        await b.call("GetReport", {"requestId": 1, "componentVariable": [{"component": {"name": "AuthCtrlr"}}] * 3})
    assert DIALECT.codes[error.value.code] == "OccurrenceConstraintViolation"


async def test_a_report_stops_when_a_page_cannot_be_sent(tmp_path):
    """TC_B_13_CS (offline variant): offline after the answer: no page is made up later, the report ends."""
    b = Block(tmp_path, variables={"DeviceDataCtrlr.ItemsPerMessage[GetReport]": "5"})
    b.fx.sender.online = False
    assert await b.call("GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"}) == {"status": "Accepted"}
    assert b.reports() == []


# -- Reset -----------------------------------------------------------------------------------------------
async def test_reset_without_a_transaction_resets_and_the_next_boot_says_remote_reset(tmp_path):
    """TC_B_20_CS (B11): OnIdle with nothing running: Accepted, the reset after the answer; the reason survives
    the restart (RemoteReset) and is gone once the CSMS accepted the boot."""
    b = Block(tmp_path)
    assert b.block.boot_reason() == "PowerUp"
    reply = await b.block.on_reset({"type": "OnIdle"})
    assert reply.payload == {"status": "Accepted"} and reply.after is not None
    assert await b.call("Reset", {"type": "Immediate"}) == {"status": "Rejected"}, "one station reset at a time"
    await reply.after()
    assert b.fx.station.called("reset") == [(ResetRequest(ResetKind.HARD, ResetWhen.ON_IDLE),)]
    assert b.events.kinds == ["ResetOrReboot"]
    restarted = Block(tmp_path, fx=block_context(tmp_path, store=b.fx.store))
    assert restarted.block.boot_reason() == "RemoteReset"
    restarted.block.boot_accepted()
    assert restarted.block.boot_reason() == "PowerUp"


async def test_a_made_up_boot_reason_on_disk_is_quarantined(tmp_path):
    """TC_B_01_CS (persisted state): a stored reason that is no BootReasonEnumType reads as PowerUp."""
    b = Block(tmp_path)
    b.fx.store.put_record(BOOT_KIND, BOOT_RECORD, {"reason": "Gremlins"})
    assert b.block.boot_reason() == "PowerUp"
    assert b.fx.store.records(BOOT_KIND) == {}


async def test_reset_on_idle_waits_for_every_transaction(tmp_path):
    """TC_B_21_CS TC_B_41_CS (B12): OnIdle with transactions on both EVSEs: Scheduled; nothing is stopped; the
    reset comes only when the last one ended."""
    b = Block(tmp_path, [1, 2])
    b.transactions.start(1)
    b.transactions.start(2)
    assert await b.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    assert await b.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    [task] = b.block._scheduled.values()
    b.transactions.end(1)
    done, _ = await asyncio.wait({task}, timeout=0.2)  # bounded: the reset must not come while EVSE 2 charges
    assert not done and b.fx.station.called("reset") == [] and b.transactions.stops == []
    b.transactions.end(2)
    await asyncio.wait_for(task, 5)
    assert b.fx.station.called("reset") == [(ResetRequest(ResetKind.HARD, ResetWhen.ON_IDLE),)]


async def test_reset_immediate_stops_the_transactions_first(tmp_path):
    """TC_B_22_CS (B11.FR.?): Immediate with a transaction: Accepted, the transaction stopped with the reset
    reason (stoppedReason ImmediateReset), then the reset; an Immediate replaces a scheduled OnIdle."""
    b = Block(tmp_path, [1, 2])
    b.transactions.start(2)
    assert await b.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    assert await b.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    assert b.transactions.stops == [(2, "HardReset")]
    assert b.fx.station.called("reset") == [(ResetRequest(ResetKind.HARD, ResetWhen.IMMEDIATE),)]
    assert b.block._scheduled == {}


async def test_reset_immediate_goes_ahead_when_a_transaction_does_not_end(tmp_path):
    """TC_B_22_CS (a stuck EVSE): the stop is not carried out: the reset follows after a bounded wait."""
    b = Block(tmp_path)
    b.transactions.ends_on_stop = False
    b.transactions.start(1)
    reply = await b.block.on_reset({"type": "Immediate"})
    assert reply.after is not None
    resetting = asyncio.ensure_future(reply.after())
    for _ in range(100):  # a few loop steps (no time passes) until the wait for the end is armed
        if b.fx.clock.pending_timers:
            break
        await asyncio.sleep(0)
    assert b.fx.clock.pending_timers and b.transactions.stops == [(1, "HardReset")]
    assert b.fx.station.called("reset") == []
    assert await b.call("Reset", {"type": "Immediate"}) == {"status": "Rejected"}, "one station reset at a time"
    await b.fx.clock.advance(RESET_STOP_TIMEOUT_S + 1)
    await asyncio.wait_for(resetting, 5)
    assert len(b.fx.station.called("reset")) == 1


async def test_reset_of_an_evse(tmp_path):
    """TC_B_25_CS TC_B_26_CS TC_B_27_CS (B11/B12 evseId): an idle EVSE: Accepted and reset; with a transaction:
    OnIdle Scheduled until it ends, Immediate stops it first; the other EVSE's transaction goes on; an unknown
    EVSE is Rejected; an EVSE reset is no RemoteReset boot."""
    b = Block(tmp_path, [1, 2])
    assert await b.call("Reset", {"type": "Immediate", "evseId": 1}) == {"status": "Accepted"}
    b.transactions.start(1)
    b.transactions.start(2)
    assert await b.call("Reset", {"type": "OnIdle", "evseId": 1}) == {"status": "Scheduled"}
    b.transactions.end(1)
    await asyncio.wait_for(b.fx.ctx.jobs.wait_idle(), 5)
    assert await b.call("Reset", {"type": "Immediate", "evseId": 2}) == {"status": "Accepted"}
    assert b.transactions.stops == [(2, "HardReset")]
    evse = [ResetRequest(ResetKind.HARD, when, EvseRef(evse_id, 0)) for when, evse_id in
            ((ResetWhen.IMMEDIATE, 1), (ResetWhen.ON_IDLE, 1), (ResetWhen.IMMEDIATE, 2))]
    assert [args[0] for args in b.fx.station.called("reset")] == evse
    assert await b.call("Reset", {"type": "Immediate", "evseId": 3}) == {"status": "Rejected"}
    assert b.block.boot_reason() == "PowerUp"


async def test_an_evse_reset_the_station_cannot_do_is_rejected_not_widened(tmp_path):
    """TC_B_28_CS TC_B_29_CS: a station whose EVSEs cannot be reset alone (the everpy OCPP module's) answers
    an EVSE reset Rejected, idle or with a transaction, and resets nothing; a station reset still works."""
    b = Block(tmp_path, [1, 2])
    b.fx.station.evse_reset = False
    assert await b.call("Reset", {"type": "Immediate", "evseId": 1}) == {
        "status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
    b.transactions.start(1)
    assert (await b.call("Reset", {"type": "OnIdle", "evseId": 1}))["status"] == "Rejected"
    assert b.transactions.stops == [] and b.fx.station.called("reset") == []
    b.transactions.end(1)
    assert await b.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    assert [args[0].evse for args in b.fx.station.called("reset")] == [None]


# -- reconnect -------------------------------------------------------------------------------------------
async def test_all_statuses_again_only_after_an_outage_longer_than_offline_threshold(tmp_path):
    """TC_B_51_CS TC_B_52_CS (B04): the first connection and one after an outage longer than
    OCPPCommCtrlr.OfflineThreshold send every status; after a shorter outage (however many failed attempts)
    only what changed."""
    b = Block(tmp_path, variables={"OCPPCommCtrlr.OfflineThreshold": "60"})
    assert b.block.outage_exceeded_threshold()
    b.block.connection_state("Disconnected")
    await b.fx.clock.advance(30)
    for state in ("Connecting", "Disconnected", "Connecting", "Connected"):
        b.block.connection_state(state)
    await b.fx.clock.advance(20)
    assert not b.block.outage_exceeded_threshold()
    b.block.connection_state("Disconnected")
    await b.fx.clock.advance(61)
    assert b.block.outage_exceeded_threshold()


# -- the module's local commands ---------------------------------------------------------------------------
def local(component: dict[str, Any], variable: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"component_variable": {"component": component, "variable": variable}, **more}


async def test_local_get_and_set_use_the_snake_case_shapes(tmp_path):
    """TC_B_06_CS TC_B_09_CS (local): the module's get/set_variables answer per entry like the CSMS's,
    with snake_case fields; a request that does not fit is Rejected, not a crash."""
    b = Block(tmp_path, [1], variables={"SecurityCtrlr.SecurityProfile": "2"})
    set_results = b.block.local_set([local(*HEARTBEAT, value="90"), local(*HEARTBEAT, value=90),
                                     local({"name": "OCPPCommCtrlr"}, {"name": "Nope"}, value="1"),
                                     {"component_variable": "HeartbeatInterval", "value": "1"}], "test")
    assert [r.get("status") for r in set_results] == ["Accepted", "Rejected", "UnknownVariable", "Rejected"]
    got = b.block.local_get([local(*HEARTBEAT), local({"name": "EVSE", "evse": {"id": 1}},
                                                      {"name": "AvailabilityState"}),
                             local({"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
                                   {"name": "ConnectorType"}),
                             local(*HEARTBEAT, attribute_type="Bogus"), "nonsense"])
    assert got[0] == {"component_variable": {"component": HEARTBEAT[0], "variable": HEARTBEAT[1]},
                      "attribute_type": "Actual", "status": "Accepted", "value": "90"}
    assert [r.get("status") for r in got] == ["Accepted", "Accepted", "Accepted", "NotSupportedAttributeType",
                                              "Rejected"]
    assert got[2]["value"] == "cType2"
    assert b.block.local_set([local(*PASSWORD, value="a-local-secret-16ch")], "test")[0]["status"] == "Accepted"
    assert b.fx.sender.reconnects == 1


async def test_configuration_keys_read_and_change_station_variables(tmp_path):
    """TC_B_06_CS TC_B_09_CS (1.6-style local keys): Component.Variable[instance] names; unknown and write-only
    keys are unknown; a change answers as ChangeConfiguration does."""
    b = Block(tmp_path)
    known, unknown = b.block.readable(["OCPPCommCtrlr.HeartbeatInterval", "OCPPCommCtrlr.MessageTimeout[Default]",
                                       "SecurityCtrlr.BasicAuthPassword", "Nope.Nope", "garbage"])
    assert known == [{"key": "OCPPCommCtrlr.HeartbeatInterval", "readonly": False, "value": "300"},
                     {"key": "OCPPCommCtrlr.MessageTimeout[Default]", "readonly": True, "value": "30"}]
    assert unknown == ["SecurityCtrlr.BasicAuthPassword", "Nope.Nope", "garbage"]
    assert b.block.readable(["ClockCtrlr.DateTime"])[0] == [{"key": "ClockCtrlr.DateTime", "readonly": True}]
    everything, _ = b.block.readable([])
    assert len(everything) > 20 and not any(k["key"].endswith("BasicAuthPassword") for k in everything)
    assert b.block.change("OCPPCommCtrlr.HeartbeatInterval", "60") == "Accepted"
    assert b.block.change("OCPPCommCtrlr.HeartbeatInterval", "0") == "Rejected"
    assert b.block.change("OCPPCommCtrlr.MessageTimeout[Default]", "5") == "Rejected"
    assert b.block.change("Nope.Nope", "5") == "NotSupported"
    assert b.fx.model.int(HEARTBEAT_INTERVAL) == 60
