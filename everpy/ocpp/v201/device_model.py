"""The OCPP 2.0.1 device model: components and their variables, with characteristics, mutability and
persistence.

Definitions are data (``everpy.ocpp.v201.variables``, one file per controller): a :class:`Variable` names
its component, data type, limits, mutability and which attributes (Actual, Target, MinSet, MaxSet) it
has. Components of scope ``evse`` or ``connector`` (EVSE, Connector, ...) exist once per EVSE or
connector of the station's module graph. The :class:`DeviceModel` holds the current values: the
definition's default, overridden by the station's initial configuration, overridden by what was set and
persisted. It answers Get/SetVariables and GetReport, and every block reads the values it depends on
through a :class:`Ref` (a typo is an import error, not a silently missing setting).

Persisted values are checked again when read back at start: one that no longer fits its definition is
quarantined and the default used. Every value travels as a string, as on the wire.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from everpy.core.clock import Clock
from everpy.ocpp.store import OcppStore


class DataType(Enum):
    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"  # one of values_list
    SEQUENCE_LIST = "SequenceList"  # an ordered comma separated list of values_list members
    MEMBER_LIST = "MemberList"  # an unordered comma separated set of values_list members


class Mutability(Enum):
    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class Attribute(Enum):
    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class Scope(Enum):
    STATION = "station"  # one instance, no evse
    EVSE = "evse"  # one per EVSE (evse.id)
    CONNECTOR = "connector"  # one per connector (evse.id + evse.connectorId)


Place = int | None  # an EVSE or connector id; None: not that scope (an alias: DeviceModel has an int method)
ACTUAL_ONLY = frozenset({Attribute.ACTUAL})
_INTEGER = re.compile(r"^[+-]?\d{1,10}$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
# OCPP 2.0.1 Part 2 §1.6 (primitive datatypes) and the ReportData valuesList limit
MAX_VALUE_LENGTH = 2500
MAX_VALUES_LIST = 1000


@dataclass(frozen=True)
class Variable:
    """One variable of one component, as defined (not its value)."""

    component: str
    name: str
    data_type: DataType
    description: str
    default: str | None = None  # None: no value until one is set (or the station sets it)
    mutability: Mutability = Mutability.READ_WRITE
    instance: str | None = None  # variable instance, e.g. ItemsPerMessage[GetVariables]
    component_instance: str | None = None
    scope: Scope = Scope.STATION
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] = ()
    max_length: int | None = None  # strings
    min_length: int | None = None
    attributes: frozenset[Attribute] = ACTUAL_ONLY
    persistent: bool = True
    constant: bool = False
    reboot_required: bool = False  # a change takes effect after a reboot (SetVariables answers RebootRequired)
    check: Callable[[str], str | None] | None = None  # a further rule: a reason to refuse, None to accept

    @property
    def ref(self) -> Ref:
        return Ref(self.component, self.name, self.instance, self.component_instance)

    def problem(self, value: str) -> str | None:
        """Why `value` is not a value of this variable (None if it is)."""
        if len(value) > MAX_VALUE_LENGTH:
            return f"longer than {MAX_VALUE_LENGTH} characters"
        kind = self.data_type
        if kind is DataType.BOOLEAN:
            if value.lower() not in ("true", "false"):
                return "not true or false"
        elif kind is DataType.INTEGER:
            if not _INTEGER.match(value):
                return "not an integer"
            if (reason := self._range(int(value))) is not None:
                return reason
        elif kind is DataType.DECIMAL:
            if not _DECIMAL.match(value) or not math.isfinite(float(value)):
                return "not a decimal number"
            if (reason := self._range(float(value))) is not None:
                return reason
        elif kind is DataType.DATETIME:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return "not an RFC 3339 date-time"
            if parsed.tzinfo is None or "T" not in value:
                return "not an RFC 3339 date-time (a date, a time and its offset)"
        elif kind is DataType.OPTION_LIST:
            if value not in self.values_list:
                return f"not one of {', '.join(self.values_list)}"
        elif kind in (DataType.SEQUENCE_LIST, DataType.MEMBER_LIST):
            members = split_list(value)
            unknown = [m for m in members if m not in self.values_list]
            if unknown:
                return f"{unknown[0]!r} is not one of {', '.join(self.values_list)}"
            if kind is DataType.MEMBER_LIST and len(set(members)) != len(members):
                return "a member is named twice"
        elif kind is DataType.STRING:
            if self.max_length is not None and len(value) > self.max_length:
                return f"longer than {self.max_length} characters"
            if self.min_length is not None and len(value) < self.min_length:
                return f"shorter than {self.min_length} characters"
        return self.check(value) if self.check is not None else None

    def _range(self, number: float) -> str | None:
        if self.min_limit is not None and number < self.min_limit:
            return f"below the minimum {_number(self.min_limit)}"
        if self.max_limit is not None and number > self.max_limit:
            return f"above the maximum {_number(self.max_limit)}"
        return None

    def normal(self, value: str) -> str:
        """The one spelling a checked value is kept and reported in (true, not TRUE; 3, not +03)."""
        if self.data_type is DataType.BOOLEAN:
            return value.lower()
        if self.data_type is DataType.INTEGER:
            return str(int(value))
        return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class Ref:
    """How a block names a variable it reads (of the station, or of one EVSE/connector via ``at``)."""

    component: str
    variable: str
    instance: str | None = None
    component_instance: str | None = None


@dataclass(frozen=True)
class Address:
    """One value of the station: a variable (of one EVSE/connector instance) and an attribute."""

    component: str
    component_instance: str | None
    evse: int | None
    connector: int | None
    variable: str
    instance: str | None
    attribute: Attribute = Attribute.ACTUAL

    @property
    def ref(self) -> Ref:
        """The variable this value belongs to (what change hooks compare with a block's REF)."""
        return Ref(self.component, self.variable, self.instance, self.component_instance)

    def key(self) -> str:
        """The persisted name: Component[inst]@evse.connector/Variable[inst]/Attribute."""
        where = "" if self.evse is None else f"@{self.evse}" + ("" if self.connector is None else f".{self.connector}")
        component = self.component + (f"[{self.component_instance}]" if self.component_instance else "")
        variable = self.variable + (f"[{self.instance}]" if self.instance else "")
        return f"{component}{where}/{variable}/{self.attribute.value}"


class SetStatus(Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


class GetStatus(Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"


@dataclass
class Outcome:
    """The answer to one Get/SetVariables entry: a status, the value read (None: the attribute has no value),
    and why (statusInfo: a short code, at most 20 characters, and the reason in words)."""

    status: str
    value: str | None = None
    reason: str | None = None
    code: str | None = None

    def status_info(self) -> dict[str, str] | None:
        """The entry's StatusInfoType, None when there is nothing to explain."""
        if self.code is None:
            return None
        return {"reasonCode": self.code} | ({"additionalInfo": self.reason[:512]} if self.reason else {})


ChangeHook = Callable[[Address, str], None]


@dataclass
class _Instance:
    definition: Variable
    evse: int | None
    connector: int | None
    values: dict[Attribute, str | None] = field(default_factory=dict)

    def address(self, attribute: Attribute = Attribute.ACTUAL) -> Address:
        d = self.definition
        return Address(d.component, d.component_instance, self.evse, self.connector, d.name, d.instance, attribute)


def _component_matches(definition: Variable, name: str, instance: str | None) -> bool:
    return definition.component == name and definition.component_instance == instance


class DeviceModel:
    def __init__(self, store: OcppStore, definitions: Iterable[Variable], connectors: dict[int, int],
                 initial: dict[str, str], log: logging.Logger) -> None:
        """``connectors``: EVSE id -> number of connectors; ``initial``: the station's configuration as
        ``Component.Variable`` (or ``Component.Variable[instance]``) -> value, for station-scope variables."""
        self._store = store
        self._log = log
        self._hooks: list[ChangeHook] = []
        self._waiters: dict[Address, list[asyncio.Future[str]]] = {}
        self._instances: dict[tuple[str, str | None, int | None, int | None, str, str | None], _Instance] = {}
        self.definitions: list[Variable] = []
        seen: set[tuple[str, str | None, str, str | None]] = set()
        for definition in definitions:
            name = (definition.component, definition.component_instance, definition.name, definition.instance)
            if name in seen:
                raise ValueError(f"device model: {_describe_definition(definition)} is defined twice")
            seen.add(name)
            self.definitions.append(definition)
            for evse, connector in _places(definition.scope, connectors):
                # in the enum's order (Actual first), never a set's: reports and persisted keys must not vary per run
                values: dict[Attribute, str | None] = {a: None for a in Attribute if a in definition.attributes}
                values[Attribute.ACTUAL] = definition.default
                key = (*name[:2], evse, connector, *name[2:])
                self._instances[key] = _Instance(definition, evse, connector, values)
        self._apply_initial(initial)
        self._restore()

    # -- start-up -------------------------------------------------------------------------------------
    def _apply_initial(self, initial: dict[str, str]) -> None:
        for name, value in initial.items():
            instance = self._by_dotted_name(name)
            if instance is None:
                raise ValueError(f"initial OCPP 2.0.1 configuration: {name!r} is not a variable of the device model"
                                 " (see docs/ocpp201-device-model.md)")
            if not isinstance(value, str) or (reason := instance.definition.problem(value)) is not None:
                raise ValueError(f"initial OCPP 2.0.1 configuration: {name}={value!r}: "
                                 f"{reason if isinstance(value, str) else 'not a string'}")
            instance.values[Attribute.ACTUAL] = instance.definition.normal(value)

    def _by_dotted_name(self, name: str) -> _Instance | None:
        component, _, variable = name.partition(".")
        variable_name, _, rest = variable.partition("[")
        variable_instance = rest.removesuffix("]") or None
        return self._instances.get((component, None, None, None, variable_name, variable_instance))

    def _restore(self) -> None:
        by_key = {instance.address(attribute).key(): (instance, attribute)
                  for instance in self._instances.values() for attribute in instance.values}
        for key, value in self._store.config_values().items():
            found = by_key.get(key)
            if found is None:
                continue  # a variable this release no longer has: left alone (a downgrade may need it back)
            instance, attribute = found
            definition = instance.definition
            if definition.mutability is Mutability.READ_ONLY or definition.constant or not definition.persistent:
                continue  # the station decides these at every start
            reason = definition.problem(value)
            if reason is not None:
                self._log.error("ignoring persisted %s=%r: %s (quarantined)", key, value, reason)
                self._store.quarantine("config", key, value, reason)
                continue
            instance.values[attribute] = value

    # -- what blocks read ----------------------------------------------------------------------------
    def _instance(self, ref: Ref, evse: int | None = None, connector: int | None = None) -> _Instance:
        found = self._instances.get((ref.component, ref.component_instance, evse, connector, ref.variable,
                                     ref.instance))
        if found is None:
            raise KeyError(f"no variable {ref} at evse {evse} connector {connector}")
        return found

    def value(self, ref: Ref, evse: Place = None, connector: Place = None,
              attribute: Attribute = Attribute.ACTUAL) -> str | None:
        return self._instance(ref, evse, connector).values.get(attribute)

    def str(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.str:
        return self.value(ref, evse, connector) or ""

    def int(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.int:
        value = self.value(ref, evse, connector)
        return int(value) if value else 0

    def float(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.float:
        value = self.value(ref, evse, connector)
        return float(value) if value else 0.0

    def bool(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.bool:
        return (self.value(ref, evse, connector) or "").lower() == "true"

    def list(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.list[builtins.str]:
        return split_list(self.value(ref, evse, connector) or "")

    def exists(self, ref: Ref) -> builtins.bool:
        return any(i.definition.ref == ref for i in self._instances.values())

    # -- changes -------------------------------------------------------------------------------------
    def on_change(self, hook: ChangeHook) -> None:
        """``hook(address, value)`` after every change (CSMS or station)."""
        self._hooks.append(hook)

    def set_internal(self, ref: Ref, value: builtins.str, evse: Place = None, connector: Place = None,
                     attribute: Attribute = Attribute.ACTUAL, persist: builtins.bool | None = None) -> None:
        """Set a value on the station's own account (read-only values included, e.g. AvailabilityState,
        or the interval a BootNotification answer names); checked, never refused silently."""
        instance = self._instance(ref, evse, connector)
        reason = instance.definition.problem(value)
        if reason is not None:
            raise ValueError(f"{instance.address(attribute).key()}={value!r}: {reason}")
        keep = instance.definition.persistent if persist is None else persist
        self._store_value(instance, attribute, instance.definition.normal(value), keep)

    def _store_value(self, instance: _Instance, attribute: Attribute, value: builtins.str,
                     persist: builtins.bool) -> None:
        instance.values[attribute] = value
        address = instance.address(attribute)
        if persist:
            self._store.set_config(address.key(), value)
        for hook in self._hooks:
            hook(address, value)
        for waiter in self._waiters.pop(address, []):
            if not waiter.done():
                waiter.set_result(value)

    async def wait_change(self, ref: Ref, evse: Place = None, connector: Place = None) -> builtins.str:
        """The next Actual value set for the variable."""
        address = self._instance(ref, evse, connector).address()
        waiter: asyncio.Future[builtins.str] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(address, [])
        waiters.append(waiter)
        try:
            return await waiter
        finally:  # a waiter given up (its timer ran out) must not stay behind
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(address, None)

    async def sleep_unless_changed(self, clock: Clock, seconds: builtins.float, ref: Ref) -> builtins.bool:
        """Sleep on the clock; True if the time passed, False if the variable changed first."""
        try:
            await clock.wait_for(self.wait_change(ref), seconds)
        except TimeoutError:
            return True
        return False

    # -- Get/SetVariables ----------------------------------------------------------------------------
    def _find(self, component: dict[builtins.str, Any], variable: dict[builtins.str, Any]) -> _Instance | SetStatus:
        """The instance a request's component and variable name, or why there is none."""
        name, instance_name = component.get("name", ""), component.get("instance")
        evse = component.get("evse")
        evse_id = None if evse is None else evse.get("id")
        connector_id = None if evse is None else evse.get("connectorId")
        definitions = [d for d in self.definitions if _component_matches(d, name, instance_name)]
        if not definitions:
            return SetStatus.UNKNOWN_COMPONENT
        scope_places = [i for i in self._instances.values()
                        if _component_matches(i.definition, name, instance_name)
                        and i.evse == evse_id and (i.connector == connector_id or
                                                   (connector_id is None and i.definition.scope is not Scope.CONNECTOR
                                                    and i.connector is None))]
        if not scope_places:
            return SetStatus.UNKNOWN_COMPONENT  # e.g. EVSE 7 on a station with two
        for place in scope_places:
            d = place.definition
            if d.name == variable.get("name") and d.instance == variable.get("instance"):
                return place
        return SetStatus.UNKNOWN_VARIABLE

    def get(self, component: dict[builtins.str, Any], variable: dict[builtins.str, Any],
            attribute: builtins.str = "Actual") -> Outcome:
        found = self._find(component, variable)
        if isinstance(found, SetStatus):
            return Outcome(found.value)
        kind = Attribute(attribute)
        if kind not in found.values:
            return Outcome(GetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE.value)
        if found.definition.mutability is Mutability.WRITE_ONLY:
            return Outcome(GetStatus.REJECTED.value, reason="the variable is write-only", code="WriteOnly")
        return Outcome(GetStatus.ACCEPTED.value, found.values[kind])

    def set(self, component: dict[builtins.str, Any], variable: dict[builtins.str, Any], value: builtins.str,
            attribute: builtins.str = "Actual") -> Outcome:
        """SetVariables for one entry: checked against the definition (type, range, list members,
        mutability, the other attributes' bounds); persisted when accepted."""
        found = self._find(component, variable)
        if isinstance(found, SetStatus):
            return Outcome(found.value)
        kind = Attribute(attribute)
        if kind not in found.values:
            return Outcome(SetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE.value)
        definition = found.definition
        if definition.mutability is Mutability.READ_ONLY or definition.constant:
            return Outcome(SetStatus.REJECTED.value, reason="the variable is read-only", code="ReadOnly")
        reason = definition.problem(value) or _outside_set_bounds(found, kind, value)
        if reason is not None:
            return Outcome(SetStatus.REJECTED.value, reason=reason, code="InvalidValue")
        self._store_value(found, kind, definition.normal(value), definition.persistent)
        status = SetStatus.REBOOT_REQUIRED if definition.reboot_required else SetStatus.ACCEPTED
        return Outcome(status.value)

    # -- reports ---------------------------------------------------------------------------------------
    def flag(self, definition: Variable, evse: Place, connector: Place, name: builtins.str) -> builtins.bool | None:
        """The boolean variable `name` (Active, Available, Enabled, Problem) of the same component instance
        as `definition` at the same place; None if that component has no such variable."""
        found = self._instances.get((definition.component, definition.component_instance, evse, connector, name,
                                     None))
        if found is None or found.definition.data_type is not DataType.BOOLEAN:
            return None
        return (found.values.get(Attribute.ACTUAL) or "").lower() == "true"

    def places(self) -> Iterator[tuple[Variable, Place, Place]]:
        for instance in self._instances.values():
            yield instance.definition, instance.evse, instance.connector

    def report_data(self, *, with_values: builtins.bool = True, configurable_only: builtins.bool = False,
                    only: Callable[[Variable, Place, Place], builtins.bool] | None = None
                    ) -> builtins.list[dict[builtins.str, Any]]:
        """ReportData entries (component, variable, variableAttribute, variableCharacteristics) of every
        instance, in definition order; a write-only value is reported without its value."""
        data: builtins.list[dict[builtins.str, Any]] = []
        for instance in self._instances.values():
            d = instance.definition
            if configurable_only and (d.mutability is Mutability.READ_ONLY or d.constant):
                continue
            if only is not None and not only(d, instance.evse, instance.connector):
                continue
            attributes = []
            for attribute, value in instance.values.items():
                entry: dict[builtins.str, Any] = {"type": attribute.value, "mutability": d.mutability.value,
                                         "persistent": d.persistent, "constant": d.constant}
                if with_values and value is not None and d.mutability is not Mutability.WRITE_ONLY:
                    entry["value"] = value
                attributes.append(entry)
            data.append({"component": component_of(instance.definition, instance.evse, instance.connector),
                         "variable": variable_of(d), "variableAttribute": attributes,
                         "variableCharacteristics": characteristics_of(d)})
        return data


def component_of(definition: Variable, evse: int | None, connector: int | None) -> dict[str, Any]:
    component: dict[str, Any] = {"name": definition.component}
    if definition.component_instance:
        component["instance"] = definition.component_instance
    if evse is not None:
        component["evse"] = {"id": evse} | ({} if connector is None else {"connectorId": connector})
    return component


def variable_of(definition: Variable) -> dict[str, Any]:
    return {"name": definition.name} | ({"instance": definition.instance} if definition.instance else {})


def characteristics_of(definition: Variable) -> dict[str, Any]:
    characteristics: dict[str, Any] = {"dataType": definition.data_type.value, "supportsMonitoring": False}
    if definition.unit:
        characteristics["unit"] = definition.unit
    if definition.min_limit is not None:
        characteristics["minLimit"] = definition.min_limit
    if definition.max_limit is not None:
        characteristics["maxLimit"] = definition.max_limit
    if definition.data_type is DataType.STRING and definition.max_length is not None:
        characteristics["maxLimit"] = definition.max_length  # for strings maxLimit is the length (Part 2 2.46)
    if definition.values_list:
        characteristics["valuesList"] = ",".join(definition.values_list)[:MAX_VALUES_LIST]
    return characteristics


def _outside_set_bounds(instance: _Instance, attribute: Attribute, value: str) -> str | None:
    """Actual and Target must stay within MinSet..MaxSet where those are set; MinSet <= MaxSet."""
    if instance.definition.data_type not in (DataType.INTEGER, DataType.DECIMAL):
        return None
    number = float(value)
    low, high = instance.values.get(Attribute.MIN_SET), instance.values.get(Attribute.MAX_SET)
    if attribute in (Attribute.ACTUAL, Attribute.TARGET):
        if low is not None and number < float(low):
            return f"below MinSet {low}"
        if high is not None and number > float(high):
            return f"above MaxSet {high}"
    if attribute is Attribute.MIN_SET and high is not None and number > float(high):
        return f"MinSet above MaxSet {high}"
    if attribute is Attribute.MAX_SET and low is not None and number < float(low):
        return f"MaxSet below MinSet {low}"
    return None


def _places(scope: Scope, connectors: dict[int, int]) -> Sequence[tuple[int | None, int | None]]:
    if scope is Scope.STATION:
        return [(None, None)]
    if scope is Scope.EVSE:
        return [(evse, None) for evse in sorted(connectors)]
    return [(evse, connector) for evse in sorted(connectors) for connector in range(1, connectors[evse] + 1)]


def _describe_definition(definition: Variable) -> str:
    component = definition.component + (f"[{definition.component_instance}]" if definition.component_instance else "")
    return f"{component}.{definition.name}" + (f"[{definition.instance}]" if definition.instance else "")


def render_markdown(definitions: Sequence[Variable]) -> str:
    """docs/ocpp201-device-model.md (a test keeps the file current)."""
    lines = [
        "# OCPP 2.0.1 device model",
        "",
        "Generated from `everpy/ocpp/v201/variables/` by `python -m everpy.ocpp.v201.variables`; do not edit.",
        "A test (`tests/ocpp201/test_device_model_doc.py`) fails when this file is out of date.",
        "",
        "Every variable below can be read with GetVariables and is reported by GetBaseReport; ReadWrite ones",
        "can be set with SetVariables (and in the OCPP module's `configuration` as `Component.Variable`).",
        "Components of scope *evse*/*connector* exist once per EVSE/connector of the module graph.",
        "Mutability: R = ReadOnly, W = WriteOnly, RW = ReadWrite.",
        "",
    ]
    short = {Mutability.READ_ONLY: "R", Mutability.WRITE_ONLY: "W", Mutability.READ_WRITE: "RW"}
    components: dict[str, list[Variable]] = {}
    for definition in definitions:
        components.setdefault(definition.component, []).append(definition)
    for component, variables in components.items():
        scope = variables[0].scope.value
        lines += [f"## {component}" + ("" if scope == "station" else f" (per {scope})"), "",
                  "| variable | type | default | access | range / values | description |",
                  "|---|---|---|---|---|---|"]
        for d in variables:
            name = d.name + (f"[{d.instance}]" if d.instance else "")
            if d.component_instance:
                name = f"{d.component}[{d.component_instance}].{name}"
            limits = ", ".join(d.values_list) if d.values_list else _limits(d)
            extras = [a.value for a in Attribute if a in d.attributes and a is not Attribute.ACTUAL]  # stable order
            notes = (" Attributes: Actual, " + ", ".join(extras) + "." if extras else "") + \
                (" Reboot required." if d.reboot_required else "") + ("" if d.persistent else " Not persisted.")
            default = "" if d.default is None else f"`{d.default}`"
            unit = f" {d.unit}" if d.unit else ""
            text = d.description + ("" if not notes or d.description.endswith(".") else ".") + notes
            lines.append(f"| {name} | {d.data_type.value}{unit} | {default} | {short[d.mutability]} | {limits} |"
                         f" {text} |")
        lines.append("")
    return "\n".join(lines)


def _limits(d: Variable) -> str:
    if d.data_type is DataType.STRING and (d.min_length or d.max_length):
        return f"{d.min_length or 0}..{d.max_length or MAX_VALUE_LENGTH} chars"
    if d.min_limit is None and d.max_limit is None:
        return ""
    low = "" if d.min_limit is None else _number(d.min_limit)
    high = "" if d.max_limit is None else _number(d.max_limit)
    return f"{low}..{high}"
