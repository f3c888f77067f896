"""meta-everpy lints clean and keeps the rules that make one layer work across releases."""

from __future__ import annotations

import configparser
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .layer import (
    EVERPY_RECIPE,
    LAYER,
    REPO_ROOT,
    SERVICE_FILE,
    assignments,
    board_configs,
    recipe_files,
)

# homepageping fetches HOMEPAGE over the network: impossible offline, so it is the only rule suppressed.
# (The mosquitto bbappend needs no noncoreoverride suppression: it only acts under the "everpy-os" override.)
OELINT_SUPPRESSED = ["oelint.vars.homepageping"]


def oelint(release: str) -> subprocess.CompletedProcess[str]:
    suppress = [arg for rule in OELINT_SUPPRESSED for arg in ("--suppress", rule)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "oelint_adv",
            "--release",
            release,
            "--quiet",
            "--relpaths",
            "--hide",
            "info",
            "--jobs",
            "1",
            *suppress,
            *map(str, recipe_files()),
        ],
        cwd=LAYER,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("release", ["scarthgap", "styhead", "walnascar", "whinlatter"])
def test_oelint_reports_nothing_above_info(release: str) -> None:
    result = oelint(release)
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, f"oelint-adv --release {release}:\n{findings}"


def test_layer_conf() -> None:
    values = assignments(LAYER / "conf" / "layer.conf")
    assert values["LAYERSERIES_COMPAT_everpy"].split() == ["scarthgap", "styhead", "walnascar", "whinlatter"]
    assert set(values["LAYERDEPENDS_everpy"].split()) == {
        "core",
        "openembedded-layer",
        "meta-python",
        "networking-layer",
    }
    # Weak default: only scarthgap (no UNPACKDIR of its own) takes it.
    assert re.search(r'^UNPACKDIR \?\?= "\$\{WORKDIR\}"$', (LAYER / "conf" / "layer.conf").read_text(), re.M)


def test_no_recipe_overrides_unpackdir_or_points_s_into_workdir() -> None:
    for recipe in [*recipe_files(), *LAYER.rglob("*.inc")]:
        text = recipe.read_text()
        assert not re.search(r"^\s*UNPACKDIR\s*[?:+.]*=", text, re.M), f"{recipe}: UNPACKDIR set in a recipe"
        assert "${WORKDIR}/git" not in text, f"{recipe}: S in WORKDIR is fatal from whinlatter on"


def test_sources_are_pinned() -> None:
    for recipe in [*recipe_files(), *LAYER.rglob("*.inc")]:
        assert "${AUTOREV}" not in recipe.read_text(), recipe
    values = assignments(EVERPY_RECIPE)
    assert values["SRCREV"] == "${EVERPY_SRCREV}"
    assert re.fullmatch(r"[0-9a-f]{40}", values["EVERPY_SRCREV"])
    assert "destsuffix=${BP}" in values["SRC_URI"]
    assert "S" not in values, "S stays at its default so each release finds the git checkout"


def test_everpy_builds_with_the_pep517_setuptools_class() -> None:
    text = EVERPY_RECIPE.read_text()
    assert re.search(r"^inherit .*\bpython_setuptools_build_meta\b", text, re.M)
    assert not re.search(r"^inherit .*\bsetuptools3\b", text, re.M), "setuptools3 fails do_check_backend"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'build-backend = "setuptools.build_meta"' in pyproject


def lic_md5(path, begin: int | None, end: int | None) -> str:
    """The checksum BitBake computes for LIC_FILES_CHKSUM (lines begin..end, newlines included)."""
    lines = path.read_bytes().splitlines(keepends=True)
    selected = lines[(begin or 1) - 1 : end or len(lines)]
    return hashlib.md5(b"".join(selected)).hexdigest()


def parse_lic_files(value: str) -> tuple[str, dict[str, str]]:
    url, *params = value.split(";")
    return url.removeprefix("file://"), dict(p.split("=", 1) for p in params)


def test_everpy_license_checksum_matches_the_tree() -> None:
    name, params = parse_lic_files(assignments(EVERPY_RECIPE)["LIC_FILES_CHKSUM"])
    begin, end = int(params.get("beginline", 0)) or None, int(params.get("endline", 0)) or None
    assert lic_md5(REPO_ROOT / name, begin, end) == params["md5"], f"{name} changed: update LIC_FILES_CHKSUM"


def test_board_config_license_checksums() -> None:
    inc = assignments(LAYER / "recipes-everpy" / "everpy-config" / "everpy-config.inc")
    _, params = parse_lic_files(inc["LIC_FILES_CHKSUM"])
    assert params["beginline"] == params["endline"] == "1"
    for board, config in board_configs().items():
        assert lic_md5(config, 1, 1) == inc["EVERPY_CONFIG_SPDX_MD5"], f"{board}: {config.name} line 1"


def test_both_images_differ_only_in_the_config_package() -> None:
    images = LAYER / "recipes-core" / "images"
    main = assignments(images / "everpy-image.bb")
    satellite = assignments(images / "everpy-satellite-image.bb")
    assert main["EVERPY_BOARD_CONFIG_PACKAGE"] == "everpy-config-main"
    assert satellite["EVERPY_BOARD_CONFIG_PACKAGE"] == "everpy-config-satellite"
    structural = {k for k in main.keys() | satellite.keys() if k not in ("SUMMARY", "DESCRIPTION")}
    assert {k: main.get(k) for k in structural} | {"EVERPY_BOARD_CONFIG_PACKAGE": None} == {
        k: satellite.get(k) for k in structural
    } | {"EVERPY_BOARD_CONFIG_PACKAGE": None}
    assert set(board_configs()) == {"main", "satellite"}


def test_service_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(SERVICE_FILE.read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert float(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"] == "/usr/bin/everpy run /etc/everpy/config.yaml"
    assert service["StateDirectory"] == "everpy" and service["LogsDirectory"] == "everpy"
    assert "mosquitto.service" not in unit["Unit"].get("Requires", "")  # its own broker, not the open one
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert (service["User"], service["Group"]) == ("everpy", "everpy")
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_service_unit_exposure_is_ok(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=yes` (systemd >= 250) scores the unit file itself: "OK" (below
    4.0) at most; the unit as it was before (root, ProtectSystem=full) scored 9.1 UNSAFE."""
    unit = tmp_path / "everpy.service"
    unit.write_text(SERVICE_FILE.read_text())
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=39", str(unit)],
                            capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for everpy.service: ([0-9.]+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) < 4.0, result.stdout
    assert result.returncode == 0, result.stdout  # --threshold: the score is at most 3.9


def test_the_useradd_in_the_recipe_matches_the_unit() -> None:
    recipe = (LAYER / "recipes-everpy" / "everpy" / "everpy_0.1.0.bb").read_text()
    assert "inherit python_setuptools_build_meta systemd useradd" in recipe
    assert "--user-group everpy" in recipe and "--group dialout" in recipe
    assert "-o everpy -g everpy ${D}${localstatedir}/lib/everpy" in recipe


def test_mosquitto_drop_in_is_loopback_only() -> None:
    conf = (LAYER / "recipes-everpy" / "everpy" / "files" / "mosquitto-everpy.conf").read_text()
    listeners = [line.split() for line in conf.splitlines() if line.startswith("listener ")]
    assert listeners and all(len(parts) == 3 and parts[2] in ("127.0.0.1", "::1") for parts in listeners)
    assert "allow_anonymous false" in conf.splitlines() and "allow_anonymous true" not in conf


def test_kas_files_point_at_this_layer_and_pinned_commits() -> None:
    import yaml

    main = yaml.safe_load((LAYER / "kas" / "everpy.yml").read_text())
    assert main["header"]["version"] >= 14
    assert main["distro"] == "everpy-os"
    images = {p.stem for p in (LAYER / "recipes-core" / "images").glob("*.bb")}
    assert set(main["target"]) == images
    for name, repo in main["repos"].items():
        if "url" not in repo:  # the everpy checkout itself
            for layer in repo["layers"]:
                assert (REPO_ROOT / layer / "conf" / "layer.conf").is_file(), layer
            continue
        assert repo["branch"] == "scarthgap", name
        assert re.fullmatch(r"[0-9a-f]{40}", repo["commit"]), f"{name}: pin a full commit"
    collections = {"meta", "meta-poky", "meta-oe", "meta-python", "meta-networking"}
    assert collections <= {layer for repo in main["repos"].values() for layer in repo["layers"] if "/" not in layer}
    assert 'EVERPY_SRCREV = "' in main["local_conf_header"]["everpy"]

    dev = yaml.safe_load((LAYER / "kas" / "everpy-dev.yml").read_text())
    assert dev["header"]["includes"] == ["yocto/meta-everpy/kas/everpy.yml"]
    assert (REPO_ROOT / dev["header"]["includes"][0]).is_file()
    assert "EXTERNALSRC:pn-everpy " in dev["local_conf_header"]["everpy-dev"]
