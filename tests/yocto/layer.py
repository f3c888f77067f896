"""Helpers for the yocto tests: where the layer is, and reading simple BitBake assignments."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "yocto" / "meta-everpy"
EVERPY_RECIPE = LAYER / "recipes-everpy" / "everpy" / "everpy_0.1.0.bb"
CONFIG_RECIPES = LAYER / "recipes-everpy" / "everpy-config"
SERVICE_FILE = LAYER / "recipes-everpy" / "everpy" / "files" / "everpy.service"


def recipe_files() -> list[Path]:
    return sorted([*LAYER.rglob("*.bb"), *LAYER.rglob("*.bbappend")])


def assignments(path: Path) -> dict[str, str]:
    """``VAR = "value"`` assignments (any operator, continuation lines joined), last one wins.

    Enough for the flat recipes of this layer; not a BitBake parser.
    """
    text = re.sub(r"\\\n", " ", path.read_text())
    found: dict[str, str] = {}
    for match in re.finditer(r'^([A-Za-z0-9_:${}\[\]-]+)\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*"([^"]*)"', text, re.M):
        found[match.group(1)] = " ".join(match.group(3).split())
    return found


def board_configs() -> dict[str, Path]:
    """Board name -> the config file its everpy-config-<board> recipe installs."""
    boards = {}
    for recipe in sorted(CONFIG_RECIPES.glob("everpy-config-*.bb")):
        values = assignments(recipe)
        boards[values["EVERPY_BOARD"]] = CONFIG_RECIPES / "files" / values["EVERPY_BOARD_CONFIG"]
    return boards
