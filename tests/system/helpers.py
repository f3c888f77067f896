"""Run configs and recording scripts shared by the System and SystemAggregator tests."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.testing import RunningSystem, run_system

TEST_MODULES = Path(__file__).parent / "test_modules"


def running(cfg: dict[str, Any], clock: FakeClock | None = None) -> AbstractAsyncContextManager[RunningSystem]:
    """The system of a test config, with the test-only recorder module available."""
    return run_system(cfg, clock=clock, extra_module_dirs=[TEST_MODULES])

RECORDING_SCRIPT = """
import json, os, sys
from pathlib import Path
record = {"argv": sys.argv[1:], "request_id": os.environ.get("EVERPY_FIRMWARE_REQUEST_ID")}
if len(sys.argv) > 1 and Path(sys.argv[1]).is_file():
    record["content"] = Path(sys.argv[1]).read_bytes().decode("latin-1")
with open(sys.argv[0] + ".calls", "a") as log:
    log.write(json.dumps(record) + "\\n")
sys.exit(int(Path(sys.argv[0] + ".exit").read_text()) if Path(sys.argv[0] + ".exit").exists() else 0)
"""


class RecordingCommand:
    """A real executable that records each invocation (arguments, request id env, file content)."""

    def __init__(self, directory: Path, name: str, exit_code: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.script = directory / f"{name}.py"
        self.script.write_text(RECORDING_SCRIPT)
        self.exit_code = exit_code

    @property
    def exit_code(self) -> int:
        path = Path(str(self.script) + ".exit")
        return int(path.read_text()) if path.exists() else 0

    @exit_code.setter
    def exit_code(self, code: int) -> None:
        Path(str(self.script) + ".exit").write_text(str(code))

    @property
    def command(self) -> str:
        return f"{sys.executable} {self.script}"

    @property
    def calls(self) -> list[dict[str, Any]]:
        path = Path(str(self.script) + ".calls")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def system_module_config(board_dir: Path, **overrides: Any) -> dict[str, Any]:
    """config_module of a System instance whose state lives in `board_dir` (fast retries, no delays)."""
    (board_dir / "logs").mkdir(parents=True, exist_ok=True)
    if not (board_dir / "boot_id").exists():
        (board_dir / "boot_id").write_text("boot-1")
    config: dict[str, Any] = {
        "boot_id_file": str(board_dir / "boot_id"),
        "state_dir": str(board_dir / "state"),
        "work_dir": str(board_dir / "work"),
        "log_paths": str(board_dir / "logs"),
        "default_retry_interval_s": 0,
        "reset_delay_s": 0,
        "reboot_delay_s": 0,
        "transfer_timeout_s": 20,
    }
    config.update(overrides)
    return config


def recorder_of(module_id: str, impl: str = "main") -> dict[str, Any]:
    return {
        "module": "SystemStatusRecorder",
        "connections": {"system": [{"module_id": module_id, "implementation_id": impl}]},
    }


def power_cycle(board_dir: Path) -> None:
    """The board of `board_dir` boots its OS anew (as seen by System through boot_id_file)."""
    boot_id = board_dir / "boot_id"
    boot_id.write_text(f"boot-{int(boot_id.read_text().split('-')[1]) + 1}")
