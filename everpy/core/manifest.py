"""Module manifests (`manifest.yaml`, EVerest format): what a module provides, requires and accepts as
config. Loading checks the whole file and reports every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from everpy.core.config_errors import ConfigError, IssueCollector, PathPart, show_value
from everpy.core.yamlsrc import load_yaml

ID_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_.-]*$"
CONFIG_TYPES = ("boolean", "integer", "number", "string")
MUTABILITY = ("ReadOnly", "ReadWrite", "WriteOnly")
# Keys of a config entry that describe it rather than constrain its value.
_ENTRY_ANNOTATIONS = frozenset({"description", "mutability", "default"})

_DESCRIPTION = {"type": "string", "minLength": 2}
_CONFIG_SET = {
    "type": "object",
    "patternProperties": {
        ID_PATTERN: {
            "type": "object",
            "required": ["type", "description"],
            "properties": {
                "type": {"type": "string", "enum": list(CONFIG_TYPES)},
                "description": _DESCRIPTION,
                "mutability": {"type": "string", "enum": list(MUTABILITY)},
            },
            # further JSON-schema keywords (minimum, enum, pattern, ...) constrain the value
            "additionalProperties": True,
        }
    },
    "additionalProperties": False,
}
_MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["description", "metadata"],
    "properties": {
        "description": _DESCRIPTION,
        "config": _CONFIG_SET,
        "provides": {
            "type": "object",
            "patternProperties": {
                ID_PATTERN: {
                    "type": "object",
                    "required": ["interface", "description"],
                    "properties": {
                        "interface": {"type": "string", "pattern": ID_PATTERN},
                        "description": _DESCRIPTION,
                        "config": _CONFIG_SET,
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        "requires": {
            "type": "object",
            "patternProperties": {
                ID_PATTERN: {
                    "type": "object",
                    "required": ["interface"],
                    "properties": {
                        "interface": {"type": "string", "pattern": ID_PATTERN},
                        "min_connections": {"type": "integer", "minimum": 0},
                        "max_connections": {"type": "integer", "minimum": 1},
                        "ignore": {
                            "type": "object",
                            "properties": {
                                "vars": {
                                    "type": ["string", "array"],
                                    "items": {"type": "string"},
                                    "uniqueItems": True,
                                },
                                "errors": {"type": "boolean"},
                            },
                            "additionalProperties": False,
                        },
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        "metadata": {
            "type": "object",
            "required": ["license", "authors"],
            "properties": {
                "license": {"type": "string"},
                "base_license": {"type": "string"},
                "authors": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 2}},
            },
            # EVerest allows free-form metadata (e.g. a homepage); so do we.
            "additionalProperties": True,
        },
        "enable_external_mqtt": {"type": "boolean"},
        "enable_telemetry": {"type": "boolean"},
        "enable_global_errors": {"type": "boolean"},
    },
    "additionalProperties": False,
}
_MANIFEST_VALIDATOR = jsonschema.Draft7Validator(_MANIFEST_SCHEMA)
_META = jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA)


@dataclass
class ConfigEntry:
    """One config key declared in a manifest."""

    name: str
    type: str
    description: str
    default: Any = None
    has_default: bool = False
    schema: dict = field(default_factory=dict)  # JSON schema of the value (type + constraints)
    mutability: str = "ReadOnly"
    _validator: jsonschema.protocols.Validator | None = field(default=None, repr=False, compare=False)

    @property
    def mandatory(self) -> bool:
        return not self.has_default

    @property
    def validator(self) -> jsonschema.protocols.Validator:
        """Draft-07 validator of a value for this entry (compiled once)."""
        if self._validator is None:
            self._validator = jsonschema.Draft7Validator(self.schema)
        return self._validator


@dataclass
class Provide:
    interface: str
    description: str
    config: dict[str, ConfigEntry] = field(default_factory=dict)


@dataclass
class Require:
    interface: str
    min_connections: int = 1
    max_connections: int = 1
    ignore: dict = field(default_factory=dict)


@dataclass
class Manifest:
    name: str
    path: Path
    description: str
    config: dict[str, ConfigEntry] = field(default_factory=dict)
    provides: dict[str, Provide] = field(default_factory=dict)
    requires: dict[str, Require] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    enable_global_errors: bool = False
    enable_external_mqtt: bool = False
    enable_telemetry: bool = False
    lines: Any = field(default=None, repr=False, compare=False)  # LineMap, for messages about the file


def config_schema(entries: Mapping[str, ConfigEntry]) -> dict:
    """JSON schema of a whole config map: known keys only, mandatory keys required."""
    return {
        "type": "object",
        "properties": {name: entry.schema for name, entry in entries.items()},
        "required": sorted(name for name, entry in entries.items() if entry.mandatory),
        "additionalProperties": False,
    }


def fill_defaults(entries: Mapping[str, ConfigEntry], given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` plus the default of every entry it does not set (validation is done separately)."""
    filled = {name: entry.default for name, entry in entries.items() if entry.has_default}
    filled.update(given)
    return filled


def load_manifest(path: Path | str, name: str | None = None) -> Manifest:
    """Load `path`; the module type name defaults to the folder name. Raises ConfigError.

    Structural problems do not stop the check: every part that is well-formed is still checked
    (entry schemas, defaults, connection bounds), so one run reports everything.
    """
    path = Path(path)
    data, lines = load_yaml(path)
    issues = IssueCollector(str(path), lines)
    issues.schema_errors(_MANIFEST_VALIDATOR, data)
    if not isinstance(data, dict):
        raise ConfigError(issues.issues)
    manifest = Manifest(
        name=name or path.parent.name,
        path=path,
        description=data.get("description", ""),
        metadata=_mapping(data.get("metadata")),
        enable_global_errors=data.get("enable_global_errors") is True,
        enable_external_mqtt=data.get("enable_external_mqtt") is True,
        enable_telemetry=data.get("enable_telemetry") is True,
        lines=lines,
    )
    manifest.config = _config_entries(_mapping(data.get("config")), ["config"], issues)
    for impl_id, provide in _mapping(data.get("provides")).items():
        if issues.has_issue_within(["provides", impl_id]):
            continue
        config_path: list[PathPart] = ["provides", impl_id, "config"]
        entries = _config_entries(_mapping(provide.get("config")), config_path, issues)
        manifest.provides[impl_id] = Provide(provide["interface"], provide["description"], entries)
    for req_id, require in _mapping(data.get("requires")).items():
        if issues.has_issue_within(["requires", req_id]):
            continue
        minimum = require.get("min_connections", 1)
        maximum = require.get("max_connections", 1)
        if minimum > maximum:
            issues.add(
                ["requires", req_id, "min_connections"],
                "min_connections is larger than max_connections",
                expected=f"<= {maximum}",
                given=show_value(minimum),
            )
        manifest.requires[req_id] = Require(require["interface"], minimum, maximum, require.get("ignore") or {})
    issues.raise_if_any()
    return manifest


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _config_entries(raw: Mapping[str, Any], path: list[PathPart], issues: IssueCollector) -> dict[str, ConfigEntry]:
    entries: dict[str, ConfigEntry] = {}
    for key, spec in raw.items():
        entry_path = [*path, key]
        if issues.has_issue_within(entry_path):
            continue
        schema = {k: v for k, v in spec.items() if k not in _ENTRY_ANNOTATIONS}
        if not issues.schema_errors(_META, schema, entry_path):
            continue
        entry = ConfigEntry(
            name=key,
            type=spec["type"],
            description=spec["description"],
            default=spec.get("default"),
            has_default="default" in spec,
            schema=schema,
            mutability=spec.get("mutability", "ReadOnly"),
        )
        if entry.has_default:
            # A default that its own entry rejects would make every config using it invalid.
            issues.schema_errors(entry.validator, entry.default, [*entry_path, "default"])
        entries[key] = entry
    return entries


__all__ = [
    "ConfigEntry",
    "Manifest",
    "Provide",
    "Require",
    "config_schema",
    "fill_defaults",
    "load_manifest",
]
