"""The plugin API of everpy: every hook a plugin may implement, documented here and nowhere else.

A plugin is any Python module registered in the ``everpy.modules`` entry-point group (built-in modules
are registered the same way, see ``setup.py``). Hooks are called with keyword arguments and their
names start with ``everpy_``; unknown ``everpy_*`` functions in a plugin are refused at startup
(``PluginManager.check_pending``), so a misspelt hook never goes silently unused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from everpy.core.plugins import ModuleType

PROJECT = "everpy"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def everpy_module_types() -> list[ModuleType]:
    """Return the module types this plugin provides.

    Build each with :func:`everpy.core.plugins.module_type`, which reads the ``manifest.yaml``
    beside the plugin and imports the class only when a config uses it.
    """
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations, never this body


@hookspec
def everpy_definition_dirs() -> list[Path]:
    """Return extra definition folders (each may hold ``interfaces/``, ``types/``, ``errors/``).

    Use this when a plugin brings interfaces of its own.
    """
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations, never this body
