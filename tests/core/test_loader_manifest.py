"""Module manifests: the fixture manifests load, and one test per error class."""

from pathlib import Path

import pytest

from everpy.core.config_errors import ConfigError, ConfigIssue
from everpy.core.manifest import config_schema, fill_defaults, load_manifest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "loader" / "modules"
CONTROLLER = (FIXTURES / "Controller" / "manifest.yaml").read_text()


@pytest.fixture
def broken(tmp_path):
    """broken(old, new) -> the single issue of the Controller manifest with `old` replaced by `new`."""

    def load(old: str, new: str, base: str = CONTROLLER) -> ConfigIssue:
        assert base.count(old) == 1, old
        path = tmp_path / "Controller" / "manifest.yaml"
        path.parent.mkdir(exist_ok=True)
        load.text = base.replace(old, new)
        path.write_text(load.text)
        with pytest.raises(ConfigError) as caught:
            load_manifest(path)
        issues = caught.value.issues
        assert len(issues) == 1, "\n".join(map(str, issues))
        assert issues[0].file == str(path)
        return issues[0]

    return load


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if marker in line)


# --- good manifests ------------------------------------------------------------------------------------


def test_controller_manifest():
    manifest = load_manifest(FIXTURES / "Controller" / "manifest.yaml")
    assert manifest.name == "Controller"
    assert manifest.enable_global_errors is True and manifest.enable_external_mqtt is False
    assert manifest.enable_telemetry is False
    assert manifest.metadata["authors"] == ["everpy developers", "loader tests"]
    assert manifest.provides["main"].interface == "controller"
    meter, relays, display = (manifest.requires[k] for k in ("meter", "relays", "display"))
    assert (meter.interface, meter.min_connections, meter.max_connections) == ("meter", 1, 1)
    assert (relays.min_connections, relays.max_connections) == (1, 2)
    assert display.min_connections == 0 and display.ignore == {"vars": ["status"], "errors": True}
    entry = manifest.config["max_current_A"]
    assert (entry.type, entry.default, entry.has_default, entry.mandatory) == ("number", 32, True, False)
    assert entry.schema == {"type": "number", "minimum": 6, "maximum": 80}
    assert entry.mutability == "ReadOnly"


def test_meter_manifest_entries():
    manifest = load_manifest(FIXTURES / "Meter" / "manifest.yaml")
    assert manifest.enable_telemetry is True
    assert manifest.config["serial_port"].mandatory
    assert manifest.config["scale"].mutability == "ReadWrite"
    assert manifest.config["baud_rate"].schema == {"type": "integer", "enum": [9600, 19200, 38400]}
    impl = manifest.provides["main"].config
    assert impl["session_limit"].mandatory and not impl["tariff_text"].mandatory


def test_free_form_metadata_is_kept():
    manifest = load_manifest(FIXTURES / "Display" / "manifest.yaml")
    assert manifest.metadata["homepage"] == "https://example.invalid/display"
    assert manifest.config == {} and manifest.requires == {}


def test_config_schema_and_defaults():
    entries = load_manifest(FIXTURES / "Meter" / "manifest.yaml").config
    schema = config_schema(entries)
    assert schema["required"] == ["serial_port"] and schema["additionalProperties"] is False
    assert schema["properties"]["poll_interval_ms"] == {"type": "integer", "minimum": 100, "maximum": 60000}
    filled = fill_defaults(entries, {"serial_port": "/dev/x", "debug": True})
    assert filled == {
        "serial_port": "/dev/x",
        "baud_rate": 9600,
        "poll_interval_ms": 1000,
        "meter_id": "0000ABCD",
        "scale": 1.0,
        "debug": True,
    }


def test_name_can_be_given(tmp_path):
    assert load_manifest(FIXTURES / "Display" / "manifest.yaml", name="Screen").name == "Screen"


# --- one test per error class --------------------------------------------------------------------------


def test_missing_description(broken):
    issue = broken("description: Connects meter, relays and display\n", "")
    assert (issue.line, issue.key_path, issue.message) == (1, "", "missing required key 'description'")


def test_missing_metadata_authors(broken):
    issue = broken("  authors:\n    - everpy developers\n    - loader tests\n", "")
    assert (issue.key_path, issue.message) == ("metadata", "missing required key 'authors'")
    assert issue.line == line_of(broken.text, "metadata:")


def test_unknown_top_level_key(broken):
    issue = broken("enable_global_errors: true\n", "enable_global_error: true\n")
    assert (issue.line, issue.key_path) == (line_of(broken.text, "enable_global_error:"), "enable_global_error")
    assert issue.hint == "did you mean 'enable_global_errors'?"


def test_flag_of_wrong_type(broken):
    issue = broken("enable_global_errors: true\n", "enable_global_errors: 'yes'\n")
    assert (issue.key_path, issue.expected, issue.given) == ("enable_global_errors", "boolean", "string 'yes'")


def test_config_entry_with_unknown_type(broken):
    issue = broken("    type: number\n", "    type: float\n")
    assert (issue.line, issue.key_path) == (line_of(broken.text, "float"), "config.max_current_A.type")
    assert issue.expected == "one of: 'boolean', 'integer', 'number', 'string'"
    assert issue.given == "'float'"


def test_config_entry_without_description(broken):
    issue = broken("    description: Current limit\n", "")
    assert (issue.key_path, issue.message) == ("config.max_current_A", "missing required key 'description'")
    assert issue.line == line_of(broken.text, "max_current_A:")


def test_config_entry_default_of_wrong_type(broken):
    issue = broken("    default: 32\n", "    default: '32'\n")
    assert (issue.line, issue.key_path) == (line_of(broken.text, "default: '32'"), "config.max_current_A.default")
    assert (issue.expected, issue.given) == ("number", "string '32'")


def test_config_entry_default_out_of_bounds(broken):
    issue = broken("    default: 32\n", "    default: 100\n")
    assert (issue.key_path, issue.expected, issue.given) == ("config.max_current_A.default", "<= 80", "100")


def test_config_entry_with_invalid_schema_keyword(broken):
    issue = broken("    minimum: 6\n", "    minimum: six\n")
    assert (issue.line, issue.key_path) == (line_of(broken.text, "six"), "config.max_current_A.minimum")
    assert (issue.expected, issue.given) == ("number", "string 'six'")


def test_config_entry_with_bad_mutability(broken):
    issue = broken("    default: 32\n", "    default: 32\n    mutability: Writable\n")
    assert issue.key_path == "config.max_current_A.mutability"
    assert issue.expected == "one of: 'ReadOnly', 'ReadWrite', 'WriteOnly'"


def test_invalid_config_key_name(broken):
    issue = broken("  max_current_A:\n", "  max current:\n")
    assert (issue.key_path, issue.message) == ("config.max current", "invalid name 'max current'")
    assert issue.expected == "a name matching ^[a-zA-Z_][a-zA-Z0-9_.-]*$"


def test_provide_without_interface(broken):
    issue = broken("    interface: controller\n", "")
    assert (issue.key_path, issue.message) == ("provides.main", "missing required key 'interface'")


def test_provide_with_unknown_key(broken):
    issue = broken("    interface: controller\n", "    interface: controller\n    interfaces: [x]\n")
    assert (issue.key_path, issue.hint) == ("provides.main.interfaces", "did you mean 'interface'?")


def test_requirement_with_unknown_key(broken):
    issue = broken("    max_connections: 2\n", "    max_connection: 2\n")
    assert (issue.line, issue.key_path) == (line_of(broken.text, "max_connection:"), "requires.relays.max_connection")
    assert issue.hint == "did you mean 'max_connections'?"


def test_requirement_with_negative_minimum(broken):
    issue = broken("    min_connections: 1\n", "    min_connections: -1\n")
    assert (issue.key_path, issue.expected, issue.given) == ("requires.relays.min_connections", ">= 0", "-1")


def test_requirement_min_above_max(broken):
    issue = broken("    min_connections: 1\n", "    min_connections: 3\n")
    assert (issue.key_path, issue.message) == (
        "requires.relays.min_connections",
        "min_connections is larger than max_connections",
    )
    assert (issue.expected, issue.given) == ("<= 2", "3")


def test_ignore_with_unknown_key(broken):
    issue = broken("      errors: true\n", "      error: true\n")
    assert (issue.key_path, issue.hint) == ("requires.display.ignore.error", "did you mean 'errors'?")


def test_all_manifest_errors_at_once(tmp_path):
    path = tmp_path / "Bad" / "manifest.yaml"
    path.parent.mkdir()
    path.write_text(
        "description: x\n"  # too short
        "config:\n  a:\n    type: int\n    description: an entry\n"
        "  b:\n    type: integer\n    description: default out of range\n    minimum: 0\n    default: -1\n"
        "provides:\n  main:\n    description: no interface\n"
        "requires:\n  r:\n    interface: x\n    min_connections: 2\n"
        "metadata:\n  license: MIT\n  authors: []\n"
        "extra: 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_manifest(path)
    assert sorted(i.key_path for i in caught.value.issues) == [
        "config.a.type",
        "config.b.default",
        "description",
        "extra",
        "metadata.authors",
        "provides.main",
        "requires.r.min_connections",
    ]
    assert all(i.line is not None for i in caught.value.issues)
