"""FlakyBoard: a board driver that fails on purpose, over hardware that outlives the driver.

The hardware object is shared by every instance of the same module id in one runtime (in memory,
keyed by the host) or kept in ``hardware_file`` (own process): a restarted instance finds the pilot,
PWM and relays as the MCU kept them, and the failure plan and command counters as the test left them.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from everpy import Module, command
from everpy.core.exceptions import HandlerError

FAILURE_MODES = ("none", "raise_once_per_call", "always", "hang")


@dataclass
class FailurePlan:
    """Which board commands fail and how; a test may change it while the system runs."""

    commands: set[str] = field(default_factory=set)  # "*" = all
    mode: str = "none"

    @classmethod
    def parse(cls, commands: str, mode: str) -> FailurePlan:
        if mode not in FAILURE_MODES:
            raise ValueError(f"failure_mode {mode!r}: expected one of {', '.join(FAILURE_MODES)}")
        return cls({c.strip() for c in commands.split(",") if c.strip()}, mode)

    def hits(self, cmd: str) -> bool:
        return self.mode != "none" and ("*" in self.commands or cmd in self.commands)


@dataclass
class Hardware:
    enabled: bool = False
    pilot_mode: str = "F"  # F, X1, E or PWM: what the board generates
    duty_percent: float = 100.0
    car_pilot: str = "A"  # the car's resistors: A (unplugged) .. E
    power_allowed: bool = False
    relays_closed: bool = False
    overcurrent_limit_a: float | None = None
    lease_renewals: int = 0
    plan: FailurePlan = field(default_factory=FailurePlan)
    attempts: Counter[str] = field(default_factory=Counter)  # every command that reached the board
    failed: Counter[str] = field(default_factory=Counter)
    # raise_once_per_call: the next attempt of these commands goes through (their previous one failed)
    retry_passes: set[str] = field(default_factory=set)

    def should_close(self) -> bool:
        """Relays close only with permission, PWM on and a car asking for power (C/D)."""
        return self.enabled and self.power_allowed and self.pilot_mode == "PWM" and self.car_pilot in ("C", "D")

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # asdict() would mangle the Counters
        data["plan"] = {"commands": sorted(self.plan.commands), "mode": self.plan.mode}
        data["retry_passes"] = sorted(self.retry_passes)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Hardware:
        data: dict[str, Any] = json.loads(text)
        plan = data.pop("plan")
        return cls(**{**data, "plan": FailurePlan(set(plan["commands"]), plan["mode"]),
                      "attempts": Counter(data["attempts"]), "failed": Counter(data["failed"]),
                      "retry_passes": set(data["retry_passes"])})


def load_hardware(path: Path) -> Hardware | None:
    return Hardware.from_json(path.read_text()) if path.exists() else None


def save_hardware(path: Path, hardware: Hardware) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(hardware.to_json())
    tmp.replace(path)


BOARD, CAR = "board_support", "ev_board_support"
CAR_IMPL = "car"
_IN_MEMORY: weakref.WeakKeyDictionary[Any, dict[str, Hardware]] = weakref.WeakKeyDictionary()


class FlakyBoard(Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_fallback_handler(CAR_IMPL, self._car_command)  # only set_cp_state matters

    async def init(self) -> None:
        cfg = self.config
        self._file = Path(cfg["hardware_file"]) if cfg["hardware_file"] else None
        found = self._find_hardware()
        self.restarted = found is not None  # the MCU was already running: this instance is a restart
        self.hardware = found or Hardware(plan=FailurePlan.parse(cfg["failing_commands"], cfg["failure_mode"]))
        self._store()

    def _find_hardware(self) -> Hardware | None:
        if self._file is not None:
            return load_hardware(self._file)
        return _IN_MEMORY.setdefault(self._host, {}).get(self.id)

    def _store(self) -> None:
        if self._file is not None:
            save_hardware(self._file, self.hardware)
        else:
            _IN_MEMORY.setdefault(self._host, {})[self.id] = self.hardware

    async def ready(self) -> None:
        self._publish_setup()

    def crash(self) -> None:
        """The driver dies (a bug, a lost USB device): the host restarts the module, the MCU stays."""

        async def die() -> None:
            raise RuntimeError("FlakyBoard: simulated driver crash")

        self.spawn(die(), name="crash")

    def _publish_setup(self) -> None:
        self.publish(BOARD, "capabilities", {
            "max_current_A_import": self.config["max_current_A"], "min_current_A_import": 6,
            "max_phase_count_import": 3, "min_phase_count_import": 1,
            "max_current_A_export": 0, "min_current_A_export": 0,
            "max_phase_count_export": 3, "min_phase_count_export": 1,
            "supports_changing_phases_during_charging": False, "supports_cp_state_E": False,
            "connector_type": "IEC62196Type2Cable",
        })
        self.publish(BOARD, "ac_nr_of_phases_available", 3)

    # ------------------------------------------------------------------ failures
    async def _attempt(self, cmd: str) -> None:
        """Count the attempt and fail it when the plan says so."""
        hw = self.hardware
        hw.attempts[cmd] += 1
        plan = hw.plan
        failing = plan.hits(cmd)
        if failing and plan.mode == "raise_once_per_call":
            failing = cmd not in hw.retry_passes
            hw.retry_passes.symmetric_difference_update({cmd})
        if failing:
            hw.failed[cmd] += 1
        self._store()
        if not failing:
            return
        if plan.mode == "hang":
            await asyncio.Event().wait()  # a driver stuck on a bus that never answers
        raise HandlerError(f"{cmd}: simulated I2C timeout")

    # ------------------------------------------------------------------ board side
    @command(BOARD, "enable")
    async def enable(self, value: bool) -> None:
        await self._attempt("enable")
        self.hardware.enabled = value
        self._relays()
        if value:
            # As the interface says: on enable the board publishes its present state again.
            self._publish_setup()
            if self.hardware.car_pilot != "A":
                self.publish(BOARD, "event", {"event": self.hardware.car_pilot})
            if self.hardware.relays_closed:
                self.publish(BOARD, "event", {"event": "PowerOn"})

    @command(BOARD, "pwm_on")
    async def pwm_on(self, value: float) -> None:
        await self._attempt("pwm_on")
        self.hardware.pilot_mode, self.hardware.duty_percent = "PWM", value
        self._relays()

    @command(BOARD, "cp_state_X1")
    async def cp_state_x1(self) -> None:
        await self._pilot("cp_state_X1", "X1")

    @command(BOARD, "cp_state_F")
    async def cp_state_f(self) -> None:
        await self._pilot("cp_state_F", "F")

    @command(BOARD, "cp_state_E")
    async def cp_state_e(self) -> None:
        await self._pilot("cp_state_E", "E")

    async def _pilot(self, cmd: str, mode: str) -> None:
        await self._attempt(cmd)
        self.hardware.pilot_mode, self.hardware.duty_percent = mode, 100.0
        self._relays()

    @command(BOARD, "allow_power_on")
    async def allow_power_on(self, value: dict[str, Any]) -> None:
        await self._attempt("allow_power_on")
        self.hardware.power_allowed = bool(value["allow_power_on"])
        self._relays()

    @command(BOARD, "renew_power_lease")
    async def renew_power_lease(self, valid_for_ms: int) -> None:
        await self._attempt("renew_power_lease")
        self.hardware.lease_renewals += 1  # not enforced: this board tests the manager, not the lease
        self._store()

    @command(BOARD, "ac_switch_three_phases_while_charging")
    async def switch_phases(self, value: bool) -> None:
        await self._attempt("ac_switch_three_phases_while_charging")

    @command(BOARD, "ac_set_overcurrent_limit_A")
    async def set_overcurrent_limit(self, value: float) -> None:
        await self._attempt("ac_set_overcurrent_limit_A")
        self.hardware.overcurrent_limit_a = value
        self._store()

    def _relays(self) -> None:
        hw = self.hardware
        close = hw.should_close()
        if close != hw.relays_closed:
            hw.relays_closed = close
            self.publish(BOARD, "event", {"event": "PowerOn" if close else "PowerOff"})
        self._store()

    # ------------------------------------------------------------------ car side
    @command(CAR_IMPL, "set_cp_state")
    def set_cp_state(self, cp_state: str) -> None:
        if cp_state == self.hardware.car_pilot:
            return
        self.hardware.car_pilot = cp_state
        if self.hardware.enabled:
            self.publish(BOARD, "event", {"event": cp_state})
        self._relays()

    def _car_command(self, cmd: str, args: dict[str, Any]) -> None:
        return None  # the car's other controls have no effect on this board
