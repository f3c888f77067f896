"""The SIL charger with OCPP (config/sil-ocpp.yaml) adapted for tests, in-process or as its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from everpy.testing import RunningSystem

REPO = Path(__file__).resolve().parents[2]
SIL_OCPP = REPO / "config" / "sil-ocpp.yaml"
SIL_OCPP201 = REPO / "config" / "sil-ocpp201.yaml"
# what every 1.6 test station runs with: a failed transaction message is retried at once
V16_TEST_KEYS = {"TransactionMessageRetryInterval": "0"}
CHARGE_FOREVER = "iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 36000"


def sil_ocpp_config(tmp_path: Path, csms_url: str, *, car_script: str | None = None, swipe: bool = True,
                    keys: dict[str, str] | None = None, ocpp: dict[str, Any] | None = None,
                    system: dict[str, Any] | None = None, evse: dict[str, Any] | None = None,
                    board: dict[str, Any] | None = None, base: Path = SIL_OCPP,
                    test_keys: dict[str, str] | None = None) -> dict[str, Any]:
    """A SIL config with OCPP (config/sil-ocpp.yaml, or ``base``, e.g. SIL_OCPP201) with state in tmp_path, the
    given CSMS and car script (None: the car waits for commands), and extra initial OCPP configuration (1.6
    keys, or 2.0.1 ``Component.Variable`` names) over the base's and ``test_keys`` (default: V16_TEST_KEYS)."""
    config = yaml.safe_load(base.read_text())
    modules = config["active_modules"]
    car = modules["car"]["config_module"]
    car.update({"auto_exec": car_script is not None, "auto_exec_infinite": False})
    if car_script is not None:
        car["auto_exec_commands"] = car_script
    modules["evse"]["config_module"].update(evse or {})
    # the simulated meter keeps its register per test, not in the repository's run/; it reads every 0.2 s, so
    # the reading OCPP takes at each stop (the one after it) comes within 0.2 s, not within a second
    modules["board"].setdefault("config_module", {}).update(
        {"state_file": str(tmp_path / "meter-register.json"), "meter_interval_s": 0.2, **(board or {})})
    modules["rfid"]["config_module"].update({"present_on_auth_required": swipe, "auth_required_delay_s": 0.2})
    modules["system"]["config_module"].update({
        "state_dir": str(tmp_path / "system"), "work_dir": str(tmp_path / "system-work"),
        "log_paths": str(tmp_path / "logs"), "soft_reset_command": f"touch {tmp_path}/soft-reset",
        "hard_reset_command": f"touch {tmp_path}/hard-reset", **(system or {})})
    (tmp_path / "logs").mkdir(parents=True, exist_ok=True)
    ocpp_config = modules["ocpp"]["config_module"]
    base_keys = json.loads(ocpp_config["configuration"])
    ocpp_config.update({
        "central_system_uri": csms_url, "database_path": str(tmp_path / "ocpp.db"),
        "certificate_store_dir": str(tmp_path / "certificates"), "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5, "response_timeout_s": 5.0, "boot_retry_s": 0.5, "reset_drain_timeout_s": 5.0,
        "configuration": json.dumps({**base_keys, **(V16_TEST_KEYS if test_keys is None else test_keys),
                                      **(keys or {})}),
        **(ocpp or {})})
    return config


class StationProcess:
    """`everpy run` of a config in its own process group, so the test can kill -9 it like a power cut."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.path = workdir / "station.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = open(self.workdir / f"station-{self.runs}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from everpy.cli import main; sys.exit(main(sys.argv[1:]))",
             "run", str(self.path)], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill(self) -> None:
        """SIGKILL the whole process group (the runtime, module processes and its mosquitto)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """End of test: the crash tests have what they need, so the station just dies (an orderly SIGTERM
        stop sometimes takes the runtime's full drain time when a command is in flight, slowing the suite)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log(self) -> str:
        return "\n".join((self.workdir / f"station-{n}.log").read_text(errors="replace")
                         for n in range(1, self.runs + 1))


class SilDriver:
    """Drives the SIL charger's car and RFID reader over the bus (shared by the OCPP and the peer tests)."""

    wait_s = 20.0  # other suites share the two cores

    def __init__(self, system: RunningSystem) -> None:
        self.system = system
        self.evse_events = system.watch("evse", "evse", "session_event")

    async def car(self, script: str) -> None:
        assert await self.system.call("car", "main", "execute_charging_session", value=script) is True

    async def plug_in(self) -> None:
        await self.car(CHARGE_FOREVER)
        await self.evse_events.wait_for(lambda e: e["event"] == "SessionStarted", self.wait_s)

    async def unplug(self) -> None:
        await self.car("unplug")

    async def swipe(self, token: str) -> None:
        await self.system.call("rfid", "control", "present_token", token=token, authorization_type="")
