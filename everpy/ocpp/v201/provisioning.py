"""Functional block B (provisioning) of OCPP 2.0.1: Get/SetVariables, base and custom reports, Reset, and the
boot reason.

Get/SetVariables (B06/B05): one result per entry, answered by the device model (every check of type, range,
mutability and attribute is there); a request longer than DeviceDataCtrlr.ItemsPerMessage or
BytesPerMessage of its message is refused as a whole (OccurrenceConstraintViolation / FormatViolation). A
new SecurityCtrlr.BasicAuthPassword takes effect by reconnecting once the answer is sent (A01).

Reports (B07/B08): GetBaseReport and GetReport answer at once (Accepted, or EmptyResultSet when nothing
matches); the NotifyReport pages follow the answer, at most ItemsPerMessage[GetReport] entries each, seqNo
from 0, tbc on every page but the last. They go out while the boot is Pending too: the CSMS asked for them.

Reset (B11/B12): of the station or of one EVSE, Immediate (running transactions are stopped first and end
with stoppedReason ImmediateReset) or OnIdle (Scheduled while a transaction runs, carried out when the last
one ends). The next BootNotification of a station reset says RemoteReset: the reason is persisted before
the reset, because the process does not survive it.

The module's local get/set_variables commands take and give the snake_case shapes of the everest types
(component_variable, attribute_type, status, value), as the 1.6 station does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Fault, OcppCallError, Reply
from everpy.ocpp.session import TRIGGERED
from everpy.ocpp.v201.device_model import Attribute, DeviceModel, Mutability, Outcome, Place, Ref, Scope, Variable
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.comm import MESSAGE_TIMEOUT, OFFLINE_THRESHOLD, bytes_per_message, items_per_message
from everpy.ocpp.v201.variables.security import BASIC_AUTH_PASSWORD, SECURITY_PROFILE
from everpy.ocpp.values import EvseRef, ResetKind, ResetRequest, ResetWhen, rfc3339

Ctx = BlockContext[DeviceModel]
BOOT_KIND = "boot_reason"  # the store record of the reason the next BootNotification gives
BOOT_RECORD = 0
BOOT_REASONS = frozenset({"ApplicationReset", "FirmwareUpdate", "LocalReset", "PowerUp", "RemoteReset",
                          "ScheduledReset", "Triggered", "Unknown", "Watchdog"})  # BootReasonEnumType
# everpy's StopTransactionReason for a reset; the transactions block reports it as stoppedReason ImmediateReset
RESET_STOP_REASON = "HardReset"
# how long an Immediate reset waits for the stopped transactions to end and their Ended to be delivered
RESET_STOP_TIMEOUT_S = 60.0
# what a SummaryInventory reports: the state of every component (Part 2 §3.2, B07)
SUMMARY_VARIABLES = frozenset({"Available", "AvailabilityState", "Problem"})
# GetReport componentCriteria a component without that variable meets anyway (it has no other state)
MET_WITHOUT_VARIABLE = frozenset({"Active", "Available", "Enabled"})
BASIC_AUTH_PROFILES = (1, 2)


class SecurityLog(Protocol):
    """The security events block's one method provisioning uses."""

    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None: ...


class Provisioning:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: Any, events: SecurityLog) -> None:
        """``transactions``: the transactions block (its ``stop`` and its ``ended`` signal)."""
        self.ctx, self.evses, self.transactions, self.events = ctx, evses, transactions, events
        self.model = ctx.config
        self._idle = asyncio.Event()  # set whenever a transaction ended: waiting resets look again
        self._scheduled: dict[int | None, asyncio.Task[Any]] = {}  # OnIdle resets waiting: EVSE id (None: station)
        self._resetting = False  # a station reset is being carried out
        self._offline_since: float | None = None  # monotonic time the connection was lost
        self._connected_before = False
        self._station_variables = {dotted_name(d): d for d in self.model.definitions
                                   if d.scope is Scope.STATION and d.component_instance is None}
        transactions.ended.subscribe(lambda evse_id: self._idle.set())

    # -- the boot --------------------------------------------------------------------------------------
    def boot_reason(self) -> str:
        """BootReasonEnumType of the next BootNotification: RemoteReset after a reset the CSMS asked for,
        PowerUp otherwise."""
        record = self.ctx.store.records(BOOT_KIND).get(BOOT_RECORD)
        if record is None:
            return "PowerUp"
        reason = record.get("reason")
        if reason not in BOOT_REASONS:
            self.ctx.store.drop_record(BOOT_KIND, BOOT_RECORD, record, "not a boot reason")
            return "PowerUp"
        return str(reason)

    def boot_accepted(self) -> None:
        """The CSMS has heard the reason: a later reconnect or power cycle is no longer this reset."""
        self.ctx.store.remove_record(BOOT_KIND, BOOT_RECORD)

    def connection_state(self, state: str) -> None:
        """The session's state changed (Connecting, Connected, Pending, Accepted, Disconnected)."""
        if state == "Disconnected" and self._offline_since is None:
            self._offline_since = self.ctx.clock.monotonic()

    def outage_exceeded_threshold(self) -> bool:
        """Once per accepted connection: whether every connector's status is sent again (B04.FR.01/02): on the
        first connection of the process, and after an outage longer than OCPPCommCtrlr.OfflineThreshold;
        after a shorter one only what changed."""
        since, self._offline_since = self._offline_since, None
        first, self._connected_before = not self._connected_before, True
        return first or since is None or self.ctx.clock.monotonic() - since > self.model.int(OFFLINE_THRESHOLD)

    # -- Get/SetVariables ------------------------------------------------------------------------------
    @handles("GetVariables")
    async def on_get_variables(self, payload: dict[str, Any]) -> Reply:
        entries = payload["getVariableData"]
        self._check_size("GetVariables", payload, len(entries))
        results = []
        for entry in entries:
            attribute = entry.get("attributeType", Attribute.ACTUAL.value)
            outcome = self.model.get(entry["component"], entry["variable"], attribute)
            result: dict[str, Any] = {"attributeStatus": outcome.status, "attributeType": attribute,
                                      "component": entry["component"], "variable": entry["variable"]}
            if outcome.value is not None:
                result["attributeValue"] = outcome.value
            results.append(result | _info("attributeStatusInfo", outcome))
        return Reply({"getVariableResult": results})

    @handles("SetVariables")
    async def on_set_variables(self, payload: dict[str, Any]) -> Reply:
        entries = payload["setVariableData"]
        self._check_size("SetVariables", payload, len(entries))
        results, new_password = [], False
        for entry in entries:
            attribute = entry.get("attributeType", Attribute.ACTUAL.value)
            outcome, changed_password = self._set(entry["component"], entry["variable"], entry["attributeValue"],
                                                  attribute, "the CSMS")
            new_password = new_password or changed_password
            results.append({"attributeStatus": outcome.status, "attributeType": attribute,
                            "component": entry["component"], "variable": entry["variable"]}
                           | _info("attributeStatusInfo", outcome))
        return Reply({"setVariableResult": results}, self._reconnect if new_password else None)

    def _set(self, component: dict[str, Any], variable: dict[str, Any], value: str, attribute: str,
             source: str) -> tuple[Outcome, bool]:
        """One entry set; the outcome and whether it is a new Basic-auth password the connection uses (a
        reconnect applies it)."""
        outcome = self.model.set(component, variable, value, attribute)
        is_password = Ref(component.get("name", ""), variable.get("name", ""), variable.get("instance"),
                          component.get("instance")) == BASIC_AUTH_PASSWORD
        shown = "(hidden)" if is_password else repr(value)
        self.ctx.log.info("%s set %s.%s/%s=%s: %s", source, component.get("name"), variable.get("name"), attribute,
                          shown, outcome.status + (f" ({outcome.reason})" if outcome.reason else ""))
        return outcome, is_password and outcome.status == "Accepted" and self._sends_password()

    async def _reconnect(self) -> None:
        self.ctx.log.warning("the Basic-auth password changed: reconnecting with it")
        self.ctx.sender.request_reconnect()

    def _sends_password(self) -> bool:
        """Whether a new password needs a reconnect: only the Basic-auth profiles (1, 2) send it."""
        return self.model.int(SECURITY_PROFILE) in BASIC_AUTH_PROFILES

    def _check_size(self, message: str, payload: dict[str, Any], items: int) -> None:
        """DeviceDataCtrlr.ItemsPerMessage / BytesPerMessage of the message (B05.FR.?, B06.FR.?, B08.FR.?);
        the bytes are those of the payload as compact JSON (what the frame carries)."""
        most_items = self.model.int(items_per_message(message).ref)
        if items > most_items:
            raise OcppCallError(Fault.OCCURRENCE, f"{items} entries; a {message} may hold at most {most_items}")
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        most_bytes = self.model.int(bytes_per_message(message).ref)
        if size > most_bytes:
            raise OcppCallError(Fault.FORMATION, f"{size} bytes; a {message} may be at most {most_bytes}")

    # -- reports ---------------------------------------------------------------------------------------
    @handles("GetBaseReport")
    async def on_get_base_report(self, payload: dict[str, Any]) -> Reply:
        base = payload["reportBase"]
        if base == "ConfigurationInventory":
            data = self.model.report_data(configurable_only=True)
        elif base == "FullInventory":
            data = self.model.report_data()
        else:  # SummaryInventory (the schema allows nothing else)
            data = self.model.report_data(only=lambda definition, evse, connector:
                                          definition.name in SUMMARY_VARIABLES)
        return self._report(payload["requestId"], data)

    @handles("GetReport")
    async def on_get_report(self, payload: dict[str, Any]) -> Reply:
        wanted = payload.get("componentVariable") or []
        self._check_size("GetReport", payload, len(wanted))
        criteria = payload.get("componentCriteria") or []

        def only(definition: Variable, evse: Place, connector: Place) -> bool:
            return ((not wanted or any(_names(item, definition, evse, connector) for item in wanted))
                    and (not criteria or any(self._meets(definition, evse, connector, c) for c in criteria)))

        return self._report(payload["requestId"], self.model.report_data(only=only))

    def _meets(self, definition: Variable, evse: Place, connector: Place, criterion: str) -> bool:
        """B08: a component meets Active/Available/Enabled when that variable is true or it has none; Problem
        only when its Problem is true."""
        flag = self.model.flag(definition, evse, connector, criterion)
        return flag if flag is not None else criterion in MET_WITHOUT_VARIABLE

    def _report(self, request_id: int, data: list[dict[str, Any]]) -> Reply:
        if not data:
            return Reply({"status": "EmptyResultSet"})
        return Reply({"status": "Accepted"}, lambda: self._spawn_report(request_id, data))

    async def _spawn_report(self, request_id: int, data: list[dict[str, Any]]) -> None:
        self.ctx.jobs.spawn(self._send_report(request_id, data))

    async def _send_report(self, request_id: int, data: list[dict[str, Any]]) -> None:
        TRIGGERED.set(True)  # this job's task only: the CSMS asked for the report, also while Pending (B02)
        per_message = self.model.int(items_per_message("GetReport").ref)
        generated_at = rfc3339(self.ctx.clock.time())
        pages = [data[start:start + per_message] for start in range(0, len(data), per_message)]
        for seq_no, page in enumerate(pages):
            sent = await self.ctx.sender.call_or_log("NotifyReport", {
                "requestId": request_id, "generatedAt": generated_at, "seqNo": seq_no,
                "tbc": seq_no < len(pages) - 1, "reportData": page})
            if sent is None:
                self.ctx.log.warning("report %d stopped after %d of %d pages", request_id, seq_no, len(pages))
                return

    # -- Reset -----------------------------------------------------------------------------------------
    @handles("Reset")
    async def on_reset(self, payload: dict[str, Any]) -> Reply:
        evse_id: int | None = payload.get("evseId")
        if evse_id is not None and not self.ctx.station.can_reset_evse():  # never widened to the station
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}})
        if (evse_id is not None and evse_id not in self.evses) or self._resetting:
            return Reply({"status": "Rejected"})
        if payload["type"] == ResetWhen.ON_IDLE.value:
            if evse_id in self._scheduled:
                return Reply({"status": "Scheduled"})
            if self._busy(evse_id):
                self._schedule(evse_id)
                return Reply({"status": "Scheduled"})
            self._resetting = evse_id is None or self._resetting
            return Reply({"status": "Accepted"}, lambda: self._execute(evse_id, ResetWhen.ON_IDLE))
        # Immediate replaces an OnIdle reset waiting for the same EVSE (or any, for the station)
        for key in [k for k in self._scheduled if evse_id is None or k == evse_id]:
            self._scheduled.pop(key).cancel()
        self._resetting = evse_id is None or self._resetting
        return Reply({"status": "Accepted"}, lambda: self._immediate(evse_id))

    def _targets(self, evse_id: int | None) -> list[int]:
        return self.evses.ids() if evse_id is None else [evse_id]

    def _busy(self, evse_id: int | None) -> bool:
        return any(self.evses[target].transaction_id is not None for target in self._targets(evse_id))

    async def _until_idle(self, evse_id: int | None) -> None:
        while self._busy(evse_id):
            self._idle.clear()
            await self._idle.wait()

    def _schedule(self, evse_id: int | None) -> None:
        self.ctx.log.info("reset of %s scheduled: it follows the end of the running transactions",
                          _what(evse_id))
        task = self.ctx.jobs.spawn(self._when_idle(evse_id))
        self._scheduled[evse_id] = task
        task.add_done_callback(lambda done: self._scheduled.pop(evse_id, None)
                               if self._scheduled.get(evse_id) is done else None)

    async def _when_idle(self, evse_id: int | None) -> None:
        await self._until_idle(evse_id)
        self._resetting = evse_id is None or self._resetting
        await self._execute(evse_id, ResetWhen.ON_IDLE)

    async def _immediate(self, evse_id: int | None) -> None:
        for target in self._targets(evse_id):
            if self.evses[target].transaction_id is not None \
                    and not await self.transactions.stop(target, RESET_STOP_REASON):
                self.ctx.log.error("EVSE %d did not take the stop before the reset", target)
        try:
            await self.ctx.clock.wait_for(self._until_idle(evse_id), RESET_STOP_TIMEOUT_S)
        except TimeoutError:
            self.ctx.log.error("transactions still run %.0f s after the stop; resetting %s anyway",
                               RESET_STOP_TIMEOUT_S, _what(evse_id))
        await self._execute(evse_id, ResetWhen.IMMEDIATE)

    async def _execute(self, evse_id: int | None, when: ResetWhen) -> None:
        self.ctx.log.warning("%s reset of %s requested by the CSMS", when.value, _what(evse_id))
        self.events.record("ResetOrReboot", f"{when.value} reset of {_what(evse_id)} requested by the CSMS")
        if evse_id is not None:
            await self.ctx.station.reset(ResetRequest(ResetKind.HARD, when, EvseRef(evse_id, 0)))
            return
        try:
            self.ctx.store.put_record(BOOT_KIND, BOOT_RECORD, {"reason": "RemoteReset"})
            # the Ended of stopped transactions are queued; give them a chance to reach the CSMS first
            await self.ctx.sender.wait_queue_empty(float(self.model.int(MESSAGE_TIMEOUT)))
            await self.ctx.station.reset(ResetRequest(ResetKind.HARD, when))
        finally:
            self._resetting = False  # still alive: the system did not restart (or failed to)

    # -- the module's local commands ---------------------------------------------------------------------
    def readable(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """1.6-style GetConfiguration over the station's own variables, named ``Component.Variable[instance]``
        (all readable ones for no keys): (entries of key, readonly, value; unknown keys)."""
        wanted = keys or [name for name, d in self._station_variables.items()
                          if d.mutability is not Mutability.WRITE_ONLY]
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        for key in wanted:
            parsed = parse_dotted_name(key)
            outcome = None if parsed is None else self.model.get(*parsed)
            if outcome is None or outcome.status != "Accepted":
                unknown.append(key)
                continue
            definition = self._station_variables[key]
            entry = {"key": key, "readonly": definition.mutability is Mutability.READ_ONLY or definition.constant}
            known.append(entry | ({} if outcome.value is None else {"value": outcome.value}))  # unset: no value
        return known, unknown

    def change(self, key: str, value: str) -> str:
        """1.6-style ChangeConfiguration: Accepted, RebootRequired, Rejected or NotSupported (no such key)."""
        parsed = parse_dotted_name(key)
        if parsed is None or not isinstance(value, str):
            return "NotSupported" if parsed is None else "Rejected"
        outcome, new_password = self._set(*parsed, value, Attribute.ACTUAL.value, "a local user")
        if new_password:
            self.ctx.sender.request_reconnect()
        if outcome.status in ("UnknownComponent", "UnknownVariable"):
            return "NotSupported"
        return outcome.status if outcome.status in ("Accepted", "RebootRequired") else "Rejected"

    def local_get(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for request in requests:
            address = _local_address(request)
            result = _local_result(request)
            if isinstance(address, str):
                result["status"] = address
            else:
                outcome = self.model.get(*address)
                result["status"] = outcome.status
                if outcome.value is not None:
                    result["value"] = outcome.value
            results.append(result)
        return results

    def local_set(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        results = []
        for request in requests:
            address = _local_address(request)
            result = _local_result(request)
            value = request.get("value") if isinstance(request, dict) else None
            if isinstance(address, str):
                result["status"] = address
            elif not isinstance(value, str):
                result["status"] = "Rejected"
            else:
                component, variable, attribute = address
                outcome, new_password = self._set(component, variable, value, attribute, str(source))
                if new_password:
                    self.ctx.sender.request_reconnect()
                result["status"] = outcome.status
            results.append(result)
        return results


def _info(field: str, outcome: Outcome) -> dict[str, Any]:
    info = outcome.status_info()
    return {} if info is None else {field: info}


def _what(evse_id: int | None) -> str:
    return "the station" if evse_id is None else f"EVSE {evse_id}"


def _names(item: dict[str, Any], definition: Variable, evse: Place, connector: Place) -> bool:
    """Whether a GetReport componentVariable names this instance: what it leaves out does not narrow it."""
    component, variable = item["component"], item.get("variable")
    if component["name"] != definition.component:
        return False
    if "instance" in component and component["instance"] != definition.component_instance:
        return False
    if "evse" in component:
        if component["evse"]["id"] != evse:
            return False
        if "connectorId" in component["evse"] and component["evse"]["connectorId"] != connector:
            return False
    if variable is None:
        return True
    return variable["name"] == definition.name and ("instance" not in variable
                                                    or variable["instance"] == definition.instance)


def dotted_name(definition: Variable) -> str:
    return f"{definition.component}.{definition.name}" + (f"[{definition.instance}]" if definition.instance else "")


def parse_dotted_name(name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``Component.Variable[instance]`` as a request's component and variable; None if it is not one."""
    if not isinstance(name, str):
        return None
    component, dot, rest = name.partition(".")
    variable, bracket, instance = rest.partition("[")
    if not dot or not component or not variable or (bracket and not instance.endswith("]")):
        return None
    return {"name": component}, {"name": variable} | ({"instance": instance[:-1]} if bracket else {})


_NAMED = frozenset({"name", "instance"})  # the string fields of a component and of a variable
_ATTRIBUTES = frozenset(a.value for a in Attribute)


def _local_result(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {}
    return {"component_variable": request.get("component_variable"),
            "attribute_type": request.get("attribute_type", Attribute.ACTUAL.value)}


def _local_address(request: Any) -> tuple[dict[str, Any], dict[str, Any], str] | str:
    """A local request's (component, variable, attribute) in the CSMS's camelCase, or the status answering a
    request that does not fit (the bus is outside too)."""
    if not isinstance(request, dict) or not isinstance(request.get("component_variable"), dict):
        return "Rejected"
    pair = request["component_variable"]
    component, variable = pair.get("component"), pair.get("variable")
    if not _named(component, {"evse"}) or not _named(variable, set()):
        return "Rejected"
    attribute = request.get("attribute_type", Attribute.ACTUAL.value)
    if attribute not in _ATTRIBUTES:
        return "NotSupportedAttributeType"
    converted: dict[str, Any] = {k: v for k, v in component.items() if k != "evse"}
    evse = component.get("evse")
    if evse is not None:
        if not isinstance(evse, dict) or not _is_id(evse.get("id")) or \
                ("connector_id" in evse and not _is_id(evse["connector_id"])):
            return "Rejected"
        converted["evse"] = {"id": evse["id"]}
        if "connector_id" in evse:
            converted["evse"]["connectorId"] = evse["connector_id"]
    return converted, dict(variable), attribute


def _named(value: Any, more: Iterable[str]) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("name"), str) and set(value) <= _NAMED | set(more)
            and all(isinstance(value[k], str) for k in _NAMED if k in value))


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
