"""A non-editable wheel carries the built-in modules and definitions and works from a fresh venv."""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "everpy"
    # Build from a clean copy of the tracked tree so stray build artefacts cannot leak in.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                   check=True, capture_output=True)
    return next(out.glob("everpy-*.whl"))


def test_wheel_contains_modules_definitions_and_entry_points(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "everpy_modules/Example/manifest.yaml" in names
    assert "everpy_modules/Example/example.py" in names
    assert "everpy/definitions/interfaces/example.yaml" in names
    assert "everpy/definitions/errors/generic.yaml" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    ).decode()
    assert "[everpy.modules]" in entry_points and "Example = everpy_modules.Example" in entry_points
    assert "everpy = everpy.cli:main" in entry_points


def test_installed_wheel_checks_a_shipped_config_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # System site packages provide the dependencies (no downloads); the wheel itself goes into the venv
    # and, being first on sys.path, wins over the editable checkout.
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    config = tmp_path / "sil.yaml"
    shutil.copy(ROOT / "config" / "sil.yaml", config)
    where = subprocess.run([str(python), "-c", "import everpy, everpy_modules; print(everpy.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where
    result = subprocess.run([str(env_dir / "bin" / "everpy"), "check", str(config)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
