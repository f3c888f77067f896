"""Discovery of module types through pluggy and the ``everpy.modules`` entry-point group.

Sources, in order: installed entry points (built-in and third-party alike), then module folders
given on the command line or in ``settings.modules_dirs``. A module folder is ``<Name>/manifest.yaml``
with optionally ``module.py`` defining a subclass of :class:`everpy.Module`; folders with only a
manifest (for example EVerest's C++ modules) can be validated but not run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType as ModuleTypeAlias
from typing import TYPE_CHECKING

import pluggy

from everpy.core import hookspec

if TYPE_CHECKING:
    from everpy.core.module import Module

log = logging.getLogger("everpy.plugins")

ENTRY_POINT_GROUP = "everpy.modules"
hookimpl = pluggy.HookimplMarker(hookspec.PROJECT)
BUILTIN_DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"


class PluginError(Exception):
    """A plugin or module folder is broken; the named module cannot be used until it is fixed."""


@dataclass
class ModuleType:
    """A loadable module: its manifest and where its class lives."""

    name: str
    folder: Path
    class_path: str | None  # "package.module:Class", or None for a manifest-only module
    source: str = "entry point"
    _class: type[Module] | None = field(default=None, repr=False)

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.yaml"

    def load_class(self) -> type[Module]:
        if self._class is None:
            if self.class_path is None:
                raise PluginError(
                    f"module {self.name!r} ({self.folder}) has a manifest but no Python implementation"
                )
            self._class = _import_class(self.class_path, self.folder)
        return self._class


def module_type(init_file: str | Path, class_path: str) -> ModuleType:
    """Describe the module in the folder of ``init_file``; ``class_path`` is ``"pkg.mod:Class"``."""
    folder = Path(init_file).resolve().parent
    return ModuleType(name=folder.name, folder=folder, class_path=class_path)


def _import_class(class_path: str, folder: Path) -> type[Module]:
    from everpy.core.module import Module

    if class_path.startswith("file:"):
        file_name, _, class_name = class_path[5:].rpartition(":")
        file = Path(file_name)
        py_module = _import_file(f"everpy_ext.{folder.name}", file)
    else:
        module_name, _, class_name = class_path.partition(":")
        py_module = importlib.import_module(module_name)
    if class_name:
        cls = getattr(py_module, class_name, None)
    else:
        found = [
            obj
            for obj in vars(py_module).values()
            if inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module
            and obj.__module__ == py_module.__name__
        ]
        cls = found[0] if len(found) == 1 else None
    if not (inspect.isclass(cls) and issubclass(cls, Module)):
        raise PluginError(f"{class_path} does not name one subclass of everpy.Module ({folder})")
    return cls


def _import_file(name: str, file: Path) -> ModuleTypeAlias:
    """Import a module folder's ``module.py`` once per process, whatever discovers it again."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == file.resolve():
        return loaded
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot import {file}")
    py_module = importlib.util.module_from_spec(spec)
    sys.modules[name] = py_module
    spec.loader.exec_module(py_module)
    return py_module


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspec.PROJECT)
    pm.add_hookspecs(hookspec)
    return pm


@dataclass
class Discovery:
    module_types: dict[str, ModuleType]
    definition_dirs: list[Path]
    problems: list[str]


def discover(
    extra_module_dirs: Sequence[Path] = (),
    extra_definition_dirs: Sequence[Path] = (),
    use_entry_points: bool = True,
) -> Discovery:
    """Find every module type and definition folder. Later sources override earlier ones by name."""
    pm = make_plugin_manager()
    problems: list[str] = []
    if use_entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must not hide the others
            problems.append(f"loading entry points of group {ENTRY_POINT_GROUP!r} failed: {exc!r}")
    for dir_ in extra_module_dirs:
        pm.register(_FolderPlugin(Path(dir_)), name=f"folder:{dir_}")
    pm.check_pending()

    types: dict[str, ModuleType] = {}
    for batch in reversed(pm.hook.everpy_module_types()):  # pluggy calls last-registered first
        for mtype in batch or ():
            types[mtype.name] = mtype
    def_dirs = [BUILTIN_DEFINITIONS]
    for batch in reversed(pm.hook.everpy_definition_dirs()):
        def_dirs.extend(Path(p) for p in batch or ())
    def_dirs.extend(Path(p) for p in extra_definition_dirs)
    return Discovery(types, _dedupe(def_dirs), problems)


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for p in paths:
        seen.setdefault(p.resolve(), None)
    return list(seen)


class _FolderPlugin:
    """Module folders on disk: every ``**/<Name>/manifest.yaml`` below the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @hookimpl
    def everpy_module_types(self) -> list[ModuleType]:
        if not self.root.is_dir():
            raise PluginError(f"module folder {self.root} does not exist")
        found = []
        for manifest in sorted(self.root.rglob("manifest.yaml")):
            folder = manifest.parent
            impl = folder / "module.py"
            class_path = f"file:{impl}:" if impl.is_file() else None
            found.append(ModuleType(folder.name, folder, class_path, source=f"folder {self.root}"))
        return found

    @hookimpl
    def everpy_definition_dirs(self) -> list[Path]:
        return [self.root] if any((self.root / d).is_dir() for d in ("interfaces", "types", "errors")) else []
