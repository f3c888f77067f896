"""Run configs (EVerest format plus everpy keys): reading, settings, and validation of the module graph.

Two steps, because the runtime must know the settings (extra module and definition folders) before it
can load the manifests the rest of the config is checked against:

1. `read_run_config(path_or_dict)` parses the YAML and checks the top level and `settings`.
2. `validate_run_config(raw, manifests, definitions)` checks every module entry, its config and its
   connections, and returns the `RunConfig` the runtime starts. Every problem is reported at once.

everpy is stricter than EVerest: an unknown config key is an error, not a log line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from everpy.core.config_errors import (
    ConfigError,
    IssueCollector,
    PathPart,
    did_you_mean,
    one_of,
    show_value,
)
from everpy.core.definitions import Definitions
from everpy.core.manifest import ID_PATTERN, ConfigEntry, Manifest, fill_defaults
from everpy.core.yamlsrc import LineMap, empty_line_map, load_yaml

MODULE_TYPE_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_-]*$"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROCESS_PLACEMENTS = ("shared", "own")


# --- settings ----------------------------------------------------------------------------------------


@dataclass
class Settings:
    """`settings:` of a run config. EVerest's keys first, then everpy's own."""

    # EVerest keys (directory keys are accepted for compatibility; everpy uses them where they apply)
    prefix: str | None = None
    config_file: str | None = None
    configs_dir: str | None = None
    schemas_dir: str | None = None
    modules_dir: str | None = None
    interfaces_dir: str | None = None
    types_dir: str | None = None
    errors_dir: str | None = None
    www_dir: str | None = None
    logging_config_file: str | None = None
    controller_port: int | None = None
    controller_rpc_timeout_ms: int | None = None
    # No broker given (host, port and socket all None) = everpy starts a private broker for the run.
    mqtt_broker_socket_path: str | None = None
    mqtt_broker_host: str | None = None
    mqtt_broker_port: int | None = None
    mqtt_broker_user: str | None = None  # login at an external broker
    mqtt_broker_password_file: str | None = None  # its password, in a file only the service can read
    mqtt_everest_prefix: str = "everest"
    mqtt_external_prefix: str = ""
    telemetry_prefix: str = "everest-telemetry"
    telemetry_enabled: bool = False
    # everpy validates command arguments/results and vars by default (EVerest's default is off).
    validate_schema: bool = True
    run_as_user: str | None = None
    forward_exceptions: bool = False
    # everpy keys
    modules_dirs: list[str] = field(default_factory=list)
    definitions_dirs: list[str] = field(default_factory=list)
    log_level: str = "INFO"
    log_levels: dict[str, str] = field(default_factory=dict)
    cmd_timeout_s: float = 30.0
    ready_timeout_s: float = 30.0
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 10.0
    restart_backoff_s: float = 0.5
    restart_backoff_max_s: float = 30.0
    # Bound of the stopping() hooks at an orderly stop (systemd's TimeoutStopSec must be larger).
    stop_timeout_s: float = 10.0


_STRING = {"type": "string"}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_LOG_LEVEL = {"type": "string", "enum": [*LOG_LEVELS, *(level.lower() for level in LOG_LEVELS)]}
SETTINGS_SCHEMA: dict = {
    "type": "object",
    "properties": {
        **{
            key: _STRING
            for key in (
                "prefix",
                "config_file",
                "configs_dir",
                "schemas_dir",
                "modules_dir",
                "interfaces_dir",
                "types_dir",
                "errors_dir",
                "www_dir",
                "logging_config_file",
                "mqtt_broker_socket_path",
                "mqtt_broker_host",
                "mqtt_broker_user",
                "mqtt_broker_password_file",
                "mqtt_everest_prefix",
                "mqtt_external_prefix",
                "telemetry_prefix",
                "run_as_user",
            )
        },
        "controller_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "controller_rpc_timeout_ms": {"type": "integer", "minimum": 0},
        "mqtt_broker_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "telemetry_enabled": {"type": "boolean"},
        "validate_schema": {"type": "boolean"},
        "forward_exceptions": {"type": "boolean"},
        "modules_dirs": {"type": "array", "items": _STRING},
        "definitions_dirs": {"type": "array", "items": _STRING},
        "log_level": _LOG_LEVEL,
        "log_levels": {
            "type": "object",
            "patternProperties": {ID_PATTERN: _LOG_LEVEL},
            "additionalProperties": False,
        },
        "cmd_timeout_s": _POSITIVE,
        "ready_timeout_s": _POSITIVE,
        "heartbeat_interval_s": _POSITIVE,
        "heartbeat_timeout_s": _POSITIVE,
        "restart_backoff_s": _POSITIVE,
        "restart_backoff_max_s": _POSITIVE,
        "stop_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
    },
    "additionalProperties": False,
}
assert set(SETTINGS_SCHEMA["properties"]) == {f.name for f in dataclasses.fields(Settings)}

_SECONDS_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name.endswith("_s"))

_TOP_LEVEL_SCHEMA = {
    "type": "object",
    "required": ["active_modules"],
    "properties": {
        "settings": SETTINGS_SCHEMA,
        "active_modules": {"type": "object"},
        "x-module-layout": {},  # editor layout data; ignored
    },
    "additionalProperties": False,
}
_TOP_LEVEL_VALIDATOR = jsonschema.Draft7Validator(_TOP_LEVEL_SCHEMA)

# --- module entries ----------------------------------------------------------------------------------

# Values are checked against their manifest entry (each has a scalar `type`), not here, so a wrong
# value gets one precise issue instead of a generic and a specific one.
_CONFIG_MAP = {
    "type": "object",
    "patternProperties": {ID_PATTERN: {}},
    "additionalProperties": False,
}
_BOOL = {"type": "boolean"}
_MODULE_ENTRY_SCHEMA = {
    "type": "object",
    "required": ["module"],
    "properties": {
        "module": {"type": "string", "pattern": MODULE_TYPE_PATTERN},
        "standalone": _BOOL,
        "capabilities": {"type": "array", "items": _STRING},
        "config_module": _CONFIG_MAP,
        "config_implementation": {
            "type": "object",
            "patternProperties": {ID_PATTERN: _CONFIG_MAP},
            "additionalProperties": False,
        },
        "telemetry": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer"}},
            "additionalProperties": False,
        },
        "connections": {
            "type": "object",
            "patternProperties": {
                ID_PATTERN: {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["module_id", "implementation_id"],
                        "properties": {
                            "module_id": {"type": "string", "pattern": ID_PATTERN},
                            "implementation_id": {"type": "string", "pattern": ID_PATTERN},
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
        "mapping": {
            "type": "object",
            "properties": {
                "module": {
                    "type": "object",
                    "required": ["evse"],
                    "properties": {"evse": {"type": "integer"}, "connector": {"type": "integer"}},
                    "additionalProperties": False,
                },
                "implementations": {
                    "type": "object",
                    "patternProperties": {
                        ID_PATTERN: {
                            "type": "object",
                            "required": ["evse"],
                            "properties": {"evse": {"type": "integer"}, "connector": {"type": "integer"}},
                            "additionalProperties": False,
                        }
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        "access": {
            "type": "object",
            "properties": {
                "config": {
                    "type": "object",
                    "properties": {
                        "allow_global_read": _BOOL,
                        "allow_global_write": _BOOL,
                        "allow_set_read_only": _BOOL,
                        "modules": {
                            "type": "object",
                            "patternProperties": {
                                ID_PATTERN: {
                                    "type": "object",
                                    "properties": {
                                        "allow_read": _BOOL,
                                        "allow_write": _BOOL,
                                        "allow_set_read_only": _BOOL,
                                    },
                                    "additionalProperties": False,
                                }
                            },
                            "additionalProperties": False,
                        },
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        # everpy keys
        "process": {"type": "string", "enum": list(PROCESS_PLACEMENTS)},
        "log_level": _LOG_LEVEL,
    },
    "additionalProperties": False,
}
_ACTIVE_MODULES_VALIDATOR = jsonschema.Draft7Validator(
    {"type": "object", "patternProperties": {ID_PATTERN: _MODULE_ENTRY_SCHEMA}, "additionalProperties": False}
)


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    module_id: str
    implementation_id: str


@dataclass
class ModuleConfig:
    id: str
    module: str
    config: dict[str, Any] = field(default_factory=dict)
    impl_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: dict[str, list[Connection]] = field(default_factory=dict)
    process: Literal["shared", "own"] = "shared"
    log_level: str | None = None
    standalone: bool = False
    mapping: dict = field(default_factory=dict)
    telemetry: dict | None = None
    capabilities: list[str] = field(default_factory=list)
    access: dict = field(default_factory=dict)
    manifest: Manifest | None = field(default=None, repr=False)


@dataclass
class RawRunConfig:
    """A parsed run config whose settings are checked; module entries are not yet."""

    path: str
    data: dict
    lines: LineMap
    settings: Settings

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in `settings` are relative to (the config's folder, or the current
        directory for a config given as a dict)."""
        path = Path(self.path)
        return path.parent.resolve() if path.is_file() else Path.cwd()

    def resolve_dir(self, directory: str) -> Path:
        path = Path(directory).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def modules_dirs(self) -> list[Path]:
        return [self.resolve_dir(d) for d in self.settings.modules_dirs]

    @property
    def definitions_dirs(self) -> list[Path]:
        return [self.resolve_dir(d) for d in self.settings.definitions_dirs]


@dataclass
class RunConfig:
    path: str
    settings: Settings
    modules: dict[str, ModuleConfig]


# --- step 1 ------------------------------------------------------------------------------------------


def read_run_config(source: Path | str | Mapping[str, Any], name: str = "<dict>") -> RawRunConfig:
    """Parse a run config file (or take a dict shaped like one) and check its top level and settings."""
    if isinstance(source, Mapping):
        file, data = name, dict(source)
        lines = empty_line_map(name, data)
    else:
        file = str(source)
        data, lines = load_yaml(source)
    issues = IssueCollector(file, lines)
    if data is None:
        issues.add([], "the file is empty", expected="a mapping with 'active_modules'")
        issues.raise_if_any()
    if not issues.schema_errors(_TOP_LEVEL_VALIDATOR, data):
        raise ConfigError(issues.issues)
    raw_settings = data.get("settings") or {}
    settings = Settings(**raw_settings)
    for field_name in _SECONDS_FIELDS:  # YAML `5` is an int; the runtime should always see seconds as float
        setattr(settings, field_name, float(getattr(settings, field_name)))
    settings.log_level = settings.log_level.upper()
    settings.log_levels = {module_id: level.upper() for module_id, level in settings.log_levels.items()}
    if settings.mqtt_external_prefix and settings.mqtt_external_prefix == settings.mqtt_everest_prefix:
        issues.add(
            ["settings", "mqtt_external_prefix"],
            "the external MQTT prefix must differ from the everest prefix",
            expected=f"anything but {settings.mqtt_everest_prefix!r}",
            given=show_value(settings.mqtt_external_prefix),
        )
    if settings.restart_backoff_s > settings.restart_backoff_max_s:
        issues.add(
            ["settings", "restart_backoff_s"],
            "initial restart backoff is larger than the maximum",
            expected=f"<= restart_backoff_max_s ({settings.restart_backoff_max_s})",
            given=show_value(settings.restart_backoff_s),
        )
    issues.raise_if_any()
    return RawRunConfig(file, data, lines, settings)


# --- step 2 ------------------------------------------------------------------------------------------


def validate_run_config(
    raw: RawRunConfig,
    manifests: Mapping[str, Manifest],
    definitions: Definitions,
    known_module_types: Iterable[str] | None = None,
) -> RunConfig:
    """Check every module entry against its manifest and the definitions; ConfigError lists all issues.

    `manifests` needs only the module types the config uses. `known_module_types` (all discovered
    names, default: the keys of `manifests`) feeds the did-you-mean of an unknown module type; a known
    type without a manifest here (its manifest failed to load and is reported by the caller) is skipped.
    """
    issues = IssueCollector(raw.path, raw.lines)
    active = raw.data.get("active_modules") or {}
    issues.schema_errors(_ACTIVE_MODULES_VALIDATOR, active, ["active_modules"])
    known = set(manifests) if known_module_types is None else set(known_module_types) | set(manifests)
    checker = _GraphChecker(issues, active, manifests, definitions, known)
    modules = {module_id: checker.module(module_id, entry) for module_id, entry in active.items()}
    for module_id, module in modules.items():
        if module is not None and module.manifest is not None:
            checker.connections(module_id, active[module_id], module)
    for module_id in raw.settings.log_levels:
        if module_id not in active:
            issues.add(
                ["settings", "log_levels", module_id],
                f"log level for unknown module {module_id!r}",
                expected=one_of(sorted(active)),
                given=show_value(module_id),
                hint=did_you_mean(module_id, active),
            )
    # the run config's own problems first (the file being edited), then manifests; each top to bottom
    issues.issues.sort(key=lambda issue: (issue.file != raw.path, issue.file, issue.line or 0))
    issues.raise_if_any()
    return RunConfig(raw.path, raw.settings, {k: v for k, v in modules.items() if v is not None})


class _GraphChecker:
    def __init__(
        self,
        issues: IssueCollector,
        active: Mapping[str, Any],
        manifests: Mapping[str, Manifest],
        definitions: Definitions,
        known_module_types: set[str],
    ) -> None:
        self.known_module_types = known_module_types
        self.issues = issues
        self.active = active
        self.manifests = manifests
        self.definitions = definitions
        self._checked_manifests: set[str] = set()

    def module(self, module_id: str, entry: Any) -> ModuleConfig | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("module"), str):
            return None  # reported by the structural check
        path: list[PathPart] = ["active_modules", module_id]
        module_type = entry["module"]
        manifest = self.manifests.get(module_type)
        if manifest is None and module_type not in self.known_module_types:
            self.issues.add(
                [*path, "module"],
                f"unknown module type {module_type!r}",
                expected=one_of(sorted(self.known_module_types)),
                given=show_value(module_type),
                hint=did_you_mean(module_type, self.known_module_types),
            )
        if manifest is not None:
            self._check_manifest_interfaces(manifest)
        config = self._config_map(
            entry.get("config_module"), manifest.config if manifest else None, path, "config_module"
        )
        impl_config: dict[str, dict[str, Any]] = {}
        raw_impl = entry.get("config_implementation")
        raw_impl = raw_impl if isinstance(raw_impl, dict) else {}
        if manifest is not None:
            for impl_id in raw_impl:
                if impl_id not in manifest.provides:
                    self.issues.unknown_key(
                        [*path, "config_implementation"], impl_id, manifest.provides, "implementation"
                    )
            for impl_id, provide in manifest.provides.items():
                impl_config[impl_id] = self._config_map(
                    raw_impl.get(impl_id), provide.config, [*path, "config_implementation", impl_id], None
                )
        return ModuleConfig(
            id=module_id,
            module=module_type,
            config=config,
            impl_config=impl_config,
            process=entry.get("process", "shared"),
            log_level=entry["log_level"].upper() if isinstance(entry.get("log_level"), str) else None,
            standalone=bool(entry.get("standalone", False)),
            mapping=entry.get("mapping") or {},
            telemetry=entry.get("telemetry"),
            capabilities=list(entry.get("capabilities") or []),
            access=entry.get("access") or {},
            manifest=manifest,
        )

    def _config_map(
        self,
        given: Any,
        entries: Mapping[str, ConfigEntry] | None,
        path: list[PathPart],
        key: str | None,
    ) -> dict[str, Any]:
        """Check one config map against manifest entries; return it with defaults filled."""
        map_path = [*path, key] if key else path
        if given is not None and not isinstance(given, dict):
            return {}  # not a mapping: reported by the structural check, nothing more to say
        given = given or {}
        if entries is None:
            return dict(given)
        for name, value in given.items():
            entry = entries.get(name)
            if self.issues.has_issue_within([*map_path, name]):
                continue  # e.g. an invalid key name, already reported
            if entry is None:
                self.issues.unknown_key(map_path, name, entries, "config key")
                continue
            self.issues.schema_errors(entry.validator, value, [*map_path, name])
        for name, entry in entries.items():
            if entry.mandatory and name not in given:
                self.issues.add(
                    map_path,
                    f"missing mandatory config key {name!r}, which has no default",
                    expected=f"{_article(entry.type)} {entry.type} value for {name!r}",
                )
        return fill_defaults(entries, {k: v for k, v in given.items() if k in entries})

    def _check_manifest_interfaces(self, manifest: Manifest) -> None:
        """Interfaces named by a used manifest must exist (reported once, at the manifest's line)."""
        if manifest.name in self._checked_manifests:
            return
        self._checked_manifests.add(manifest.name)
        manifest_issues = IssueCollector(str(manifest.path), manifest.lines, self.issues.issues)
        known = self.definitions.interfaces
        for section, items in (("provides", manifest.provides), ("requires", manifest.requires)):
            for item_id, item in items.items():
                if item.interface not in known:
                    manifest_issues.add(
                        [section, item_id, "interface"],
                        f"unknown interface {item.interface!r}",
                        expected=one_of(sorted(known)),
                        given=show_value(item.interface),
                        hint=did_you_mean(item.interface, known),
                    )

    def connections(self, module_id: str, entry: dict, module: ModuleConfig) -> None:
        manifest = module.manifest
        assert manifest is not None
        path: list[PathPart] = ["active_modules", module_id, "connections"]
        raw = entry.get("connections")
        raw = raw if isinstance(raw, dict) else {}
        for req_id, targets in raw.items():
            require = manifest.requires.get(req_id)
            if require is None:
                self.issues.unknown_key(path, req_id, manifest.requires, "requirement")
                continue
            if not isinstance(targets, list):
                continue
            accepted: list[Connection] = []
            for index, target in enumerate(targets):
                connection = self._connection(target, [*path, req_id, index], require.interface)
                if connection is not None:
                    accepted.append(connection)
            module.connections[req_id] = accepted
        for req_id, require in manifest.requires.items():
            count = len(raw.get(req_id) or []) if isinstance(raw.get(req_id), list) else 0
            module.connections.setdefault(req_id, [])
            if require.min_connections <= count <= require.max_connections:
                continue
            bounds = (
                f"exactly {require.min_connections}"
                if require.min_connections == require.max_connections
                else f"{require.min_connections} to {require.max_connections}"
            )
            if count == 0:
                self.issues.add(
                    [*path, req_id],
                    f"missing required connection {req_id!r} (interface {require.interface!r})",
                    expected=f"{bounds} connection(s)",
                    given="0",
                )
            else:
                self.issues.add(
                    [*path, req_id],
                    f"wrong number of connections for {req_id!r}",
                    expected=f"{bounds} connection(s)",
                    given=str(count),
                )

    def _connection(self, target: Any, path: list[PathPart], interface: str) -> Connection | None:
        if not isinstance(target, dict):
            return None
        module_id, impl_id = target.get("module_id"), target.get("implementation_id")
        if not isinstance(module_id, str) or not isinstance(impl_id, str):
            return None
        peer = self.active.get(module_id)
        if peer is None:
            self.issues.add(
                [*path, "module_id"],
                f"unknown module {module_id!r}",
                expected=one_of(sorted(self.active)),
                given=show_value(module_id),
                hint=did_you_mean(module_id, self.active),
            )
            return None
        peer_type = peer.get("module") if isinstance(peer, dict) else None
        peer_manifest = self.manifests.get(peer_type) if isinstance(peer_type, str) else None
        if peer_manifest is None:
            return None  # its unknown module type is reported on its own entry
        provide = peer_manifest.provides.get(impl_id)
        if provide is None:
            self.issues.add(
                [*path, "implementation_id"],
                f"module {module_id!r} ({peer_manifest.name}) provides no implementation {impl_id!r}",
                expected=one_of(sorted(peer_manifest.provides)),
                given=show_value(impl_id),
                hint=did_you_mean(impl_id, peer_manifest.provides) or _matching_impl_hint(peer_manifest, interface),
            )
            return None
        if provide.interface != interface:
            self.issues.add(
                [*path, "implementation_id"],
                f"interface mismatch: {module_id}.{impl_id} implements {provide.interface!r}",
                expected=f"an implementation of {interface!r}",
                given=show_value(provide.interface),
                hint=_matching_impl_hint(peer_manifest, interface),
            )
            return None
        return Connection(module_id, impl_id)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _matching_impl_hint(manifest: Manifest, interface: str) -> str | None:
    matching = [impl_id for impl_id, p in manifest.provides.items() if p.interface == interface]
    return f"did you mean {matching[0]!r}?" if len(matching) == 1 else None


def load_run_config(
    source: Path | str | Mapping[str, Any],
    manifests: Mapping[str, Manifest],
    definitions: Definitions,
    name: str = "<dict>",
) -> RunConfig:
    """Both steps at once, for callers that already know every manifest and definition."""
    return validate_run_config(read_run_config(source, name), manifests, definitions)


__all__ = [
    "Connection",
    "ModuleConfig",
    "RawRunConfig",
    "RunConfig",
    "Settings",
    "load_run_config",
    "read_run_config",
    "validate_run_config",
]
