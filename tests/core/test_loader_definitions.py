"""Interfaces, types and errors: loading, one test per error class, and the compiled validators."""

import shutil
from pathlib import Path

import jsonschema
import pytest

from everpy.core.config_errors import ConfigError, ConfigIssue
from everpy.core.definitions import SchemaViolation, compile_quick_accept, load_definitions

FIXTURES = Path(__file__).parent.parent / "fixtures" / "loader" / "definitions"


@pytest.fixture(scope="module")
def definitions():
    return load_definitions([FIXTURES])


@pytest.fixture
def edited(tmp_path):
    """edited(relative_file, old, new) -> issues of the fixture definitions with one file changed."""

    def load_with(relative: str, old: str, new: str) -> list[ConfigIssue]:
        root = tmp_path / "definitions"
        if not root.exists():
            shutil.copytree(FIXTURES, root)
        target = root / relative
        text = target.read_text() if target.exists() else ""
        assert old == "" or text.count(old) == 1, old
        target.write_text(text.replace(old, new) if old else new)
        with pytest.raises(ConfigError) as caught:
            load_definitions([root])
        edited.text = target.read_text()
        edited.file = str(target)
        return caught.value.issues

    edited = load_with
    return edited


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if marker in line)


def only(issues: list[ConfigIssue]) -> ConfigIssue:
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# --- good definitions ----------------------------------------------------------------------------------


def test_fixture_definitions_load(definitions):
    assert sorted(definitions.interfaces) == ["controller", "display", "meter", "relay"]
    assert sorted(definitions.types) == ["meter", "units"]
    meter = definitions.interfaces["meter"]
    assert sorted(meter.cmds) == ["describe", "reset", "start_session", "stop_session"]
    assert meter.cmds["reset"].arguments == {} and meter.cmds["reset"].result is None
    assert meter.error_types == {"board/OverCurrent", "board/RelayWelded", "board/OverTemperature", "link/Timeout"}
    assert set(meter.errors) == {"board", "link"} and set(meter.errors["link"]) == {"Timeout"}
    timeout = meter.errors["link"]["Timeout"]
    assert (timeout.name, timeout.namespace, timeout.type) == ("Timeout", "link", "link/Timeout")
    assert definitions.interfaces["relay"].error_types == {"board/RelayWelded"}
    assert definitions.errors["board"]["RelayWelded"].description.startswith("A relay contact")


def test_later_directories_add_definitions(tmp_path, definitions):
    extra = tmp_path / "extra"
    (extra / "interfaces").mkdir(parents=True)
    (extra / "interfaces" / "fan.yaml").write_text(
        "description: A cooling fan\nvars:\n  rpm:\n    description: Speed\n    type: integer\n"
        "errors:\n  - reference: /errors/board#/OverTemperature\n"
    )
    both = load_definitions([FIXTURES, extra])
    assert "fan" in both.interfaces and "meter" in both.interfaces
    assert both.interfaces["fan"].error_types == {"board/OverTemperature"}


def test_unchanged_files_are_not_parsed_again(tmp_path):
    root = tmp_path / "definitions"
    shutil.copytree(FIXTURES, root)
    first = load_definitions([root])
    assert load_definitions([root]) is first
    relay = root / "interfaces" / "relay.yaml"
    relay.write_text(relay.read_text().replace("A contactor", "A relay"))
    assert load_definitions([root]).interfaces["relay"].description.startswith("A relay")


# --- validators ------------------------------------------------------------------------------------------


def test_argument_validation(definitions):
    check_args, check_result = definitions.cmd_validators("meter", "start_session")
    check_args({"session_id": "s1", "direction": "Import"})
    check_result(True)
    with pytest.raises(SchemaViolation, match=r"meter.start_session arguments: direction: 'Up' is not one of"):
        check_args({"session_id": "s1", "direction": "Up"})
    with pytest.raises(SchemaViolation, match="'direction' is a required property"):
        check_args({"session_id": "s1"})
    with pytest.raises(SchemaViolation, match="Additional properties are not allowed"):
        check_args({"session_id": "s1", "direction": "Import", "extra": 1})
    with pytest.raises(SchemaViolation, match="session_id: '' should be non-empty"):
        check_args({"session_id": "", "direction": "Import"})
    with pytest.raises(jsonschema.ValidationError, match="result: 'yes' is not of type 'boolean'"):
        check_result("yes")


def test_command_without_result_must_return_none(definitions):
    check_args, check_result = definitions.cmd_validators("meter", "reset")
    check_args({})
    check_result(None)
    with pytest.raises(SchemaViolation, match="meter.reset result: 1 is not of type 'null'"):
        check_result(1)


def test_nested_references_are_followed(definitions):
    _, check_result = definitions.cmd_validators("meter", "stop_session")
    check_result({"session_id": "s", "energy": {"total": 3.5, "per_phase": [1, 1.5, 1]}})
    with pytest.raises(SchemaViolation, match=r"energy.total: -1 is less than the minimum of 0"):
        check_result({"session_id": "s", "energy": {"total": -1}})
    with pytest.raises(SchemaViolation, match=r"energy.per_phase: \[1, 2, 3, 4\] is too long"):
        check_result({"session_id": "s", "energy": {"total": 1, "per_phase": [1, 2, 3, 4]}})


def test_recursive_type(definitions):
    _, check_result = definitions.cmd_validators("meter", "describe")
    check_result({"name": "root", "children": [{"name": "a", "children": [{"name": "b"}]}]})
    with pytest.raises(SchemaViolation, match=r"children\[0\].children\[0\].name: 7 is not of type 'string'"):
        check_result({"name": "root", "children": [{"name": "a", "children": [{"name": 7}]}]})


def test_var_validation_with_type_arrays_and_additional_properties(definitions):
    check = definitions.var_validator("meter", "reading")
    check({"timestamp": "t", "energy": {"total": 1}, "voltage": None, "labels": {"site": "north"}})
    check({"timestamp": "t", "energy": {"total": 1}, "voltage": 229.5})
    with pytest.raises(SchemaViolation, match=r"voltage: 'high' is not of type 'number', 'null'"):
        check({"timestamp": "t", "energy": {"total": 1}, "voltage": "high"})
    with pytest.raises(SchemaViolation, match=r"labels.site: 3 is not of type 'string'"):
        check({"timestamp": "t", "energy": {"total": 1}, "labels": {"site": 3}})
    serial = definitions.var_validator("meter", "serial")
    serial("00C0FFEE")
    with pytest.raises(SchemaViolation, match="does not match"):
        serial("coffee")


def test_array_argument_items(definitions):
    check_args, _ = definitions.cmd_validators("display", "show")
    check_args({"lines": ["hello"], "options": {"font": "big"}})
    with pytest.raises(SchemaViolation, match=r"lines\[1\]: 'x{21}' is too long"):
        check_args({"lines": ["ok", "x" * 21], "options": {}})


def test_validators_are_compiled_once(definitions):
    assert definitions.cmd_validators("relay", "set_closed") is definitions.cmd_validators("relay", "set_closed")
    assert definitions.var_validator("relay", "state") is definitions.var_validator("relay", "state")


def test_unknown_interface_cmd_or_var(definitions):
    with pytest.raises(KeyError, match="unknown interface 'relais'"):
        definitions.cmd_validators("relais", "set_closed")
    with pytest.raises(KeyError, match="interface 'relay' has no command 'close'.*'set_closed'"):
        definitions.cmd_validators("relay", "close")
    with pytest.raises(KeyError, match="interface 'relay' has no var 'status'"):
        definitions.var_validator("relay", "status")


# --- interface file errors -------------------------------------------------------------------------------


def test_unknown_key_in_interface(edited):
    issue = only(edited("interfaces/relay.yaml", "vars:\n", "variables:\n"))
    assert (issue.file, issue.line, issue.key_path) == (edited.file, line_of(edited.text, "variables:"), "variables")
    assert issue.hint == "did you mean 'vars'?"


def test_unknown_key_in_command(edited):
    issue = only(edited("interfaces/relay.yaml", "    result:\n", "    results:\n"))
    assert issue.key_path == "cmds.set_closed.results"
    assert (issue.line, issue.hint) == (line_of(edited.text, "results:"), "did you mean 'result'?")


def test_command_without_description(edited):
    text = "    description: Close or open the contactor\n"
    issue = only(edited("interfaces/relay.yaml", text, ""))
    assert (issue.key_path, issue.message) == ("cmds.set_closed", "missing required key 'description'")
    assert issue.line == line_of(edited.text, "set_closed:")


def test_argument_without_type(edited):
    issue = only(edited("interfaces/relay.yaml", "        type: boolean\n    result:", "    result:"))
    assert issue.key_path == "cmds.set_closed.arguments.closed"
    assert (issue.message, issue.expected) == ("argument schema lacks 'type'", "key 'type'")
    assert issue.line == line_of(edited.text, "      closed:")


def test_var_without_description(edited):
    issue = only(edited("interfaces/relay.yaml", "    description: Contactor state from its feedback contact\n", ""))
    assert (issue.key_path, issue.message) == ("vars.state", "var schema lacks 'description'")


def test_default_in_argument_is_forbidden(edited):
    issue = only(
        edited("interfaces/relay.yaml", "        type: boolean\n", "        type: boolean\n        default: true\n")
    )
    assert issue.key_path == "cmds.set_closed.arguments.closed.default"
    assert issue.message == "default values are not allowed in argument schemas"
    assert issue.line == line_of(edited.text, "default: true")


def test_default_in_var_is_forbidden(edited):
    issue = only(edited("interfaces/relay.yaml", "      - Welded\n", "      - Welded\n    default: Open\n"))
    assert (issue.key_path, issue.line) == ("vars.state.default", line_of(edited.text, "default: Open"))


def test_null_argument_type(edited):
    issue = only(
        edited("interfaces/relay.yaml", "        type: boolean\n    result", "        type: 'null'\n    result")
    )
    assert issue.key_path == "cmds.set_closed.arguments.closed.type"
    assert issue.message == "argument type must not be null"


def test_invalid_json_schema(edited):
    issue = only(edited("interfaces/relay.yaml", "        type: boolean\n    result", "        type: bool\n    result"))
    assert issue.key_path == "cmds.set_closed.arguments.closed.type"
    assert issue.line == line_of(edited.text, "type: bool")
    assert issue.message == "value not allowed"
    assert issue.given == "'bool'" and "'boolean'" in issue.expected
    assert issue.hint == "did you mean 'boolean'?"


def test_invalid_json_schema_keyword_value(edited):
    issue = only(edited("types/units.yaml", "        minimum: 0\n", "        minimum: zero\n"))
    assert (issue.file, issue.key_path) == (edited.file, "types.Energy.properties.total.minimum")
    assert (issue.expected, issue.given) == ("number", "string 'zero'")


def test_reference_to_unknown_type_file(edited):
    issue = only(edited("interfaces/meter.yaml", "$ref: /meter#/Reading", "$ref: /meters#/Reading"))
    assert (issue.key_path, issue.line) == ("vars.reading.$ref", line_of(edited.text, "/meters#/Reading"))
    assert issue.message == "unresolvable reference: no type file 'meters'"
    assert (issue.given, issue.hint) == ("'/meters#/Reading'", "did you mean 'meter'?")


def test_reference_to_unknown_type(edited):
    issue = only(edited("types/meter.yaml", "$ref: /units#/Voltage", "$ref: /units#/Voltag"))
    assert (issue.key_path, issue.line) == ("types.Reading.properties.voltage.$ref", line_of(edited.text, "#/Voltag"))
    assert issue.message == "unresolvable reference: type file 'units' has no 'Voltag'"
    assert (issue.expected, issue.hint) == ("one of: 'Energy', 'Voltage'", "did you mean 'Voltage'?")


def test_unsupported_reference_form(edited):
    issue = only(edited("interfaces/meter.yaml", "$ref: /meter#/Reading", "$ref: meter.yaml#/Reading"))
    assert issue.message == "unsupported reference"
    assert issue.expected == "'/<typefile>#/<TypeName>'"


def test_error_reference_to_unknown_file(edited):
    issue = only(edited("interfaces/relay.yaml", "/errors/board#/RelayWelded", "/errors/bord#/RelayWelded"))
    assert (issue.key_path, issue.line) == ("errors[0].reference", line_of(edited.text, "/errors/bord"))
    assert (issue.message, issue.hint) == ("unknown error file 'bord'", "did you mean 'board'?")


def test_error_reference_to_unknown_error(edited):
    issue = only(edited("interfaces/relay.yaml", "/errors/board#/RelayWelded", "/errors/board#/RelayWelding"))
    assert issue.message == "error file 'board' has no error 'RelayWelding'"
    assert issue.hint == "did you mean 'RelayWelded'?"


def test_malformed_error_reference(edited):
    issue = only(edited("interfaces/relay.yaml", "/errors/board#/RelayWelded", "errors/board/RelayWelded"))
    assert (issue.message, issue.given) == ("invalid error reference", "'errors/board/RelayWelded'")


def test_error_referenced_twice(edited):
    issue = only(
        edited(
            "interfaces/relay.yaml",
            "  - reference: /errors/board#/RelayWelded\n",
            "  - reference: /errors/board#/RelayWelded\n  - reference: /errors/board\n",
        )
    )
    assert (issue.key_path, issue.message) == ("errors[1].reference", "error board/RelayWelded is referenced twice")


# --- types and errors files ---------------------------------------------------------------------------


def test_type_without_description(edited):
    issue = only(edited("types/meter.yaml", "    description: Which way energy flows\n", ""))
    assert (issue.key_path, issue.message) == ("types.Direction", "type schema lacks 'description'")
    assert issue.line == line_of(edited.text, "Direction:")


def test_types_file_with_unknown_key(edited):
    issue = only(edited("types/units.yaml", "types:\n", "typess:\n"))
    assert (issue.key_path, issue.hint) == ("typess", "did you mean 'types'?")


def test_error_name_pattern(edited):
    issue = only(edited("errors/link.yaml", "name: BadFrame", "name: bad_frame"))
    assert (issue.key_path, issue.line) == ("errors[1].name", line_of(edited.text, "bad_frame"))
    assert (issue.expected, issue.given) == ("a string matching ^[A-Z][A-Za-z0-9]*$", "'bad_frame'")


def test_error_file_without_description(edited):
    issue = only(edited("errors/link.yaml", "description: Faults of a serial or network link\n", ""))
    assert (issue.key_path, issue.message) == ("", "missing required key 'description'")


def test_malformed_yaml_in_definitions(edited):
    issue = only(edited("interfaces/display.yaml", "vars: {}\n", "vars: {\n"))
    assert issue.file == edited.file
    assert issue.message.startswith("malformed YAML")
    assert issue.line is not None


def test_duplicate_definition_across_directories(tmp_path):
    extra = tmp_path / "extra"
    (extra / "types").mkdir(parents=True)
    (extra / "types" / "units.yaml").write_text("description: Other units\ntypes: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_definitions([FIXTURES, extra])
    issue = only(caught.value.issues)
    assert issue.file == str(extra / "types" / "units.yaml")
    assert issue.message == f"type file 'units' is defined twice (first in {FIXTURES / 'types' / 'units.yaml'})"


def test_missing_definitions_directory(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_definitions([tmp_path / "nowhere"])
    assert only(caught.value.issues).message == "definitions directory does not exist"


def test_all_definition_errors_at_once(edited, tmp_path):
    edited("interfaces/relay.yaml", "vars:\n", "variables:\n")
    issues = edited("types/units.yaml", "        minimum: 0\n", "        minimum: zero\n")
    files = sorted({Path(i.file).name for i in issues})
    assert files == ["relay.yaml", "units.yaml"]
    assert len(issues) == 2


def test_metaschema_check_can_be_skipped_but_references_are_still_checked(edited, tmp_path):
    edited("types/units.yaml", "        minimum: 0\n", "        minimum: zero\n")
    root = tmp_path / "definitions"
    assert load_definitions([root], check_schemas=False).types["units"]["Energy"]["properties"]["total"]
    (root / "interfaces" / "relay.yaml").write_text(
        (root / "interfaces" / "relay.yaml").read_text().replace("    type: string\n", "    $ref: /units#/Nope\n")
    )
    with pytest.raises(ConfigError, match="unresolvable reference"):
        load_definitions([root], check_schemas=False)


def test_structural_and_schema_errors_of_one_file_together(edited):
    edited("interfaces/relay.yaml", "vars:\n", "variables:\n")
    issues = edited(
        "interfaces/relay.yaml", "        type: boolean\n", "        type: boolean\n        default: true\n"
    )
    assert [i.key_path for i in issues] == ["cmds.set_closed.arguments.closed.default", "variables"]


def test_var_with_invalid_qos(edited):
    issue = only(edited("interfaces/meter.yaml", "    qos: 2\n", "    qos: 3\n"))
    assert (issue.key_path, issue.line) == ("vars.serial.qos", line_of(edited.text, "qos: 3"))
    assert (issue.expected, issue.given) == ("an integer 0..2", "3")


def test_error_file_name_must_be_lower_case(edited):
    issue = only(edited("errors/Power.yaml", "", "description: Power faults\nerrors: []\n"))
    assert (issue.file, issue.message) == (edited.file, "invalid error file name 'Power'")
    assert issue.expected == "a name matching ^[a-z][a-zA-Z0-9_]*$"


# --- quick acceptance (the fast path in front of jsonschema) -------------------------------------------

TRICKY_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    -0.5,
    1e12,
    "",
    "x",
    "Import",
    "00C0FFEE",
    "coffee",
    "x" * 40,
    [],
    [1],
    ["a", "b"],
    ["x" * 21],
    [1, 2, 3, 4],
    {},
    {"total": 1},
    {"total": -1},
    {"total": True},
    {"total": 1, "per_phase": [1, 2]},
    {"total": 1, "other": 2},
    {"session_id": "s", "energy": {"total": 0}},
    {"name": "n", "children": [{"name": "c"}]},
    {"timestamp": "t", "energy": {"total": 1}, "voltage": None},
    {"timestamp": "t", "energy": {"total": 1}, "labels": {"a": "b", "c": 1}},
]


def _all_schemas(definitions):
    for iface in definitions.interfaces.values():
        for cmd in iface.cmds.values():
            yield from cmd.arguments.values()
            if cmd.result is not None:
                yield cmd.result
        yield from iface.vars.values()
    for types in definitions.types.values():
        yield from types.values()


def test_quick_accept_never_accepts_what_jsonschema_rejects(definitions):
    compiled = 0
    for raw in _all_schemas(definitions):
        schema = definitions.inline_refs(raw)
        quick = compile_quick_accept(schema)
        if quick is None:
            continue
        compiled += 1
        validator = jsonschema.Draft7Validator(schema, registry=definitions.registry())
        candidates = TRICKY_VALUES + [{"lines": v, "options": {}} for v in TRICKY_VALUES]
        for value in candidates:
            if quick(value):
                assert validator.is_valid(value), (schema, value)
    assert compiled >= 20


@pytest.mark.parametrize(
    ("schema", "value", "accepted"),
    [
        ({"type": "integer"}, True, False),  # bool is not an integer in JSON schema
        ({"type": "integer"}, 3.0, True),  # but an integral float is
        ({"type": "number", "minimum": 0}, -0.1, False),
        ({"minimum": 5}, "text", True),  # numeric keywords ignore non-numbers
        ({"minimum": 5}, False, True),  # ... and booleans
        ({"type": ["string", "null"]}, None, True),
        ({"enum": ["A", "B"]}, "C", False),
        ({"maxLength": 2}, ["a", "b", "c"], True),  # string keywords ignore lists
        ({"type": "object", "additionalProperties": False, "properties": {"a": {}}}, {"b": 1}, False),
        ({"type": "object", "additionalProperties": {"type": "string"}}, {"b": "x"}, True),
    ],
)
def test_quick_accept_agrees_with_jsonschema(schema, value, accepted):
    assert compile_quick_accept(schema)(value) is accepted
    assert jsonschema.Draft7Validator(schema).is_valid(value) is accepted


@pytest.mark.parametrize(
    "schema",
    [
        {"enum": [1, "a"]},  # True == 1 in Python but not in JSON schema: left to jsonschema
        {"anyOf": [{"type": "string"}]},
        {"$ref": "/meter#/Tree"},
        {"type": "object", "patternProperties": {"^a": {}}, "additionalProperties": False},
        {"items": [{"type": "string"}]},
        {"uniqueItems": True},
    ],
)
def test_quick_accept_leaves_unhandled_keywords_to_jsonschema(schema):
    assert compile_quick_accept(schema) is None


def test_mapping_that_is_not_a_dict_goes_to_jsonschema():
    from types import MappingProxyType

    quick = compile_quick_accept({"type": "object", "required": ["a"]})
    assert quick(MappingProxyType({})) is False
