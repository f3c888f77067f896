"""From a run config file to everything the runtime needs: settings, definitions, manifests, module types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everpy.core.config import RunConfig, read_run_config, validate_run_config
from everpy.core.config_errors import ConfigError, ConfigIssue
from everpy.core.definitions import Definitions, load_definitions
from everpy.core.manifest import Manifest, load_manifest
from everpy.core.plugins import ModuleType, discover


@dataclass
class LoadedSystem:
    run_config: RunConfig
    definitions: Definitions
    manifests: dict[str, Manifest]
    module_types: dict[str, ModuleType]
    source: Path | dict[str, Any]
    extra_module_dirs: list[Path]
    extra_definition_dirs: list[Path]

    @property
    def settings(self) -> Any:
        return self.run_config.settings


def load_catalog(
    extra_module_dirs: Sequence[Path] = (), extra_definition_dirs: Sequence[Path] = ()
) -> tuple[dict[str, ModuleType], Definitions, list[str]]:
    discovery = discover(extra_module_dirs, extra_definition_dirs)
    return discovery.module_types, load_definitions(discovery.definition_dirs), discovery.problems


def load_system(
    source: Path | str | dict[str, Any],
    extra_module_dirs: Sequence[Path] = (),
    extra_definition_dirs: Sequence[Path] = (),
    check_schemas: bool = True,
) -> LoadedSystem:
    """Read, discover and validate; raises ConfigError listing every problem found."""
    if isinstance(source, str):
        source = Path(source)
    raw = read_run_config(source, name=str(source) if isinstance(source, Path) else "<dict>")
    module_dirs = [*map(Path, extra_module_dirs), *raw.modules_dirs]
    def_dirs = [*map(Path, extra_definition_dirs), *raw.definitions_dirs]
    discovery = discover(module_dirs, def_dirs)
    issues: list[ConfigIssue] = []
    try:
        definitions = load_definitions(discovery.definition_dirs, check_schemas=check_schemas)
    except ConfigError as exc:
        raise ConfigError([*exc.issues]) from None
    manifests: dict[str, Manifest] = {}
    active = raw.data.get("active_modules") if isinstance(raw.data, dict) else None
    used = {m.get("module") for m in (active or {}).values() if isinstance(m, dict)}
    for name in sorted(n for n in used if isinstance(n, str) and n in discovery.module_types):
        try:
            manifests[name] = load_manifest(discovery.module_types[name].manifest_path, name=name)
        except ConfigError as exc:
            issues.extend(exc.issues)
    try:
        run_config = validate_run_config(raw, manifests, definitions, known_module_types=discovery.module_types)
    except ConfigError as exc:
        issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)
    return LoadedSystem(
        run_config, definitions, manifests, discovery.module_types, source, module_dirs, def_dirs
    )
