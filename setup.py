"""Packaging glue that pyproject.toml cannot express statically.

Built-in modules live in ``modules/<Name>/`` and ship as ``everpy_modules.<Name>``. Each one gets an
entry point in the ``everpy.modules`` group, the same group third-party packages use, so the runtime
discovers built-in and external modules the same way.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
DATA_EXTENSIONS = ("yaml", "yml", "json", "csv", "txt", "md", "sh")
MODULE_NAMES = sorted(p.parent.name for p in (HERE / "modules").glob("*/__init__.py"))

setup(
    packages=find_packages(include=["everpy", "everpy.*"])
    + ["everpy_modules"]
    + [f"everpy_modules.{p}" for p in find_packages("modules")],
    package_dir={"everpy_modules": "modules"},
    # Definitions and module data (manifests, register maps, ...) live in folders that are not packages.
    package_data={
        "everpy": ["definitions/*/*.yaml", "py.typed"],
        "everpy_modules": [f"*/{'*/' * depth}*.{ext}" for depth in range(3) for ext in DATA_EXTENSIONS],
    },
    entry_points={
        "console_scripts": ["everpy = everpy.cli:main"],
        "everpy.modules": [f"{name} = everpy_modules.{name}" for name in MODULE_NAMES],
    },
)
