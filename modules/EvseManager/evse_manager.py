"""EvseManager: wires the :class:`Charger` state machine to the board, meter, Auth and energy tree.

All charging decisions are in charger.py; this file only translates bus messages into Charger
inputs and Charger outputs into bus messages.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from everpy import CommandError, Module, command
from everpy.core.clock import TimerHandle
from everpy.core.logs import LogThrottle

from .board_link import BoardLink, LinkSettings
from .charger import Charger, ChargerSettings, Pilot, PilotOutput
from .energy import current_limit_a, flow_request
from .error_effects import effect_of

EVSE, ENERGY, TOKENS = "evse", "energy_grid", "token_provider"
METER_LOST = "evse_manager/PowermeterLost"
BOARD_FAILING = "evse_manager/BoardCommandsFailing"
BOARD_MODULE_DOWN = "ModuleDown"  # sub_type of BOARD_FAILING while the board module restarts
METER_START_FAILED = "evse_manager/PowermeterTransactionStartFailed"
CABLE_AMPS = {"None": 0.0, "A_13": 13.0, "A_20": 20.0, "A_32": 32.0, "A_63_3ph_70_1ph": 63.0}
# Events after which the EnergyManager should recompute at once rather than at its next tick: those
# where the EVSE starts or stops wanting power. (Not on every B<->C change: that traffic would sit
# between the pilot change and the relay command.)
ENERGY_PRIORITY_EVENTS = ("SessionStarted", "AuthRequired", "TransactionStarted", "TransactionFinished",
                          "SessionFinished", "Enabled", "Disabled")
FREE_CHARGING_TOKEN = {"id_token": {"value": "FREECHARGING", "type": "NoAuthorization"}, "authorization_type": "RFID"}


def rfc3339(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EvseManager(Module):
    async def init(self) -> None:
        cfg = self.config
        settings = ChargerSettings(
            connector_id=cfg["connector_id"],
            state_f_after_fault_s=cfg["state_F_after_fault_ms"] / 1000,
            pwm_min_change_interval_s=cfg["pwm_min_change_interval_s"],
            power_off_timeout_s=cfg["power_off_timeout_ms"] / 1000,
            has_ventilation=cfg["has_ventilation"],
            soft_over_current_tolerance_percent=cfg["soft_over_current_tolerance_percent"],
            soft_over_current_measurement_noise_a=cfg["soft_over_current_measurement_noise_A"],
            soft_over_current_timeout_s=cfg["soft_over_current_timeout_ms"] / 1000,
        )
        self.charger = Charger(self.clock, _Outputs(self), settings, meter_reading=lambda: self.last_meter)
        self.capabilities: dict[str, Any] | None = None
        self.last_meter: dict[str, Any] | None = None
        self.telemetry: dict[str, Any] | None = None
        self._meter_problems: set[str] = set()
        self._meter_watchdog: TimerHandle | None = None
        self._energy_expiry: TimerHandle | None = None
        self._first_meter = asyncio.Event()
        self._energy_priority = False
        self._board_down = False
        self._resync_seen: set[str] | None = None  # what a restarted board re-published since its enable
        if cfg["energy_management"]:
            self.charger.set_limit("energy", 0.0)  # nothing until the EnergyManager grants power

        # A flapping board error (a loose sensor wire) is logged once a minute per error, not per flap.
        self._error_log = LogThrottle(self.log, 60.0, monotonic=self.clock.monotonic)
        self.bsp = self.require("bsp")
        self._stop_progress = asyncio.Event()  # see _until_stopped_safely
        self.board = BoardLink(self.bsp, self.clock, self.log, LinkSettings(
            failures_to_latch=cfg["board_failures_to_latch"],
            failure_window_s=cfg["board_failure_window_s"],
            retry_max_s=cfg["board_retry_max_s"],
            probe_interval_s=cfg["board_probe_interval_s"],
            successes_to_heal=cfg["board_successes_to_heal"],
            command_timeout_s=cfg["board_command_timeout_ms"] / 1000,
            power_lease_ms=cfg["power_lease_ms"],
        ), on_latched=self._board_latched, on_healed=self._board_healed, on_enabled=self._board_enabled)
        self.bsp.subscribe_state(self._on_board_module_state)
        for var, callback in (
            ("event", self._on_board_event),
            ("capabilities", self._on_capabilities),
            ("ac_nr_of_phases_available", self.charger.set_phases),
            ("telemetry", self._on_telemetry),
            ("ac_pp_ampacity", self._on_cable),
            ("request_stop_transaction", self._on_board_stop_request),
        ):
            self.bsp.subscribe(var, callback)  # the host drops values outside the interface schema
        self.bsp.subscribe_error(self._on_board_error)
        self.meter = self.connections("powermeter")[0] if self.connections("powermeter") else None
        if self.meter is not None:
            self.meter.subscribe("powermeter", self._on_meter)
            self.meter.subscribe_error(self._on_meter_error)

    async def ready(self) -> None:
        self.spawn(self.board.run(), name="board link")
        self.board.enable()
        self.publish(EVSE, "evse_id", self.config["evse_id"])
        self.publish(EVSE, "ready", False)
        self.spawn(self._start_up(), name="start-up")

    async def _start_up(self) -> None:
        if self.meter is not None:
            timeout_ms = self.config["initial_meter_value_timeout_ms"]
            try:
                await self.clock.wait_for(self._first_meter.wait(), timeout_ms / 1000)
            except TimeoutError:
                self.log.warning("no meter value within %d ms; starting without", timeout_ms)
            self._arm_meter_watchdog()
            # Close transactions the meter may still hold from before a restart (power loss).
            self.spawn(self._meter_transaction("stop_transaction", transaction_id=""), name="meter cleanup")
        self.charger.start()
        self.publish(EVSE, "ready", True)
        self.spawn(self._energy_requests(), name="energy requests")
        if self.config["status_interval_s"] > 0:
            self.spawn(self._status_lines(), name="status")

    # ------------------------------------------------------------------ evse_manager commands
    @command(EVSE, "get_evse")
    def get_evse(self) -> dict[str, Any]:
        cid = self.config["connector_id"]
        return {"id": cid, "connectors": [{"id": 1, "type": self.config["connector_type"]}]}

    @command(EVSE, "get_session")
    def get_session(self) -> dict[str, Any]:
        session_id = self.charger.session_id or ""
        answer: dict[str, Any] = {"session_id": session_id}
        if self.charger.transaction is not None:
            answer["transaction"] = {"uuid": session_id}
        return answer

    @command(EVSE, "enable_disable")
    def enable_disable(self, connector_id: int, cmd_source: dict[str, Any]) -> bool:
        was_enabled = self.charger.enabled
        enabled = self.charger.set_enable_source(
            cmd_source["enable_source"], cmd_source["enable_state"], cmd_source["enable_priority"]
        )
        if enabled and not was_enabled:
            self.board.clear_latch()  # re-enabling is the operator's reset of a latched board fault
        return enabled

    @command(EVSE, "authorize_response")
    def authorize_response(self, provided_token: dict[str, Any], validation_result: dict[str, Any]) -> None:
        if not self.charger.authorize(provided_token, validation_result):
            self.log.info("authorization %s for %s not used in state %s",
                          validation_result.get("authorization_status"),
                          provided_token["id_token"]["value"], self.charger.state)

    @command(EVSE, "withdraw_authorization")
    def withdraw_authorization(self) -> None:
        self.charger.withdraw_authorization()

    @command(EVSE, "reserve")
    def reserve(self, reservation_id: int) -> bool:
        return self.charger.reserve(reservation_id)

    @command(EVSE, "cancel_reservation")
    def cancel_reservation(self) -> None:
        self.charger.cancel_reservation()

    @command(EVSE, "pause_charging")
    def pause_charging(self) -> bool:
        return self.charger.pause()

    @command(EVSE, "resume_charging")
    def resume_charging(self) -> bool:
        return self.charger.resume()

    @command(EVSE, "stop_transaction")
    def stop_transaction(self, request: dict[str, Any]) -> bool:
        return self.charger.stop_transaction(request["reason"], request.get("id_tag"))

    @command(EVSE, "force_unlock")
    def force_unlock(self, connector_id: int) -> bool:
        # No connector lock is driven by this manager; unlocking means ending the transaction.
        self.charger.stop_transaction("UnlockCommand")
        return True

    # ------------------------------------------------------------------ energy node
    @command(ENERGY, "enforce_limits")
    def enforce_limits(self, value: dict[str, Any]) -> None:
        if value["uuid"] != self.id:
            return  # limits for another node of the tree
        phases = min(self.charger.facts.phases,
                     int((value["limits_root_side"].get("ac_max_phase_count") or {}).get("value", 3)))
        amps = current_limit_a(value["limits_root_side"], self.config["ac_nominal_voltage"], phases)
        self.charger.set_limit("energy", amps)
        self.publish(EVSE, "enforced_limits", value)
        if self._energy_expiry is not None:
            self._energy_expiry.cancel()
        self._energy_expiry = self.clock.call_later(value["valid_for"], self._energy_expired)

    def _energy_expired(self) -> None:
        self.log.warning("power budget expired: no limits from the EnergyManager; pausing")
        self.charger.set_limit("energy", 0.0)

    async def _energy_requests(self) -> None:
        while True:
            self._publish_energy_request()
            await self.clock.sleep(self.config["energy_request_interval_s"])

    def _publish_energy_request(self) -> None:
        if self.capabilities is None:
            return
        request = flow_request(self.id, self.charger.state, self.capabilities, self.charger.facts.phases,
                               rfc3339(self.clock.utcnow()), self.last_meter, self._energy_priority)
        self._energy_priority = False
        self.publish(ENERGY, "energy_flow_request", request)

    # ------------------------------------------------------------------ what the charger decided
    def set_pilot(self, pilot: PilotOutput) -> None:
        if pilot.mode == Pilot.PWM:
            self.board.set_pilot("pwm_on", value=round(pilot.duty_percent, 2))
        else:
            self.board.set_pilot(f"cp_state_{pilot.mode}")

    def allow_power_on(self, allow: bool) -> None:
        self.board.allow_power(allow)

    def session_event(self, event: dict[str, Any]) -> None:
        self._stop_progress.set()
        name = event["event"]
        self.log.info("session %s: %s%s", event["uuid"][:8] or "-", name, _event_detail(event))
        self.publish(EVSE, "session_event", event)
        if name in ENERGY_PRIORITY_EVENTS:
            self._energy_priority = True
            self._publish_energy_request()
        if self.meter is not None and name == "TransactionStarted":
            self.spawn(self._start_meter_transaction(event), name="meter transaction start")
        elif self.meter is not None and name == "TransactionFinished":
            self.spawn(self._meter_transaction("stop_transaction", transaction_id=event["uuid"]),
                       name="meter transaction stop")
        elif name == "SessionFinished" and METER_START_FAILED in {e["type"] for e in self.active_errors(EVSE)}:
            self.clear_error(EVSE, METER_START_FAILED)
            self.charger.clear_fault(METER_START_FAILED)
        if name == "AuthRequired" and self.config["disable_authentication"]:
            self.charger.authorize(FREE_CHARGING_TOKEN, {"authorization_status": "Accepted"})
        if name == "SessionStarted" and self.config["autocharge_token"]:
            if event["session_started"]["reason"] == "EVConnected":
                self.publish(TOKENS, "provided_token", {
                    "id_token": {"value": self.config["autocharge_token"], "type": "MacAddress"},
                    "authorization_type": "Autocharge",
                })

    def limits_changed(self, limits: dict[str, Any]) -> None:
        self.publish(EVSE, "limits", {"uuid": self.id, **limits})
        if limits["max_current"] > 0:
            self.board.set_overcurrent_limit(limits["max_current"])

    # ------------------------------------------------------------------ board
    def _on_board_event(self, value: dict[str, Any]) -> None:
        self._stop_progress.set()
        event = value["event"]
        if event in ("A", "B", "C", "D", "E"):
            if self._resync_seen is not None:
                self._resync_seen.add("pilot")
            self.charger.on_pilot(event)
        elif event in ("PowerOn", "PowerOff"):
            if self._resync_seen is not None:
                self._resync_seen.add("relays")
            self.charger.on_relays(event == "PowerOn")
        else:
            self.log.info("board event %s", event)

    def _on_capabilities(self, capabilities: dict[str, Any]) -> None:
        self.capabilities = capabilities
        self.publish(EVSE, "hw_capabilities", capabilities)
        self.charger.set_limit("hardware", capabilities["max_current_A_import"])
        if capabilities["connector_type"] == "IEC62196Type2Socket" and "cable" not in self.charger.facts.limits_a:
            # A socket may only offer what the plugged cable is rated for: nothing until PP says.
            self.charger.set_limit("cable", 0.0)

    def _on_telemetry(self, telemetry: dict[str, Any]) -> None:
        self.telemetry = telemetry
        self.publish(EVSE, "telemetry", telemetry)

    def _on_cable(self, value: dict[str, Any]) -> None:
        self.charger.set_limit("cable", CABLE_AMPS[value["ampacity"]])

    def _on_board_stop_request(self, request: dict[str, Any]) -> None:
        self.charger.stop_transaction(request["reason"], request.get("id_tag"))

    def _on_board_error(self, error: dict[str, Any]) -> None:
        kind, sub_type = error["type"], error.get("sub_type", "")
        self._forward_error(error)
        if error["state"] == "Active":
            effect = effect_of(kind)
            what = "stops charging" if effect.stops_charging else "warning only"
            self._error_log(f"{kind}/{sub_type} raised", logging.WARNING, "board error %s %s (%s): %s",
                            kind, sub_type, what, error.get("message", ""))
            self.charger.raise_fault(kind, sub_type)
        else:
            self._error_log(f"{kind}/{sub_type} cleared", logging.INFO, "board error %s %s cleared", kind, sub_type)
            self.charger.clear_fault(kind, sub_type)

    def _forward_error(self, error: dict[str, Any]) -> None:
        """Raise/clear a board or meter error again on the evse implementation (as EVerest does)."""
        kind, sub_type = error["type"], error.get("sub_type", "")
        if error["state"] == "Active":
            self.raise_error(EVSE, kind, error.get("message", ""), sub_type=sub_type,
                             severity=error.get("severity", "High"))
        else:
            self.clear_error(EVSE, kind, sub_type)

    def _board_latched(self, message: str) -> None:
        self.raise_error(EVSE, BOARD_FAILING, message)
        self.charger.raise_fault(BOARD_FAILING)

    def _board_healed(self) -> None:
        self.clear_error(EVSE, BOARD_FAILING, "")
        self.charger.clear_fault(BOARD_FAILING, "")

    def _on_board_module_state(self, state: str) -> None:
        """A board module that went down knows nothing when it is back: resync it (board_link.py)."""
        if state == "down" and not self._board_down:
            self._board_down = True
            self.log.warning("board module down: charging pauses until it is back and re-synchronised")
            self.board.board_down()
            self.raise_error(EVSE, BOARD_FAILING, "board module is down", sub_type=BOARD_MODULE_DOWN)
            self.charger.raise_fault(BOARD_FAILING, BOARD_MODULE_DOWN)
        elif state == "ready" and self._board_down:
            self._board_down = False
            self.log.info("board module back: re-sending the desired state")
            self._resync_seen = set()
            self.board.board_ready()

    def _board_enabled(self) -> None:
        """The board answered enable; what it re-published before the answer is its present state.

        A board re-publishes the pilot unless it is A and PowerOn only if the relays are closed
        (interface description), so what it did not say is A and open relays: the car left while
        the driver was away, or is still there and the session goes on.
        """
        seen, self._resync_seen = self._resync_seen, None
        if seen is None:
            return
        if "pilot" not in seen:
            self.charger.on_pilot("A")
        if "relays" not in seen:
            self.charger.on_relays(False)
        self.clear_error(EVSE, BOARD_FAILING, BOARD_MODULE_DOWN)
        self.charger.clear_fault(BOARD_FAILING, BOARD_MODULE_DOWN)

    # ------------------------------------------------------------------ orderly stop
    async def stopping(self) -> None:
        """Orderly stop (SIGTERM/Ctrl-C): end the transaction as Reboot and see the relays open.

        Transactions are stopped, not kept: nothing resumes one across a restart, and one left open
        would be closed as PowerLoss at the next boot, billing time nobody metered.
        """
        if self.charger.transaction is not None:
            self.log.info("orderly stop: ending the transaction (Reboot)")
            self.charger.stop_transaction("Reboot")
        # A little beyond power_off_timeout: StoppingCharging's own timeout ends the transaction first.
        bound_s = self.config["power_off_timeout_ms"] / 1000 + 0.5
        try:
            await asyncio.wait_for(self._until_stopped_safely(), bound_s)
        except TimeoutError:
            self.log.warning("orderly stop: relays not confirmed open within %.1f s", bound_s)

    async def _until_stopped_safely(self) -> None:
        # Re-checked whenever something it depends on moved: a session event (the transaction ended),
        # a board event (PowerOff), a command the board took (the relay-off delivered).
        while not self._stopped_safely():
            self._stop_progress.clear()
            self.board.delivered.clear()
            progress = asyncio.ensure_future(self._stop_progress.wait())
            delivered = asyncio.ensure_future(self.board.delivered.wait())
            try:
                await asyncio.wait({progress, delivered}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                progress.cancel()
                delivered.cancel()

    def _stopped_safely(self) -> bool:
        return self.charger.transaction is None and self.board.idle and not self.charger.facts.relays_closed

    # ------------------------------------------------------------------ meter
    def _on_meter(self, reading: dict[str, Any]) -> None:
        self.last_meter = reading
        self.publish(EVSE, "powermeter", reading)
        self._first_meter.set()
        self._meter_problem("silent", False)
        self._arm_meter_watchdog()
        currents = reading.get("current_A") or {}
        phase_currents = [currents[p] for p in ("L1", "L2", "L3") if p in currents]
        if phase_currents:
            self.charger.on_measured_current(max(phase_currents))
        power = (reading.get("power_W") or {}).get("total")
        self.publish(EVSE, "ev_info", {
            **({"present_current_A": max(phase_currents)} if phase_currents else {}),
            **({"present_power_W": power} if power is not None else {}),
        })

    async def _start_meter_transaction(self, event: dict[str, Any]) -> None:
        """Signing meters open their own transaction; NOT_SUPPORTED (plain meters) is fine."""
        id_tag = event["transaction_started"]["id_tag"]
        request = {
            "evse_id": self.config["evse_id"],
            "transaction_id": event["uuid"],
            "identification_status": "ASSIGNED",
            "identification_flags": [],
            "identification_type": "ISO14443" if id_tag["id_token"]["type"] == "ISO14443" else "UNDEFINED",
            "identification_data": id_tag["id_token"]["value"],
        }
        result = await self._meter_transaction("start_transaction", value=request)
        if result is not None and result.get("status") == "UNEXPECTED_ERROR":
            message = f"power meter did not start the transaction: {result.get('error', '')}"
            self.log.error(message)
            self.raise_error(EVSE, METER_START_FAILED, message)
            self.charger.raise_fault(METER_START_FAILED)

    async def _meter_transaction(self, cmd: str, **args: Any) -> dict[str, Any] | None:
        assert self.meter is not None
        try:
            return await self.meter.call(cmd, timeout=10, **args)
        except CommandError as exc:
            self.log.warning("power meter %s failed: %s", cmd, exc)
            return None

    def _on_meter_error(self, error: dict[str, Any]) -> None:
        self._forward_error(error)
        self._meter_problem(f"{error['type']}/{error.get('sub_type', '')}", error["state"] == "Active")

    def _arm_meter_watchdog(self) -> None:
        if self._meter_watchdog is not None:
            self._meter_watchdog.cancel()
        timeout = self.config["powermeter_timeout_s"]
        if timeout > 0:
            self._meter_watchdog = self.clock.call_later(timeout, lambda: self._meter_problem("silent", True))

    def _meter_problem(self, problem: str, active: bool) -> None:
        was_lost = bool(self._meter_problems)
        if active:
            self._meter_problems.add(problem)
        else:
            self._meter_problems.discard(problem)
        lost = bool(self._meter_problems)
        if lost == was_lost or not self.config["fail_on_powermeter_errors"]:
            if lost != was_lost:
                self.log.warning("power meter %s (ignored: fail_on_powermeter_errors is false)",
                                 "lost" if lost else "back")
            return
        if lost:
            message = "power meter " + ", ".join(sorted(self._meter_problems))
            self.log.error("%s: charging stops until it is back", message)
            self.raise_error(EVSE, METER_LOST, message)
            self.charger.raise_fault(METER_LOST)
        else:
            self.log.info("power meter back")
            self.clear_error(EVSE, METER_LOST)
            self.charger.clear_fault(METER_LOST)

    # ------------------------------------------------------------------ live status
    async def _status_lines(self) -> None:
        while True:
            await self.clock.sleep(self.config["status_interval_s"])
            self.log.info(self.status_line())

    def status_line(self) -> str:
        c = self.charger
        meter = self.last_meter or {}
        power_w = (meter.get("power_W") or {}).get("total")
        energy = (meter.get("energy_Wh_import") or {}).get("total")
        session_wh = ""
        if c.transaction is not None and c.transaction.start_meter and energy is not None:
            session_wh = f" | session {energy - c.transaction.start_meter['energy_Wh_import']['total']:.0f} Wh"
        return (
            f"{c.state} | limit {c.available_current_a:.1f} A, signalled {c.signalled_current_a:.1f} A"
            + (f" | {power_w / 1000:.2f} kW" if power_w is not None else "")
            + (f" | meter {energy / 1000:.3f} kWh" if energy is not None else "")
            + session_wh
            + (f" | errors: {', '.join(sorted(c.facts.faults))}" if c.facts.faults else "")
        )


def _event_detail(event: dict[str, Any]) -> str:
    for key in ("session_started", "transaction_finished", "charging_paused_evse", "reservation_end"):
        block = event.get(key)
        if block:
            parts = [f"{k}={v}" for k, v in block.items() if k in ("reason", "reasons", "energy_Wh", "reservation_id")]
            return f" ({', '.join(parts)})"
    token = (event.get("transaction_started") or {}).get("id_tag") or event.get("authorization")
    if token:
        return f" (token {token['id_token']['value']})"
    return ""


class _Outputs:
    """ChargerOutputs of the module: the charger's own errors are raised on the evse implementation."""

    def __init__(self, module: EvseManager) -> None:
        self.set_pilot = module.set_pilot
        self.allow_power_on = module.allow_power_on
        self.session_event = module.session_event
        self.limits_changed = module.limits_changed
        self._module = module

    def raise_error(self, error_type: str, message: str) -> None:
        self._module.raise_error(EVSE, error_type, message)

    def clear_error(self, error_type: str) -> None:
        self._module.clear_error(EVSE, error_type)
