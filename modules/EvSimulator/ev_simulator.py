"""EvSimulator: runs car scripts against the car side of a (simulated) charging port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from everpy_modules.EvseManager.pwm import current_for_duty_cycle

from everpy import CommandError, Module, command

from .script import Command, ScriptError, parse_script

# The car only takes the PWM as "power may flow" between 7 % and 97 % (IEC 61851-1 A.6).
POWER_READY_MIN_DUTY, POWER_READY_MAX_DUTY = 7.0, 97.0


class EvSimulator(Module):
    async def init(self) -> None:
        self.port = self.require("ev_board_support")
        self.enabled = False
        self.duty_percent = 100.0
        self.relays_on = False
        self.pilot_seen = "A"  # as reported by the port (changes by someone else count too)
        # What the car wants to draw: ("regulated", A) follows the PWM up to A, ("fixed", A) ignores it.
        self.draw_mode: tuple[str, float] = ("fixed", 0.0)
        self.drawn_a = 0.0
        self._draw_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._script_task: asyncio.Task[Any] | None = None
        self.port.subscribe("bsp_measurement", self._on_measurement)
        self.port.subscribe("bsp_event", self._on_event)

    async def ready(self) -> None:
        self.spawn(self._regulate(), name="regulator")
        self._set_enabled(self.config["auto_enable"])
        script = self.config["auto_exec_commands"]
        if self.config["auto_exec"] and script:
            try:
                commands = parse_script(script)
            except ScriptError as exc:
                self.log.error("auto_exec_commands not started: %s", exc)
                return
            self._start(commands, repeat=self.config["auto_exec_infinite"])

    # ------------------------------------------------------------------ commands
    @command("main", "enable")
    async def enable(self, value: bool) -> None:
        if not value:
            self._cancel_script("stopped")
            await self._unplug()
        self._set_enabled(value)

    @command("main", "execute_charging_session")
    def execute_charging_session(self, value: str) -> bool:
        if not self.enabled:
            raise RuntimeError("the car simulator is disabled; enable it first")
        commands = parse_script(value)  # ScriptError reaches the caller as a clear handler error
        self._start(commands, repeat=False)
        return True

    @command("main", "stop_charging_session")
    def stop_charging_session(self) -> bool:
        return self._cancel_script("stopped")

    # ------------------------------------------------------------------ what the port tells
    def _on_measurement(self, measurement: dict[str, Any]) -> None:
        self.duty_percent = float(measurement["cp_pwm_duty_cycle"])
        self.relays_on = bool(measurement.get("relais_on", self.relays_on))
        self._notify()

    async def _regulate(self) -> None:
        """Follow PWM changes while drawing regulated power (one call at a time, latest value wins)."""
        while True:
            changed = self._changed
            if self.draw_mode[0] == "regulated":
                try:
                    await self._apply_draw()
                except CommandError as exc:
                    self.log.error("car: cannot follow the PWM: %s", exc)
            await changed.wait()

    def _on_event(self, event: dict[str, Any]) -> None:
        if event["event"] in ("A", "B", "C", "D", "E"):
            self.pilot_seen = event["event"]
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    # ------------------------------------------------------------------ running scripts
    def _start(self, commands: list[Command], repeat: bool) -> None:
        self._cancel_script("replaced")
        self._script_task = self.spawn(self._run(commands, repeat), name="script")

    def _cancel_script(self, reason: str) -> bool:
        task, self._script_task = self._script_task, None
        if task is None or task.done():
            return False
        task.cancel()
        self._publish_status(False, [], 0, finished_reason=reason)
        return True

    async def _run(self, commands: list[Command], repeat: bool) -> None:
        while True:
            self.log.info("car: running %s", "; ".join(map(str, commands)))
            for step, cmd in enumerate(commands):
                self._publish_status(True, commands, step)
                try:
                    await self._execute(cmd)
                except CommandError as exc:
                    self.log.error("car: %s failed: %s; script aborted", cmd, exc)
                    self._publish_status(False, commands, step, finished_reason=f"{cmd}: {exc}")
                    return
            if not repeat:
                self._publish_status(False, commands, len(commands), finished_reason="completed")
                return
            await self.clock.sleep(self.config["repeat_pause_s"])

    async def _execute(self, cmd: Command) -> None:
        name, args = cmd.name, cmd.args
        if name == "sleep":
            await self.clock.sleep(args[0])
        elif name == "iec_wait_pwr_ready":
            await self._set_pilot("B")
            await self._until(lambda: POWER_READY_MIN_DUTY < self.duty_percent < POWER_READY_MAX_DUTY)
            allowed = current_for_duty_cycle(self.duty_percent)
            self.log.info("car: PWM %.1f %% allows %.1f A", self.duty_percent, allowed)
        elif name in ("draw_power_regulated", "draw_power_fixed"):
            current, phases = args
            await self.port.call("set_three_phases", three_phases=phases > 1)
            self.draw_mode = ("regulated" if name == "draw_power_regulated" else "fixed", current)
            await self._apply_draw()
            await self._set_pilot("C")
        elif name == "pause":
            await self._stop_drawing()
            await self._set_pilot("B")
        elif name == "unplug":
            await self._unplug()
        elif name == "plugin":
            await self._set_pilot("B")
        elif name == "wait_for_real_plugin":
            await self._until(lambda: self.pilot_seen != "A")
        elif name == "error_e":
            await self._set_pilot("E")
        elif name == "diode_fail":
            await self.port.call("diode_fail", value=True)
        elif name == "rcd_current":
            await self.port.call("set_rcd_error", rcd_current_mA=args[0])
        else:  # parse_script only lets known commands through
            raise AssertionError(f"no handler for {name}")

    async def _set_pilot(self, state: str) -> None:
        self.log.info("car: pilot %s", {"A": "A (unplugged)", "B": "B (plugged in)", "C": "C (wants power)",
                                         "E": "E (pilot shorted)"}.get(state, state))
        await self.port.call("set_cp_state", cp_state=state)

    async def _apply_draw(self) -> None:
        async with self._draw_lock:  # the target is computed inside, so the last caller sends the latest
            mode, current = self.draw_mode
            target = min(current, current_for_duty_cycle(self.duty_percent)) if mode == "regulated" else current
            if target != self.drawn_a:
                await self.port.call("set_ac_max_current", current=target)
                self.drawn_a = target

    async def _stop_drawing(self) -> None:
        self.draw_mode = ("fixed", 0.0)
        await self._apply_draw()

    async def _unplug(self) -> None:
        """Unplugging takes the car's faults away with it."""
        await self._stop_drawing()
        await self._set_pilot("A")
        await self.port.call("diode_fail", value=False)
        await self.port.call("set_rcd_error", rcd_current_mA=0)

    def _set_enabled(self, value: bool) -> None:
        self.enabled = value
        self.publish("main", "enabled", value)

    def _publish_status(self, running: bool, commands: list[Command], step: int, finished_reason: str = "") -> None:
        status: dict[str, Any] = {
            "running": running,
            "script": ";".join(map(str, commands)),
            "step": step,
            "command": str(commands[step]) if running and step < len(commands) else "",
        }
        if finished_reason:
            status["finished_reason"] = finished_reason
        self.publish("main", "status", status)
