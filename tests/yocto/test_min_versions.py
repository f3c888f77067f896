"""everpy's declared dependencies are ones the Yocto layer can satisfy on its oldest release.

ci-constraints/scarthgap.txt pins what scarthgap ships; run-min-versions.sh runs the suite against it.
These checks keep pyproject.toml, the pin file and the recipe's RDEPENDS in step.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from .layer import EVERPY_RECIPE, REPO_ROOT

SCARTHGAP_PINS = REPO_ROOT / "ci-constraints" / "scarthgap.txt"


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def pins() -> dict[str, Version]:
    found = {}
    for line in SCARTHGAP_PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[name.lower()] = Version(version)
    return found


def recipe_rdepends() -> set[str]:
    block = EVERPY_RECIPE.read_text().split('RDEPENDS:${PN} = "', 1)[1].split('"', 1)[0]
    return set(block.replace("\\", " ").split())


def test_every_dependency_is_pinned_at_a_version_pyproject_accepts() -> None:
    pinned = pins()
    problems = []
    for requirement in declared():
        version = pinned.get(requirement.name.lower())
        if version is None:
            problems.append(f"{requirement.name}: no scarthgap pin in {SCARTHGAP_PINS.name}")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement}: scarthgap ships {version}; lower the minimum or carry a recipe")
    assert not problems, "\n".join(problems)


def test_no_stale_pins() -> None:
    names = {requirement.name.lower() for requirement in declared()}
    assert set(pins()) <= names, f"pinned but not declared: {sorted(set(pins()) - names)}"


def test_every_dependency_is_a_runtime_dependency_of_the_recipe() -> None:
    rdepends = recipe_rdepends()
    missing = [r.name for r in declared() if f"python3-{r.name.lower()}" not in rdepends]
    assert not missing, f"add python3-<name> to RDEPENDS:${{PN}} in {EVERPY_RECIPE.name}: {missing}"


def test_python_requirement_allows_the_target_python() -> None:
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert minimum and int(minimum.group(1)) <= 12, f"scarthgap's Python is 3.12; requires-python is {requires}"
