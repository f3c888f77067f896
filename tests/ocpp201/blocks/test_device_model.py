"""The OCPP 2.0.1 device model on its own (definitions of this test, a real store): values checked against
their definition, MinSet/MaxSet bounds, RebootRequired, per-EVSE instances, what persists (and what a
corrupt store holds is quarantined), the initial configuration, change hooks and waits, and the report
entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from everpy.core.clock import FakeClock
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v201.device_model import Address, Attribute, DataType, DeviceModel, Scope, Variable
from everpy.ocpp.v201.variables.kinds import R, W, boolean, decimal, integer, members, option, ref, sequence, string
from tests.ocpp.blocks.fakes import LOG

C = "TestCtrlr"
LIMITS = frozenset({Attribute.ACTUAL, Attribute.MIN_SET, Attribute.MAX_SET})
DEFINITIONS: tuple[Variable, ...] = (
    integer(C, "Count", 5, "an integer", min_limit=0, max_limit=10),
    decimal(C, "Ratio", 0.5, "a decimal", min_limit=0, max_limit=1),
    boolean(C, "Enabled", True, "a flag"),
    option(C, "Mode", "A", ("A", "B"), "one of"),
    members(C, "Set", "x", ("x", "y", "z"), "a set"),
    sequence(C, "Order", "x,y", ("x", "y", "z"), "a sequence"),
    string(C, "Name", "n", "a string", min_length=1, max_length=5),
    Variable(C, "When", DataType.DATETIME, "a time"),
    integer(C, "Limited", 5, "with bounds", attributes=LIMITS),
    integer(C, "Fixed", 1, "read-only", mutability=R),
    string(C, "Secret", None, "write-only", mutability=W),
    integer(C, "Slow", 1, "takes effect after a reboot", reboot_required=True),
    integer(C, "Volatile", 1, "not persisted", persistent=False),
    integer(C, "Instanced", 1, "with an instance", instance="One"),
    integer("Box", "Level", 0, "one per EVSE", scope=Scope.EVSE),
    boolean("Box", "Enabled", True, "per EVSE flag", scope=Scope.EVSE),
    boolean("Plug", "Problem", False, "per connector", scope=Scope.CONNECTOR),
)
COUNT = ref(DEFINITIONS, C, "Count")
LIMITED = ref(DEFINITIONS, C, "Limited")
LEVEL = ref(DEFINITIONS, "Box", "Level")
COMPONENT = {"name": C}


def model_of(tmp_path: Path, initial: dict[str, str] | None = None, store: OcppStore | None = None) -> DeviceModel:
    store = store or OcppStore(tmp_path / "dm.db", ocpp_version="2.0.1", log=LOG)
    return DeviceModel(store, DEFINITIONS, {1: 1, 2: 1}, initial or {}, LOG)


def set_status(model: DeviceModel, name: str, value: str, attribute: str = "Actual", **variable: str) -> str:
    return model.set(COMPONENT, {"name": name, **variable}, value, attribute).status


NORMAL = {"+3": "3", "FALSE": "false"}  # the one spelling a value is kept in


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("Count", ["0", "10", "+3"], ["11", "-1", "1.5", "ten", ""]),
    ("Ratio", ["0", "1", "0.25", ".5"], ["1.5", "nan", "inf", "1e0x"]),
    ("Enabled", ["true", "FALSE"], ["yes", "1"]),
    ("Mode", ["B"], ["C", "a"]),
    ("Set", ["y,x", "z"], ["x,x", "w"]),
    ("Order", ["z,y,x"], ["x,w"]),
    ("Name", ["a", "abcde"], ["", "abcdef"]),
    ("When", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00"],
     ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01"]),
])
def test_a_value_is_checked_against_its_definition(tmp_path, name, good, bad):
    """TC_B_09_CS TC_B_11_CS: values of the variable's type, range, list or length are Accepted, others
    Rejected with InvalidValue and the value kept."""
    model = model_of(tmp_path)
    for value in bad:
        before = model.value(ref(DEFINITIONS, C, name))
        outcome = model.set(COMPONENT, {"name": name}, value)
        assert (outcome.status, outcome.code) == ("Rejected", "InvalidValue"), value
        assert model.value(ref(DEFINITIONS, C, name)) == before
    for value in good:
        assert set_status(model, name, value) == "Accepted", value
        assert model.value(ref(DEFINITIONS, C, name)) == NORMAL.get(value, value)


def test_min_set_and_max_set_bound_actual(tmp_path):
    """TC_B_09_CS (MinSet/MaxSet): once MinSet/MaxSet are set, Actual and Target stay within them; MinSet may
    not pass MaxSet."""
    model = model_of(tmp_path)
    assert set_status(model, "Limited", "2", "MinSet") == "Accepted"
    assert set_status(model, "Limited", "8", "MaxSet") == "Accepted"
    assert set_status(model, "Limited", "1") == "Rejected"
    assert set_status(model, "Limited", "9") == "Rejected"
    assert set_status(model, "Limited", "8") == "Accepted"
    assert set_status(model, "Limited", "9", "MinSet") == "Rejected"
    assert set_status(model, "Limited", "1", "MaxSet") == "Rejected"
    assert model.get(COMPONENT, {"name": "Limited"}, "MaxSet").value == "8"
    assert model.get(COMPONENT, {"name": "Limited"}, "Target").status == "NotSupportedAttributeType"


def test_mutability_and_reboot_required(tmp_path):
    """TC_B_39_CS TC_B_09_CS: read-only Rejected (ReadOnly); write-only settable but not readable; a variable
    that takes effect after a reboot answers RebootRequired and keeps the new value."""
    model = model_of(tmp_path)
    assert model.set(COMPONENT, {"name": "Fixed"}, "2").code == "ReadOnly"
    assert set_status(model, "Secret", "s3cret") == "Accepted"
    got = model.get(COMPONENT, {"name": "Secret"})
    assert (got.status, got.value, got.code) == ("Rejected", None, "WriteOnly")
    assert set_status(model, "Slow", "7") == "RebootRequired"
    assert model.int(ref(DEFINITIONS, C, "Slow")) == 7


def test_names_and_places_are_looked_up_exactly(tmp_path):
    """TC_B_32_CS TC_B_33_CS TC_B_35_CS TC_B_36_CS: unknown component / variable / instance; a per-EVSE
    component needs an existing EVSE; a per-connector one its connector; each EVSE keeps its own value."""
    model = model_of(tmp_path)
    assert model.get({"name": "Nope"}, {"name": "Count"}).status == "UnknownComponent"
    assert model.get(COMPONENT, {"name": "Nope"}).status == "UnknownVariable"
    assert model.get(COMPONENT, {"name": "Instanced"}).status == "UnknownVariable"
    assert model.get(COMPONENT, {"name": "Instanced", "instance": "One"}).value == "1"
    assert model.get({"name": "Box"}, {"name": "Level"}).status == "UnknownComponent"
    assert model.get({"name": "Box", "evse": {"id": 3}}, {"name": "Level"}).status == "UnknownComponent"
    assert model.get({"name": "Plug", "evse": {"id": 1}}, {"name": "Problem"}).status == "UnknownComponent"
    assert model.get({"name": "Plug", "evse": {"id": 1, "connectorId": 1}}, {"name": "Problem"}).value == "false"
    assert model.set({"name": "Box", "evse": {"id": 2}}, {"name": "Level"}, "4").status == "Accepted"
    assert (model.int(LEVEL, 1), model.int(LEVEL, 2)) == (0, 4)


def test_what_persists_and_what_a_corrupt_store_holds(tmp_path):
    """TC_B_09_CS (persisted): set values are there after a restart, non-persistent ones are not; a stored
    value that no longer fits is quarantined and the default used; a stored read-only value is ignored."""
    model = model_of(tmp_path)
    store = model._store
    assert set_status(model, "Count", "7") == "Accepted"
    assert set_status(model, "Volatile", "9") == "Accepted"
    assert set_status(model, "Limited", "3", "MinSet") == "Accepted"
    store.set_config(Address(C, None, None, None, "Ratio", None).key(), "7.5")
    store.set_config(Address(C, None, None, None, "Fixed", None).key(), "5")
    again = model_of(tmp_path, store=store)
    assert again.int(COUNT) == 7
    assert again.int(ref(DEFINITIONS, C, "Volatile")) == 1
    assert again.value(LIMITED, attribute=Attribute.MIN_SET) == "3"
    assert again.float(ref(DEFINITIONS, C, "Ratio")) == 0.5
    assert again.int(ref(DEFINITIONS, C, "Fixed")) == 1
    assert [(row.source, row.data) for row in store.quarantined()] == [(f"{C}/Ratio/Actual", "7.5")]


def test_initial_configuration(tmp_path):
    """TC_B_01_CS (configured station): the module's configuration sets station variables, normalised; an
    unknown name or a bad value stops the start with a message that says why; a persisted value wins."""
    assert model_of(tmp_path, {f"{C}.Enabled": "TRUE", f"{C}.Instanced[One]": "3"}).value(
        ref(DEFINITIONS, C, "Enabled")) == "true"
    with pytest.raises(ValueError, match="not a variable"):
        model_of(tmp_path, {f"{C}.Nope": "1"})
    with pytest.raises(ValueError, match="above the maximum"):
        model_of(tmp_path, {f"{C}.Count": "11"})
    with pytest.raises(ValueError, match="defined twice"):
        DeviceModel(OcppStore(tmp_path / "x.db", ocpp_version="2.0.1", log=LOG), DEFINITIONS + DEFINITIONS[:1],
                    {1: 1}, {}, LOG)


def test_set_internal_checks_and_tells_the_hooks(tmp_path):
    """The station's own values are checked too (a bug is an error, never a stored nonsense value); every change
    reaches the change hooks with its address."""
    model = model_of(tmp_path)
    seen: list[tuple[Address, str]] = []
    model.on_change(lambda address, value: seen.append((address, value)))
    model.set_internal(ref(DEFINITIONS, C, "Fixed"), "4")
    with pytest.raises(ValueError):
        model.set_internal(COUNT, "99")
    assert set_status(model, "Count", "6") == "Accepted"
    assert [(a.ref, v) for a, v in seen] == [(ref(DEFINITIONS, C, "Fixed"), "4"), (COUNT, "6")]


async def test_waits_end_with_a_change_or_the_time(tmp_path):
    """wait_change returns the next value; sleep_unless_changed ends early on a change (fake clock)."""
    model = model_of(tmp_path)
    clock = FakeClock()
    waiting = asyncio.ensure_future(model.wait_change(COUNT))
    await asyncio.sleep(0)
    assert set_status(model, "Count", "3") == "Accepted"
    assert await asyncio.wait_for(waiting, 5) == "3"
    sleeping = asyncio.ensure_future(model.sleep_unless_changed(clock, 100, COUNT))
    await asyncio.sleep(0)
    await clock.advance(101)
    assert await asyncio.wait_for(sleeping, 5) is True
    sleeping = asyncio.ensure_future(model.sleep_unless_changed(clock, 100, COUNT))
    for _ in range(100):  # a few loop steps (no time passes) until the wait is registered
        if model._waiters:
            break
        await asyncio.sleep(0)
    model.set_internal(COUNT, "4")
    assert await asyncio.wait_for(sleeping, 5) is False
    assert model._waiters == {}, "a finished wait leaves nothing behind"


def test_report_data_describes_each_instance(tmp_path):
    """TC_B_13_CS TC_B_53_CS: one entry per instance with its attributes (no value for write-only),
    characteristics (type, limits, list, string length as maxLimit); flag() reads a component's state."""
    model = model_of(tmp_path)
    data = model.report_data()
    assert len(data) == len(DEFINITIONS) + 2 * 2 - 2 + 2 * 1 - 1  # Box: 2 variables x 2 EVSEs, Plug: 2 connectors
    count = next(e for e in data if e["variable"] == {"name": "Count"})
    assert count["variableAttribute"] == [{"type": "Actual", "mutability": "ReadWrite", "persistent": True,
                                           "constant": False, "value": "5"}]
    assert count["variableCharacteristics"] == {"dataType": "integer", "supportsMonitoring": False,
                                                "minLimit": 0, "maxLimit": 10}
    assert next(e for e in data if e["variable"] == {"name": "Name"})["variableCharacteristics"]["maxLimit"] == 5
    assert next(e for e in data if e["variable"] == {"name": "Mode"})["variableCharacteristics"]["valuesList"] == "A,B"
    secret = next(e for e in data if e["variable"] == {"name": "Secret"})
    assert "value" not in secret["variableAttribute"][0]
    limited = next(e for e in data if e["variable"] == {"name": "Limited"})
    assert [a["type"] for a in limited["variableAttribute"]] == ["Actual", "MinSet", "MaxSet"]
    assert [e["component"] for e in data if e["component"]["name"] == "Plug"] == [
        {"name": "Plug", "evse": {"id": 1, "connectorId": 1}}, {"name": "Plug", "evse": {"id": 2, "connectorId": 1}}]
    configurable = model.report_data(configurable_only=True)
    assert not any(e["variable"]["name"] == "Fixed" for e in configurable)
    level = next(d for d in DEFINITIONS if d.name == "Level")
    assert model.flag(level, 1, None, "Enabled") is True and model.flag(level, 1, None, "Problem") is None


def test_transaction_points_the_station_cannot_reach_are_refused(tmp_path):
    """TxStartPoint/TxStopPoint take only the points this station senses: ParkingBayOccupancy (no bay sensor)
    and DataSigned (no signed meter data) are Rejected, so no transaction waits for a point that never comes."""
    from everpy.ocpp.store import OcppStore
    from everpy.ocpp.v201.device_model import DeviceModel
    from everpy.ocpp.v201.variables import DEFINITIONS
    from tests.ocpp.blocks.fakes import LOG

    model = DeviceModel(OcppStore(tmp_path / "s.db", ocpp_version="2.0.1", log=LOG), DEFINITIONS, {1: 1}, {}, LOG)
    for variable in ("TxStartPoint", "TxStopPoint"):
        for value in ("ParkingBayOccupancy", "EVConnected,DataSigned"):
            outcome = model.set({"name": "TxCtrlr"}, {"name": variable}, value)
            assert outcome.status == "Rejected", (variable, value)
        assert model.set({"name": "TxCtrlr"}, {"name": variable}, "EVConnected,Authorized").status == "Accepted"
