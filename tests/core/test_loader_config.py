"""Run config validation: one good config, then one test per error class.

Each bad config is the good base config with one line changed, so each test can assert the exact
file:line, key path, expected and given values of the single issue it provokes.
"""

from pathlib import Path

import pytest

from everpy.core.config import Connection, read_run_config, validate_run_config
from everpy.core.config_errors import ConfigError, ConfigIssue
from everpy.core.definitions import load_definitions
from everpy.core.manifest import load_manifest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "loader"

BASE = """\
settings:
  log_level: INFO
active_modules:
  meter:
    module: Meter
    config_module:
      serial_port: /dev/ttyUSB0
      poll_interval_ms: 500
    config_implementation:
      main:
        session_limit: 4
  relay_1:
    module: Relay
  relay_2:
    module: Relay
  display:
    module: Display
  controller:
    module: Controller
    config_module:
      max_current_A: 16
    connections:
      meter:
        - module_id: meter
          implementation_id: main
      relays:
        - module_id: relay_1
          implementation_id: contactor
"""


@pytest.fixture(scope="module")
def definitions():
    return load_definitions([FIXTURES / "definitions"])


@pytest.fixture(scope="module")
def manifests():
    return {p.parent.name: load_manifest(p) for p in sorted(FIXTURES.glob("modules/*/manifest.yaml"))}


@pytest.fixture
def validate(tmp_path, definitions, manifests):
    """validate(text) -> RunConfig; validate.issues(text) -> the issues of a config that must fail."""

    class Validate:
        path = tmp_path / "run.yaml"

        def __call__(self, text):
            self.path.write_text(text)
            return validate_run_config(read_run_config(self.path), manifests, definitions)

        def issues(self, text) -> list[ConfigIssue]:
            with pytest.raises(ConfigError) as caught:
                self(text)
            return caught.value.issues

        def one_issue(self, text) -> ConfigIssue:
            issues = self.issues(text)
            assert len(issues) == 1, "\n".join(map(str, issues))
            assert issues[0].file == str(self.path)
            return issues[0]

    return Validate()


def changed(old: str, new: str, base: str = BASE) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if marker in line]
    return hits[occurrence - 1]


# --- good configs --------------------------------------------------------------------------------------


def test_base_config_is_valid_with_defaults_filled(validate):
    config = validate(BASE)
    meter = config.modules["meter"]
    assert meter.module == "Meter"
    assert meter.config == {
        "serial_port": "/dev/ttyUSB0",
        "baud_rate": 9600,
        "poll_interval_ms": 500,
        "meter_id": "0000ABCD",
        "scale": 1.0,
        "debug": False,
    }
    assert meter.impl_config == {"main": {"tariff_text": "", "session_limit": 4}}
    assert meter.process == "shared"
    assert meter.log_level is None
    controller = config.modules["controller"]
    assert controller.connections == {
        "meter": [Connection("meter", "main")],
        "relays": [Connection("relay_1", "contactor")],
        "display": [],
    }
    assert controller.manifest is not None and controller.manifest.name == "Controller"
    assert config.modules["relay_1"].impl_config == {"contactor": {}, "telemetry_meter": {}}


def test_fixture_config_with_every_key(definitions, manifests):
    raw = read_run_config(FIXTURES / "good.yaml")
    settings = raw.settings
    assert settings.log_level == "INFO"  # lower case accepted, normalised
    assert settings.log_levels == {"meter": "DEBUG"}
    assert settings.cmd_timeout_s == 5.0 and isinstance(settings.cmd_timeout_s, float)
    assert settings.restart_backoff_s == 0.25 and settings.restart_backoff_max_s == 8.0
    assert settings.mqtt_external_prefix == "external"
    assert settings.mqtt_broker_host is None  # no broker configured: the runtime starts its own
    assert raw.definitions_dirs == [FIXTURES.resolve() / "definitions"]
    assert raw.modules_dirs == [FIXTURES.resolve() / "modules"]

    config = validate_run_config(raw, manifests, definitions)
    meter = config.modules["meter"]
    assert meter.process == "own" and meter.log_level == "DEBUG"
    assert meter.config["baud_rate"] == 19200 and meter.config["meter_id"] == "0000BEEF"
    assert meter.telemetry == {"id": 1}
    assert meter.mapping == {"module": {"evse": 1, "connector": 1}, "implementations": {"main": {"evse": 1}}}
    assert config.modules["relay_1"].capabilities == ["cap_net_admin"]
    assert config.modules["controller"].access["config"]["allow_global_read"] is True
    assert [c.module_id for c in config.modules["controller"].connections["relays"]] == ["relay_1", "relay_2"]


def test_settings_defaults(tmp_path):
    settings = read_run_config({"active_modules": {}}).settings
    assert settings.mqtt_everest_prefix == "everest"
    assert settings.validate_schema is True
    assert (settings.cmd_timeout_s, settings.ready_timeout_s) == (30.0, 30.0)
    assert (settings.heartbeat_interval_s, settings.heartbeat_timeout_s) == (2.0, 10.0)
    assert (settings.restart_backoff_s, settings.restart_backoff_max_s) == (0.5, 30.0)
    assert settings.modules_dirs == [] and settings.definitions_dirs == []


def test_dict_config_is_validated_like_a_file(definitions, manifests):
    config = {"active_modules": {"display": {"module": "Display", "config_module": {"brightness": 3}}}}
    with pytest.raises(ConfigError) as caught:
        validate_run_config(read_run_config(config, name="<test>"), manifests, definitions)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("<test>", None)
    assert issue.key_path == "active_modules.display.config_module.brightness"


def test_everest_yaml_12_scalars(validate):
    # YAML 1.1 would read 0000ABCD fine but turn `0100` into octal 64 and `ON` into True.
    text = changed("      poll_interval_ms: 500\n", "      poll_interval_ms: 0100\n")
    assert validate(text).modules["meter"].config["poll_interval_ms"] == 100


# --- settings ------------------------------------------------------------------------------------------


def test_unknown_setting_with_did_you_mean(validate):
    text = changed("  log_level: INFO\n", "  log_levle: INFO\n")
    issue = validate.one_issue(text)
    assert issue.line == 2
    assert issue.key_path == "settings.log_levle"
    assert issue.message == "unknown key 'log_levle'"
    assert "'log_level'" in issue.expected and issue.given == "'log_levle'"
    assert issue.hint == "did you mean 'log_level'?"
    assert str(issue) == (
        f"{validate.path}:2: settings.log_levle: unknown key 'log_levle' "
        f"(expected {issue.expected}, given: 'log_levle'); did you mean 'log_level'?"
    )


def test_setting_of_wrong_type(validate):
    text = changed("  log_level: INFO\n", "  log_level: INFO\n  cmd_timeout_s: soon\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (3, "settings.cmd_timeout_s")
    assert (issue.expected, issue.given) == ("number", "string 'soon'")


def test_setting_out_of_range(validate):
    text = changed("  log_level: INFO\n", "  log_level: INFO\n  heartbeat_timeout_s: 0\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (3, "settings.heartbeat_timeout_s")
    assert (issue.expected, issue.given) == ("> 0", "0")


def test_setting_not_in_enum(validate):
    issue = validate.one_issue(changed("  log_level: INFO\n", "  log_level: INF\n"))
    assert (issue.line, issue.key_path, issue.given) == (2, "settings.log_level", "'INF'")
    assert "'INFO'" in issue.expected and issue.hint == "did you mean 'INFO'?"


def test_external_prefix_equal_to_everest_prefix(validate):
    text = changed("  log_level: INFO\n", "  mqtt_everest_prefix: ev\n  mqtt_external_prefix: ev\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (3, "settings.mqtt_external_prefix")
    assert issue.expected == "anything but 'ev'"


def test_log_levels_for_unknown_module(validate):
    text = changed("  log_level: INFO\n", "  log_levels:\n    metre: DEBUG\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (3, "settings.log_levels.metre")
    assert issue.hint == "did you mean 'meter'?"


# --- top level and module entries ------------------------------------------------------------------------


def test_unknown_top_level_key(validate):
    issue = validate.one_issue("active_module: {}\nactive_modules: {}\n")
    assert (issue.line, issue.key_path) == (1, "active_module")
    assert issue.hint == "did you mean 'active_modules'?"


def test_missing_active_modules(validate):
    issue = validate.one_issue("settings: {}\n")
    assert (issue.line, issue.key_path) == (1, "")
    assert issue.message == "missing required key 'active_modules'"


def test_empty_file(validate):
    issue = validate.one_issue("")
    assert issue.message == "the file is empty"


def test_module_layout_is_ignored(validate):
    validate(BASE + "x-module-layout:\n  anything: [1, 2]\n")


def test_unknown_module_entry_key(validate):
    text = changed("  relay_2:\n    module: Relay\n", "  relay_2:\n    module: Relay\n    standalon: true\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "standalon"), "active_modules.relay_2.standalon")
    assert issue.hint == "did you mean 'standalone'?"
    assert "'connections'" in issue.expected and "'process'" in issue.expected


def test_invalid_module_id(validate):
    text = changed("  display:\n", "  2display:\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "2display"), "active_modules.2display")
    assert issue.expected == "a name matching ^[a-zA-Z_][a-zA-Z0-9_.-]*$"


def test_unknown_module_type(validate):
    text = changed("    module: Display\n", "    module: Dsplay\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "Dsplay"), "active_modules.display.module")
    assert issue.message == "unknown module type 'Dsplay'"
    assert issue.expected == "one of: 'Controller', 'Display', 'Meter', 'Relay'"
    assert issue.given == "'Dsplay'" and issue.hint == "did you mean 'Display'?"


def test_module_entry_without_module(validate):
    text = changed("  display:\n    module: Display\n", "  display:\n    standalone: true\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "  display:"), "active_modules.display")
    assert issue.message == "missing required key 'module'"


def test_wrong_process_placement(validate):
    text = changed("    module: Display\n", "    module: Display\n    process: owm\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "owm"), "active_modules.display.process")
    assert (issue.expected, issue.hint) == ("one of: 'shared', 'own'", "did you mean 'own'?")


# --- module config ------------------------------------------------------------------------------------


def test_unknown_config_key_is_an_error(validate):
    text = changed("      poll_interval_ms: 500\n", "      poll_intervall_ms: 500\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "poll_intervall_ms")
    assert issue.key_path == "active_modules.meter.config_module.poll_intervall_ms"
    assert issue.message == "unknown config key 'poll_intervall_ms'"
    assert issue.hint == "did you mean 'poll_interval_ms'?"


def test_config_value_of_wrong_type(validate):
    text = changed("      poll_interval_ms: 500\n", "      poll_interval_ms: fast\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (
        line_of(text, "fast"),
        "active_modules.meter.config_module.poll_interval_ms",
    )
    assert (issue.message, issue.expected, issue.given) == ("wrong type", "integer", "string 'fast'")


def test_boolean_is_not_an_integer(validate):
    issue = validate.one_issue(changed("      poll_interval_ms: 500\n", "      poll_interval_ms: true\n"))
    assert (issue.expected, issue.given) == ("integer", "boolean true")


def test_config_value_below_minimum(validate):
    text = changed("      poll_interval_ms: 500\n", "      poll_interval_ms: 50\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "poll_interval_ms")
    assert (issue.message, issue.expected, issue.given) == ("value out of range", ">= 100", "50")


def test_config_value_above_maximum(validate):
    issue = validate.one_issue(changed("      max_current_A: 16\n", "      max_current_A: 125.5\n"))
    assert issue.key_path == "active_modules.controller.config_module.max_current_A"
    assert (issue.expected, issue.given) == ("<= 80", "125.5")


def test_config_value_not_in_enum(validate):
    text = changed("      poll_interval_ms: 500\n", "      baud_rate: 115200\n")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.meter.config_module.baud_rate"
    assert (issue.expected, issue.given) == ("one of: 9600, 19200, 38400", "115200")


def test_config_value_not_matching_pattern(validate):
    issue = validate.one_issue(changed("      poll_interval_ms: 500\n", "      meter_id: beef\n"))
    assert (issue.expected, issue.given) == ("a string matching ^[0-9A-F]{8}$", "'beef'")


def test_config_value_must_be_a_scalar(validate):
    text = changed("      poll_interval_ms: 500\n", "      poll_interval_ms: [500]\n")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.meter.config_module.poll_interval_ms"
    assert (issue.expected, issue.given) == ("integer", "array [500]")


def test_missing_mandatory_config(validate):
    text = changed("      serial_port: /dev/ttyUSB0\n", "")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "config_module"), "active_modules.meter.config_module")
    assert issue.message == "missing mandatory config key 'serial_port', which has no default"
    assert issue.expected == "a string value for 'serial_port'"


def test_missing_mandatory_config_without_config_section(validate):
    text = changed("    config_module:\n      serial_port: /dev/ttyUSB0\n      poll_interval_ms: 500\n", "")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "  meter:"), "active_modules.meter.config_module")


def test_unknown_implementation_in_config_implementation(validate):
    text = changed("      main:\n        session_limit: 4\n", "      mian:\n        session_limit: 4\n")
    issues = validate.issues(text)
    # the unknown id, and `main` now lacks its mandatory session_limit
    assert [i.key_path for i in issues] == [
        "active_modules.meter.config_implementation.main",
        "active_modules.meter.config_implementation.mian",
    ]
    unknown = issues[1]
    assert unknown.line == line_of(text, "mian")
    assert unknown.message == "unknown implementation 'mian'"
    assert (unknown.expected, unknown.hint) == ("one of: 'main'", "did you mean 'main'?")
    assert issues[0].message == "missing mandatory config key 'session_limit', which has no default"


def test_implementation_config_value_checked(validate):
    text = changed("        session_limit: 4\n", "        session_limit: 0\n")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.meter.config_implementation.main.session_limit"
    assert (issue.line, issue.expected, issue.given) == (line_of(text, "session_limit"), ">= 1", "0")


# --- connections ---------------------------------------------------------------------------------------


def test_connection_to_unknown_module(validate):
    text = changed("        - module_id: relay_1\n", "        - module_id: relay_3\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "relay_3")
    assert issue.key_path == "active_modules.controller.connections.relays[0].module_id"
    assert issue.message == "unknown module 'relay_3'"
    assert issue.expected == "one of: 'controller', 'display', 'meter', 'relay_1', 'relay_2'"
    assert issue.given == "'relay_3'" and issue.hint in ("did you mean 'relay_1'?", "did you mean 'relay_2'?")


def test_connection_to_unknown_implementation(validate):
    text = changed("          implementation_id: contactor\n", "          implementation_id: contacter\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "contacter")
    assert issue.key_path == "active_modules.controller.connections.relays[0].implementation_id"
    assert issue.message == "module 'relay_1' (Relay) provides no implementation 'contacter'"
    assert issue.expected == "one of: 'contactor', 'telemetry_meter'"
    assert issue.hint == "did you mean 'contactor'?"


def test_connection_with_interface_mismatch(validate):
    text = changed("          implementation_id: contactor\n", "          implementation_id: telemetry_meter\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "telemetry_meter")
    assert issue.key_path == "active_modules.controller.connections.relays[0].implementation_id"
    assert issue.message == "interface mismatch: relay_1.telemetry_meter implements 'meter'"
    assert (issue.expected, issue.given) == ("an implementation of 'relay'", "'meter'")
    assert issue.hint == "did you mean 'contactor'?"


def test_connection_for_undeclared_requirement(validate):
    text = changed("      relays:\n", "      relais:\n")
    issues = validate.issues(text)
    # the missing `relays` is located at the `connections:` line, above the undeclared `relais`
    assert [i.key_path for i in issues] == [
        "active_modules.controller.connections.relays",
        "active_modules.controller.connections.relais",
    ]
    undeclared = issues[1]
    assert undeclared.line == line_of(text, "relais")
    assert undeclared.message == "unknown requirement 'relais'"
    assert undeclared.hint == "did you mean 'relays'?"
    assert issues[0].message == "missing required connection 'relays' (interface 'relay')"
    assert issues[0].line == line_of(text, "    connections:")


def test_too_many_connections(validate):
    extra = "".join(
        f"        - module_id: {m}\n          implementation_id: contactor\n" for m in ("relay_2", "relay_1")
    )
    text = BASE + extra
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (line_of(text, "relays:"), "active_modules.controller.connections.relays")
    assert (issue.message, issue.expected, issue.given) == (
        "wrong number of connections for 'relays'",
        "1 to 2 connection(s)",
        "3",
    )


def test_missing_required_connection(validate):
    text = changed("      meter:\n        - module_id: meter\n          implementation_id: main\n", "")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.controller.connections.meter"
    assert issue.line == line_of(text, "    connections:")
    assert (issue.expected, issue.given) == ("exactly 1 connection(s)", "0")


def test_connection_item_with_unknown_key(validate):
    text = changed("        - module_id: meter\n", "        - module_id: meter\n          impl: main\n")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.controller.connections.meter[0].impl"
    assert issue.line == line_of(text, "impl: main")


def test_connection_item_missing_implementation_id(validate):
    text = changed("        - module_id: meter\n          implementation_id: main\n", "        - module_id: meter\n")
    issue = validate.one_issue(text)
    assert issue.key_path == "active_modules.controller.connections.meter[0]"
    assert issue.line == line_of(text, "- module_id: meter")
    assert issue.message == "missing required key 'implementation_id'"


def test_manifest_naming_unknown_interface(tmp_path, definitions, manifests, validate):
    folder = tmp_path / "Broken"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(
        "description: uses an interface nobody defined\n"
        "provides:\n  main:\n    interface: metre\n    description: a typo\n"
        "metadata:\n  license: MIT\n  authors: [me and you]\n"
    )
    all_manifests = {**manifests, "Broken": load_manifest(folder / "manifest.yaml")}
    validate.path.write_text("active_modules:\n  broken:\n    module: Broken\n")
    with pytest.raises(ConfigError) as caught:
        validate_run_config(read_run_config(validate.path), all_manifests, definitions)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == (str(folder / "manifest.yaml"), 4)
    assert issue.key_path == "provides.main.interface"
    assert issue.hint == "did you mean 'meter'?"


# --- everything at once ----------------------------------------------------------------------------------


def test_all_errors_reported_at_once_in_line_order(validate):
    text = changed("      poll_interval_ms: 500\n", "      poll_interval_ms: 5\n")
    text = changed("    module: Display\n", "    module: Dsplay\n", text)
    text = changed("        - module_id: relay_1\n", "        - module_id: relay_9\n", text)
    text = changed("  log_level: INFO\n", "  log_level: INFO\n", text)
    text = changed("      max_current_A: 16\n", "      max_current_A: 16\n      max_current: 16\n", text)
    issues = validate.issues(text)
    assert [i.key_path for i in issues] == [
        "active_modules.meter.config_module.poll_interval_ms",
        "active_modules.display.module",
        "active_modules.controller.config_module.max_current",
        "active_modules.controller.connections.relays[0].module_id",
    ]
    lines = [i.line for i in issues]
    assert lines == sorted(lines)
    message = str(ConfigError(issues))
    assert message.splitlines()[0] == "4 configuration problems:"
    assert all(f"{validate.path}:{line}:" in message for line in lines)


def test_unknown_module_type_suggests_from_all_known_types(validate, definitions, manifests):
    validate.path.write_text("active_modules:\n  d:\n    module: Displai\n  m:\n    module: Meter2\n")
    used = {"Display": manifests["Display"]}
    with pytest.raises(ConfigError) as caught:
        validate_run_config(read_run_config(validate.path), used, definitions, known_module_types=["Display", "Meter2"])
    # Meter2 is known but its manifest is missing here (the caller reports why): no second issue for it
    (issue,) = caught.value.issues
    assert issue.key_path == "active_modules.d.module"
    assert (issue.expected, issue.hint) == ("one of: 'Display', 'Meter2'", "did you mean 'Display'?")


def test_malformed_run_config(validate):
    text = changed("    module: Display\n", "    module: [Display\n")
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "  controller:") and issue.key_path == ""
    assert issue.message.startswith("malformed YAML: ")


def test_duplicate_key_in_run_config(validate):
    # EVerest silently keeps the last `connections` block; everpy refuses the file
    text = changed(
        "    config_module:\n      max_current_A: 16\n",
        "    connections: {}\n    config_module:\n      max_current_A: 16\n",
    )
    issue = validate.one_issue(text)
    assert issue.line == line_of(text, "    connections:", occurrence=2)
    assert (issue.key_path, issue.message) == ("active_modules.controller.connections", "duplicate key 'connections'")


def test_restart_backoff_above_its_maximum(validate):
    text = changed("  log_level: INFO\n", "  restart_backoff_s: 60\n  restart_backoff_max_s: 30\n")
    issue = validate.one_issue(text)
    assert (issue.line, issue.key_path) == (2, "settings.restart_backoff_s")
    assert (issue.expected, issue.given) == ("<= restart_backoff_max_s (30.0)", "60.0")


def test_everest_keys_are_structure_checked(validate):
    text = changed("    module: Display\n", "    module: Display\n    telemetry:\n      group: 1\n")
    issues = validate.issues(text)
    assert [(i.key_path, i.message) for i in issues] == [
        ("active_modules.display.telemetry", "missing required key 'id'"),
        ("active_modules.display.telemetry.group", "unknown key 'group'"),
    ]
    assert all(i.line == line_of(text, "group") or i.line == line_of(text, "telemetry:") for i in issues)


def test_broken_config_map_is_reported_once(validate):
    text = changed("    module: Display\n", "    module: Display\n    config_module: 5\n")
    issue = validate.one_issue(text)
    assert (issue.key_path, issue.expected, issue.given) == (
        "active_modules.display.config_module",
        "object",
        "integer 5",
    )
    text = changed("      poll_interval_ms: 500\n", "      poll interval: 500\n")
    issue = validate.one_issue(text)
    assert (issue.key_path, issue.message) == (
        "active_modules.meter.config_module.poll interval",
        "invalid name 'poll interval'",
    )
