"""Build the wheel and install it into a staging root exactly as the Yocto recipes do, then let the
installed `everpy` validate the installed board configs from there.

everpy_0.1.0.bb (python_setuptools_build_meta -> python_pep517):
    do_compile:  python -m build --no-isolation --wheel --outdir <dist> ${S}
    do_install:  python -m installer --destdir ${D} <dist>/*.whl
everpy-config.inc:
    do_install:      install -m 0644 <board>.yaml ${D}/etc/everpy/config.yaml
    do_check_config: python <native bindir>/everpy check ${D}/etc/everpy/config.yaml
                     (everpy-native: everpy on PYTHONPATH, its -native dependencies beside it)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from .layer import EVERPY_RECIPE, REPO_ROOT, board_configs

# Imports `everpy check` may make: what everpy-native has at build time (the recipe's class-native
# RDEPENDS, with what those bring along) plus optional helpers jsonschema and PyYAML load if present.
NATIVE_IMPORT_NAMES = {
    "python3-pyyaml-native": {"yaml", "_yaml"},
    "python3-jsonschema-native": {
        "jsonschema",
        "jsonschema_specifications",
        "referencing",
        "rpds",
        "attr",
        "attrs",
        "typing_extensions",
    },
    "python3-pluggy-native": {"pluggy"},
    "python3-paho-mqtt-native": {"paho"},
}
OPTIONAL_IMPORTS = {
    "idna",
    "jsonpointer",
    "rfc3339_validator",
    "rfc3986_validator",
    "uri_template",
    "webcolors",
    "isoduration",
    "fqdn",
    "rfc3987",
    "certifi",
    "six",
    "cython_runtime",
}


@dataclass(frozen=True)
class StagingRoot:
    root: Path
    site_packages: Path
    everpy_script: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONPATH"] = str(self.site_packages)
        return env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # cwd outside the repository, so the checkout's own everpy/ is not importable from there.
        return subprocess.run(
            [sys.executable, *args], env=self.env(), cwd=self.root, capture_output=True, text=True, timeout=timeout
        )

    def install_config(self, board_config: Path) -> Path:
        target = self.root / "etc" / "everpy" / "config.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(board_config, target)
        target.chmod(0o644)
        return target


def checkout_copy(destination: Path) -> Path:
    """The work tree as a git checkout of it would look (tracked and new, unignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # listed but deleted in the work tree: not in a checkout either
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> StagingRoot:
    work = tmp_path_factory.mktemp("yocto-build")
    source = checkout_copy(work / "src")
    dist = work / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert build.returncode == 0, (
        "wheel build failed (the test extras provide build, setuptools>=68, wheel):\n"
        + build.stdout[-3000:]
        + build.stderr[-3000:]
    )
    wheels = sorted(dist.glob("everpy-*.whl"))
    assert len(wheels) == 1, wheels
    root = work / "image"
    install = subprocess.run(
        [sys.executable, "-m", "installer", "--destdir", str(root), "--prefix", "/usr", str(wheels[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    purelib = Path(sysconfig.get_path("purelib", vars={"base": "/usr", "platbase": "/usr"}))
    site_packages = root / purelib.relative_to("/")
    return StagingRoot(root, site_packages, root / "usr" / "bin" / "everpy")


def test_wheel_installs_the_runtime_modules_and_definitions(staging: StagingRoot) -> None:
    assert staging.everpy_script.is_file()
    package = staging.site_packages / "everpy"
    assert (package / "core" / "sdnotify.py").is_file()
    assert any((package / "definitions").rglob("*.yaml")), "interface definitions missing from the wheel"
    manifests = {p.parent.name for p in (staging.site_packages / "everpy_modules").glob("*/manifest.yaml")}
    assert {"Auth", "EvseManager", "System"} <= manifests, manifests
    entry_points = next(staging.site_packages.glob("everpy-*.dist-info")) / "entry_points.txt"
    assert "[everpy.modules]" in entry_points.read_text()


def test_installed_everpy_is_the_staged_copy(staging: StagingRoot) -> None:
    result = staging.run("-c", "import everpy, everpy_modules; print(everpy.__file__); print(everpy_modules.__file__)")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        assert Path(line).is_relative_to(staging.site_packages), result.stdout


@pytest.mark.parametrize("board", sorted(board_configs()))
def test_installed_everpy_accepts_the_installed_board_config(staging: StagingRoot, board: str) -> None:
    config = staging.install_config(board_configs()[board])
    result = staging.run(str(staging.everpy_script), "check", str(config))
    assert result.returncode == 0, f"{board}: everpy check rejected {config}:\n{result.stdout}{result.stderr}"
    assert "OK" in result.stdout


def test_installed_everpy_rejects_a_broken_config(staging: StagingRoot, tmp_path: Path) -> None:
    """What would fail the build: a config naming a module that the image does not ship."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("active_modules:\n  meter:\n    module: NoSuchPowermeter\n")
    result = staging.run(str(staging.everpy_script), "check", str(broken))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NoSuchPowermeter" in result.stderr


def native_dependencies() -> set[str]:
    text = EVERPY_RECIPE.read_text()
    block = text.split('RDEPENDS:${PN}:class-native = "', 1)[1].split('"', 1)[0]
    return set(block.replace("\\", " ").split())


def test_config_check_needs_only_what_everpy_native_provides(staging: StagingRoot) -> None:
    """do_check_config runs on the build host; it must not need the OCPP, Modbus or mDNS stacks."""
    allowed = set().union(*(NATIVE_IMPORT_NAMES[dep] for dep in native_dependencies())) | OPTIONAL_IMPORTS
    config = staging.install_config(board_configs()["main"])
    probe = (
        "import runpy, sys\n"
        "sys.argv = [sys.argv[1], 'check', sys.argv[2]]\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    loaded = {name.split('.')[0] for name in list(sys.modules)}\n"
        "    print('IMPORTED', ' '.join(sorted(loaded - set(sys.stdlib_module_names))), file=sys.stderr)\n"
    )
    result = staging.run("-c", probe, str(staging.everpy_script), str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    imported = set(result.stderr.rsplit("IMPORTED", 1)[1].split())
    third_party = {name for name in imported if not name.startswith(("everpy", "_", "__"))}
    assert third_party <= allowed, f"`everpy check` imports {sorted(third_party - allowed)} (not in everpy-native)"
