"""The `everpy` command line, run as a user runs it (subprocesses, real broker)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

EVERPY = [sys.executable, "-m", "everpy.cli"]
ROOT = Path(__file__).resolve().parents[2]


def everpy(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*EVERPY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def pair_config(tmp_path: Path) -> Path:
    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump({"active_modules": {
        "a": {"module": "Example", "connections": {"peer": [{"module_id": "b", "implementation_id": "main"}]}},
        "b": {"module": "Example"},
    }}))
    return path


def test_check_accepts_a_good_config(pair_config):
    result = everpy("check", str(pair_config))
    assert result.returncode == 0, result.stderr
    assert "OK (2 modules)" in result.stdout


def test_check_reports_every_problem_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "active_modules:\n"
        "  a:\n"
        "    module: Example\n"
        "    config_module:\n"
        "      stepp: 2\n"
        "  b:\n"
        "    module: Exampel\n"
    )
    result = everpy("check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:5" in result.stderr and "stepp" in result.stderr and "step" in result.stderr
    assert f"{bad}:7" in result.stderr and "Example" in result.stderr  # did-you-mean for the module type
    assert "2 problem(s)" in result.stderr


def test_check_reports_malformed_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("active_modules:\n  a: {module: Example\n")
    result = everpy("check", str(bad))
    assert result.returncode == 1 and f"{bad}:" in result.stderr


def test_modules_and_interfaces_list_what_is_installed():
    modules = everpy("modules")
    assert modules.returncode == 0
    assert "Example" in modules.stdout and "provides main: example" in modules.stdout
    listing = everpy("interfaces")
    assert "example" in listing.stdout and "evse_manager" in listing.stdout
    shown = everpy("interfaces", "example")
    doc = yaml.safe_load(shown.stdout)
    assert set(doc["example"]["cmds"]) >= {"add", "increment"} and "value" in doc["example"]["vars"]
    assert everpy("interfaces", "no_such_interface").returncode == 1


def test_graph_formats(pair_config):
    mermaid = everpy("graph", str(pair_config)).stdout
    assert mermaid.startswith("flowchart LR") and 'm_a -- "peer → main" --> m_b' in mermaid
    dot = everpy("graph", str(pair_config), "--format", "dot").stdout
    assert dot.startswith("digraph") and '"a" -> "b" [label="peer -> main"];' in dot


def test_run_call_monitor_and_clean_shutdown(pair_config, tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.Popen([*EVERPY, "run", str(pair_config)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        for line in proc.stderr:
            if "up and running" in line or time.monotonic() > deadline:
                break
        assert "up and running" in line
        record = tmp_path / f"everpy-{os.getuid()}" / "everest.json"
        deadline = time.monotonic() + 10
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the record is written right after global ready; poll the file with a bound
        result = everpy("call", "a.main.peer_add", '{"a": 40, "b": 2}', env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == 42
        failed = everpy("call", "a.main.fail", env=env)
        assert failed.returncode == 2 and "HandlerException" in failed.stderr
        assert everpy("call", "a.main.add", "[1]", env=env).returncode == 1
        monitor = subprocess.Popen([*EVERPY, "monitor", "everest/modules/b/impl/main/var/#", "--count", "1"],
                                   stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        for _ in range(30):  # the monitor may subscribe after the first increments: keep producing until it sees one
            everpy("call", "b.main.increment", '{"by": 1}', env=env)
            try:
                out, _ = monitor.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
        assert "b.main/var/value  Var" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert not (tmp_path / f"everpy-{os.getuid()}" / "everest.json").exists()


def test_run_refuses_an_invalid_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("active_modules:\n  a:\n    module: Example\n    config_module:\n      step: 0\n")
    result = everpy("run", str(bad))
    assert result.returncode == 1 and "not starting" in result.stderr and f"{bad}:5" in result.stderr


def test_shipped_configs_are_valid():
    configs = sorted((ROOT / "config").glob("*.yaml"))
    assert configs
    for config in configs:
        result = everpy("check", str(config))
        assert result.returncode == 0, f"{config}: {result.stderr}"
