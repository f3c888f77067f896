"""YAML source loading: line numbers, YAML 1.2 scalars, malformed input, and issue formatting."""

import pytest

from everpy.core.config_errors import ConfigError, ConfigIssue, did_you_mean, format_path
from everpy.core.yamlsrc import load_yaml, load_yaml_text

DOC = """\
# comment
settings:
  a: 1
active_modules:
  evse:
    module: EvseManager
    connections:
      bsp:
        - module_id: bsp
          implementation_id: board
        - {module_id: other, implementation_id: x}
"""


def test_lines_of_keys_and_items():
    data, lines = load_yaml_text(DOC, "sil.yaml")
    assert data["active_modules"]["evse"]["connections"]["bsp"][1] == {"module_id": "other", "implementation_id": "x"}
    assert lines.line(["settings", "a"]) == 3
    assert lines.line(["active_modules", "evse", "module"]) == 6
    assert lines.line(["active_modules", "evse", "connections", "bsp", 0, "implementation_id"]) == 10
    assert lines.line(["active_modules", "evse", "connections", "bsp", 1, "implementation_id"]) == 11


def test_missing_key_falls_back_to_deepest_existing_parent():
    _, lines = load_yaml_text(DOC, "sil.yaml")
    assert lines.line(["active_modules", "evse", "config_module", "x"]) == 5
    assert lines.line(["nothing"]) == 2  # the document starts at its first key
    assert lines.line([]) == 2


def test_yaml_12_core_scalars():
    data, _ = load_yaml_text(
        "s: [ON, off, yes, No, 1:30, 2024-01-01, 1_000]\n"
        "b: [true, False, TRUE]\n"
        "i: [010, 0o17, 0x1F, -3, +4]\n"
        "f: [1.5, 1e3, .inf, -.Inf]\n"
        "n: [~, null, Null]\n"
        "e:\n",
        "x.yaml",
    )
    assert data["s"] == ["ON", "off", "yes", "No", "1:30", "2024-01-01", "1_000"]
    assert data["b"] == [True, False, True]
    assert data["i"] == [10, 15, 31, -3, 4]
    assert data["f"][:2] == [1.5, 1000.0] and data["f"][2] == float("inf") and data["f"][3] == float("-inf")
    assert data["n"] == [None, None, None] and data["e"] is None


def test_anchors_and_merge_keys():
    data, lines = load_yaml_text("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n", "x.yaml")
    assert data["derived"] == {"x": 1, "y": 3}
    assert lines.line(["derived", "y"]) == 4


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(ConfigError) as caught:
        load_yaml_text("a:\n  b: [1, 2\n  c: 3\n", "bad.yaml")
    (issue,) = caught.value.issues
    assert issue.file == "bad.yaml" and issue.line == 3
    assert issue.message.startswith("malformed YAML: ")
    assert str(issue).startswith("bad.yaml:3: malformed YAML: ")


def test_tab_indentation_is_malformed():
    with pytest.raises(ConfigError, match=r"^bad.yaml:2: malformed YAML"):
        load_yaml_text("a:\n\tb: 1\n", "bad.yaml")


def test_duplicate_keys_are_errors_all_reported():
    text = "a:\n  b: 1\n  b: 2\nc: 1\nc: 2\n"
    with pytest.raises(ConfigError) as caught:
        load_yaml_text(text, "dup.yaml")
    assert [(i.line, i.key_path, i.message) for i in caught.value.issues] == [
        (3, "a.b", "duplicate key 'b'"),
        (5, "c", "duplicate key 'c'"),
    ]


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path / "missing.yaml")
    (issue,) = caught.value.issues
    assert issue.file == str(tmp_path / "missing.yaml") and issue.message.startswith("cannot read file")


def test_issue_format():
    issue = ConfigIssue(
        "config/sil.yaml",
        12,
        "active_modules.evse.connections.bsp",
        "unknown module 'bspp'",
        expected="one of: 'bsp', 'evse'",
        given="'bspp'",
        hint="did you mean 'bsp'?",
    )
    assert str(issue) == (
        "config/sil.yaml:12: active_modules.evse.connections.bsp: unknown module 'bspp' "
        "(expected one of: 'bsp', 'evse', given: 'bspp'); did you mean 'bsp'?"
    )
    assert str(ConfigIssue("x.yaml", None, "", "empty")) == "x.yaml: empty"
    error = ConfigError([issue, ConfigIssue("x.yaml", None, "", "empty")])
    assert str(error).splitlines() == ["2 configuration problems:", str(issue), "x.yaml: empty"]
    assert str(ConfigError([issue])) == str(issue)


def test_helpers():
    assert format_path(["a", "b", 0, "c"]) == "a.b[0].c"
    assert did_you_mean("conections", ["connections", "config_module"]) == "did you mean 'connections'?"
    assert did_you_mean("zzz", ["connections"]) is None
