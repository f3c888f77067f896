"""docs/ocpp201-device-model.md is generated from the device model's definitions and must be current; the
definitions themselves are sane (every default a value of its variable, names unique)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Mutability, render_markdown
from everpy.ocpp.v201.variables import DEFINITIONS
from everpy.ocpp.v201.variables.__main__ import COMMAND, DOC


def test_the_doc_is_generated_from_the_definitions():
    """TC_B_53_CS (the variables FullInventory reports are the ones documented): regenerated and compared,
    so variables added by any block must be in the doc."""
    assert DOC.read_text() == render_markdown(DEFINITIONS) + "\n", f"the doc is stale; regenerate it: {COMMAND}"


def test_every_default_is_a_value_of_its_variable_and_names_are_unique():
    names = [(d.component, d.component_instance, d.name, d.instance) for d in DEFINITIONS]
    assert len(set(names)) == len(names)
    for definition in DEFINITIONS:
        if definition.default is not None:
            assert definition.problem(definition.default) is None, definition
        if definition.mutability is Mutability.WRITE_ONLY:
            assert definition.default is None, f"{definition.name}: a write-only value is never reported"


def test_every_variable_is_in_the_doc():
    text = DOC.read_text()
    for definition in DEFINITIONS:
        assert f"| {definition.name}" in text or f".{definition.name}" in text, definition.name
