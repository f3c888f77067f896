"""BoardSupportSimulator: turns commands from both sides into a :class:`Port` and publishes what changed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from everpy import Module, command
from everpy.core.logs import LogThrottle

from .port import Observation, Port, PortSettings
from .power_lease import PowerLease
from .register_file import BadRegisterFile, read_register, write_register

BOARD, CAR, METER = "board_support", "ev_board_support", "powermeter"
METER_LOST = "powermeter/CommunicationFault"
LEASE_LOST, LEASE_SUB_TYPE = "evse_board_support/CommunicationFault", "PowerLease"


def rfc3339(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class BoardSupportSimulator(Module):
    async def init(self) -> None:
        cfg = self.config
        self.port = Port(PortSettings(voltage_v=cfg["nominal_voltage_V"], rcd_trip_ma=cfg["rcd_trip_mA"]))
        self.port.lease_valid = False  # no relay closes before a manager has renewed the lease
        self.power_lease = PowerLease(self._power_lease_expired)
        self.power_lease_lost = False  # LEASE_LOST raised, until the next renewal
        self._lease_log = LogThrottle(self.log)
        state_file = cfg["state_file"].replace("{id}", self.id)
        self.register_file: Path | None = Path(state_file) if state_file else None
        self.port.energy_wh_per_phase = self._starting_register()
        self._saved_wh = self.port.energy_wh  # the register as the file has it: saves only once it moved on
        self._save_failing = False
        self.overcurrent_limit_a: float | None = None
        self.meter_silent = False
        self._seen = self.port.snapshot()
        self._integrated_at = self.clock.monotonic()

    async def ready(self) -> None:
        self._publish_setup()
        self._publish_telemetry()
        self._publish_measurement()
        self.spawn(self._meter_loop(), name="meter")

    async def shutdown(self) -> None:
        self.power_lease.cancel()  # a stop is not a lost manager: no expiry during the stop
        # A stop (soft reset, restart of the stack, SIGTERM) keeps the register to the last Wh.
        self._integrate()
        self._save_register()

    def _publish_setup(self) -> None:
        cfg = self.config
        self.publish(BOARD, "capabilities", {
            "max_current_A_import": cfg["max_current_A"],
            "min_current_A_import": 6,
            "max_phase_count_import": cfg["max_phases"],
            "min_phase_count_import": 1,
            "max_current_A_export": 0,
            "min_current_A_export": 0,
            "max_phase_count_export": cfg["max_phases"],
            "min_phase_count_export": 1,
            "supports_changing_phases_during_charging": False,
            "supports_cp_state_E": True,
            "connector_type": cfg["connector_type"],
        })
        self.publish(BOARD, "ac_nr_of_phases_available", cfg["max_phases"])

    # ------------------------------------------------------------------ EVSE side
    @command(BOARD, "enable")
    def enable(self, value: bool) -> None:
        self._change(enabled=value)
        # A manager enables its board when it starts, also after a restart of the manager alone:
        # vars are not replayed, so tell it again what it cannot ask for.
        self._publish_setup()
        seen = self._seen
        if seen.pilot_state != "A":
            self.publish(BOARD, "event", {"event": seen.pilot_state})
        if seen.relays_closed:
            self.publish(BOARD, "event", {"event": "PowerOn"})

    @command(BOARD, "pwm_on")
    def pwm_on(self, value: float) -> None:
        self._change(pilot_mode="PWM", duty_percent=value)

    @command(BOARD, "cp_state_X1")
    def cp_state_x1(self) -> None:
        self._change(pilot_mode="X1", duty_percent=100.0)

    @command(BOARD, "cp_state_F")
    def cp_state_f(self) -> None:
        self._change(pilot_mode="F", duty_percent=0.0)

    @command(BOARD, "cp_state_E")
    def cp_state_e(self) -> None:
        self._change(pilot_mode="E", duty_percent=0.0)

    @command(BOARD, "allow_power_on")
    def allow_power_on(self, value: dict[str, Any]) -> None:
        allowed = bool(value["allow_power_on"])
        if allowed and not self.power_lease.valid:
            # Remembered, as the interface says; a manager that never renews would wait forever, so say why.
            self._lease_log("allowed without lease", logging.WARNING,
                            "allow_power_on(true) without a valid power lease: remembered, the relays stay "
                            "open until renew_power_lease")
        self._change(power_allowed=allowed)

    @command(BOARD, "renew_power_lease")
    def renew_power_lease(self, valid_for_ms: int) -> None:
        longest_ms = self.config["max_power_lease_ms"]
        if valid_for_ms > longest_ms:
            # Refused rather than shortened: a manager renewing at a third of what it asked for would
            # see its shortened lease run out between renewals and the relays chatter.
            raise ValueError(f"valid_for_ms {valid_for_ms} is longer than this board allows "
                             f"(max_power_lease_ms {longest_ms}); the lease is unchanged")
        self.power_lease.renew(valid_for_ms)
        if self.power_lease_lost:
            self.power_lease_lost = False
            self.log.info("power lease renewed (%d ms) after it had expired; the relays close on the next "
                          "allow_power_on(true)", valid_for_ms)
            self.clear_error(BOARD, LEASE_LOST, sub_type=LEASE_SUB_TYPE)
        self._change(lease_valid=True)  # closes the relays if power is allowed and the car asks

    def _power_lease_expired(self) -> None:
        """No renewal in time: the manager is gone (hung host, stalled bus); act on the board's own authority."""
        if not self.port.power_allowed:
            # The manager stops renewing once it withdrew power: the normal end of a lease.
            self.log.debug("power lease ended with power not allowed")
            self._change(lease_valid=False)
            return
        lease_ms = self.power_lease.last_valid_for_ms
        relays_were_closed = self._seen.relays_closed
        self._change(lease_valid=False, power_allowed=False)  # publishes PowerOff if they were closed
        if relays_were_closed:
            self.log.warning("power lease expired (no renewal within %s ms): relays opened, power allowed "
                             "again only after a renewal and allow_power_on(true)", lease_ms)
        else:
            self.log.warning("power lease expired (no renewal within %s ms) while power was allowed: "
                             "permission withdrawn (relays were open)", lease_ms)
            # The permission is gone all the same: the manager must not count on it any more.
            self.publish(BOARD, "event", {"event": "PowerOff"})
        self.power_lease_lost = True
        self.raise_error(BOARD, LEASE_LOST,
                         f"power lease expired: no renewal within {lease_ms} ms; the board opened its relays "
                         "and needs a renewal and allow_power_on(true) to close them",
                         sub_type=LEASE_SUB_TYPE)

    @command(BOARD, "ac_switch_three_phases_while_charging")
    def ac_switch_three_phases_while_charging(self, value: bool) -> None:
        raise RuntimeError("this simulated board does not support switching phases while charging")

    @command(BOARD, "ac_set_overcurrent_limit_A")
    def ac_set_overcurrent_limit_a(self, value: float) -> None:
        # Stored and shown only: the simulated board has no hardware trip (the manager's soft
        # over current check is what tests exercise).
        self.overcurrent_limit_a = value

    # ------------------------------------------------------------------ car side
    @command(CAR, "enable")
    def car_enable(self, value: bool) -> None:
        if not value:
            self._change(car_state="A", car_current_a=0.0)

    @command(CAR, "set_cp_state")
    def set_cp_state(self, cp_state: str) -> None:
        self._change(car_state=cp_state)

    @command(CAR, "allow_power_on")
    def car_allow_power_on(self, value: bool) -> None:
        # The car's own contactor: with it open the car draws nothing.
        if not value:
            self._change(car_current_a=0.0)

    @command(CAR, "diode_fail")
    def diode_fail(self, value: bool) -> None:
        self._change(diode_ok=not value)

    @command(CAR, "set_ac_max_current")
    def set_ac_max_current(self, current: float) -> None:
        self._change(car_current_a=current)

    @command(CAR, "set_three_phases")
    def set_three_phases(self, three_phases: bool) -> None:
        self._change(car_phases=min(3 if three_phases else 1, self.config["max_phases"]))

    @command(CAR, "set_rcd_error")
    def set_rcd_error(self, rcd_current_mA: float) -> None:
        self._change(residual_ma=rcd_current_mA)

    @command(CAR, "inject_error")
    def inject_error(self, error_type: str, active: bool, sub_type: str) -> None:
        if error_type == METER_LOST:
            self.meter_silent = active
            if active:
                self.raise_error(METER, METER_LOST, "simulated meter stopped answering", sub_type=sub_type)
            else:
                self.clear_error(METER, METER_LOST)
            return
        if not error_type.startswith("evse_board_support/"):
            raise ValueError(f"cannot inject {error_type!r}: only evse_board_support/* and {METER_LOST}")
        key = (error_type, sub_type)
        if active:
            self.port.injected.add(key)
        else:
            self.port.injected.discard(key)
        self._change()

    # ------------------------------------------------------------------ meter
    @command(METER, "start_transaction")
    def start_transaction(self, value: dict[str, Any]) -> dict[str, Any]:
        status = self.config["meter_transaction_start"]
        if status == "OK":
            return {"status": "OK"}
        if status == "UNEXPECTED_ERROR":
            return {"status": status, "error": "simulated signing failure"}
        return {"status": "NOT_SUPPORTED", "error": "the simulated meter does not sign"}

    @command(METER, "stop_transaction")
    def stop_transaction(self, transaction_id: str) -> dict[str, Any]:
        return {"status": "NOT_SUPPORTED", "error": "the simulated meter does not sign"}

    async def _meter_loop(self) -> None:
        while True:
            self._integrate()
            if not self.meter_silent:
                self.publish(METER, "powermeter", self.reading())
            await self.clock.sleep(self.config["meter_interval_s"])

    def reading(self) -> dict[str, Any]:
        port = self.port
        currents = port.currents()
        volts = port.settings.voltage_v
        phases = {f"L{i + 1}": round(c * volts, 1) for i, c in enumerate(currents)}
        return {
            "timestamp": rfc3339(self.clock.utcnow()),
            "meter_id": self.config["meter_id"],
            "energy_Wh_import": {
                "total": round(port.energy_wh, 3),
                **{f"L{i + 1}": round(e, 3) for i, e in enumerate(port.energy_wh_per_phase)},
            },
            "energy_Wh_export": {"total": 0.0},
            "power_W": {"total": round(sum(phases.values()), 1), **phases},
            "voltage_V": {"L1": volts, "L2": volts, "L3": volts},
            "current_A": {f"L{i + 1}": c for i, c in enumerate(currents)},
            "frequency_Hz": {"L1": 50.0},
        }

    def _integrate(self) -> None:
        now = self.clock.monotonic()
        self.port.integrate(now - self._integrated_at)
        self._integrated_at = now
        # Not every sample: a file write per reading would wear a real flash and cost an fsync each
        # second. A crash (no shutdown) loses at most this much; a clean stop loses nothing.
        if self.port.energy_wh - self._saved_wh >= self.config["state_save_interval_Wh"]:
            self._save_register()

    # ------------------------------------------------------------------ register across restarts
    def _starting_register(self) -> list[float]:
        """Per-phase registers at start: the kept ones, else initial_energy_Wh. A bad file never stops the module."""
        initial_wh = float(self.config["initial_energy_Wh"])
        initial = [initial_wh / 3] * 3
        path = self.register_file
        if path is None:
            return initial
        try:
            kept = read_register(path)
        except FileNotFoundError:
            self.log.info("meter register starts at %g Wh (no %s yet)", initial_wh, path)
            return initial
        except (OSError, BadRegisterFile) as error:
            self.log.warning("ignoring meter register file %s (%s); the register starts at %g Wh",
                             path, error, initial_wh)
            return initial
        if sum(kept) < initial_wh:
            # initial_energy_Wh was raised in the config: taking it still never moves the register back.
            self.log.info("meter register starts at initial_energy_Wh %g Wh (%s had %.3f Wh)",
                          initial_wh, path, sum(kept))
            return initial
        self.log.info("meter register continues at %.3f Wh (from %s)", sum(kept), path)
        return kept

    def _save_register(self) -> None:
        path = self.register_file
        energy_wh = self.port.energy_wh
        if path is None or energy_wh == self._saved_wh:
            return
        # Counted as saved even if the write fails, so a broken disk is retried at the same bounded rate.
        self._saved_wh = energy_wh
        try:
            write_register(path, self.port.energy_wh_per_phase)
        except OSError as error:
            if not self._save_failing:  # once, not at every retry
                self.log.warning("cannot keep the meter register in %s: %s", path, error)
            self._save_failing = True
            return
        if self._save_failing:
            self.log.info("meter register kept in %s again", path)
        self._save_failing = False

    # ------------------------------------------------------------------ publishing differences
    def _change(self, **inputs: Any) -> None:
        self._integrate()  # energy up to now at the old current
        for name, value in inputs.items():
            setattr(self.port, name, value)
        before, after = self._seen, self.port.snapshot()
        self._seen = after
        if before.relays_closed and not after.relays_closed:
            self._save_register()  # the charge is over and the register stands still: keep its final value
        self._publish_differences(before, after)

    def _publish_differences(self, before: Observation, after: Observation) -> None:
        if after.relays_closed != before.relays_closed and not after.relays_closed:
            self._relay_event(after)  # opening is reported first, as the hardware does it first
        if after.pilot_state != before.pilot_state:
            self.log.debug("pilot %s -> %s", before.pilot_state, after.pilot_state)
            self.publish(BOARD, "event", {"event": after.pilot_state})
            self.publish(CAR, "bsp_event", {"event": after.pilot_state})
            if "A" in (before.pilot_state, after.pilot_state):
                self._publish_cable(plugged=after.pilot_state != "A")
        if after.relays_closed != before.relays_closed and after.relays_closed:
            self._relay_event(after)
        if (after.duty_percent, after.relays_closed) != (before.duty_percent, before.relays_closed):
            self._publish_measurement()
        for error_type, sub_type in sorted(after.errors - before.errors):
            self.log.warning("board detects %s %s", error_type, sub_type)
            self.raise_error(BOARD, error_type, "detected by the simulated board", sub_type=sub_type)
        for error_type, sub_type in sorted(before.errors - after.errors):
            self.log.info("board no longer detects %s %s", error_type, sub_type)
            self.clear_error(BOARD, error_type, sub_type=sub_type)

    def _relay_event(self, seen: Observation) -> None:
        event = "PowerOn" if seen.relays_closed else "PowerOff"
        self.log.debug("relays %s", event)
        self.publish(BOARD, "event", {"event": event})
        self.publish(CAR, "bsp_event", {"event": event})
        self._publish_telemetry()

    def _publish_cable(self, plugged: bool) -> None:
        """Sockets read the cable rating from the proximity pilot; fixed cables have none to report."""
        if self.config["connector_type"] == "IEC62196Type2Socket":
            ampacity = self.config["cable_ampacity"] if plugged else "None"
            self.publish(BOARD, "ac_pp_ampacity", {"ampacity": ampacity})

    def _publish_measurement(self) -> None:
        measurement: dict[str, Any] = {
            "cp_pwm_duty_cycle": self._seen.duty_percent,
            "relais_on": self._seen.relays_closed,
        }
        if self.config["connector_type"] == "IEC62196Type2Socket":
            measurement["proximity_pilot"] = {"ampacity": self.config["cable_ampacity"]}
        self.publish(CAR, "bsp_measurement", measurement)

    def _publish_telemetry(self) -> None:
        self.publish(BOARD, "telemetry", {
            "evse_temperature_C": 35.0,
            "fan_rpm": 0.0,
            "supply_voltage_12V": 12.0,
            "supply_voltage_minus_12V": -12.0,
            "relais_on": self._seen.relays_closed,
        })
