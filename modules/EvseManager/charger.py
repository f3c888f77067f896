"""The IEC 61851-1 AC charging session as a clock-driven state machine, free of any bus plumbing.

Inputs are method calls (pilot state from the board, authorization, commands, limits, errors).
Outputs go to a :class:`ChargerOutputs` sink: pilot (X1 / F / PWM duty), relay permission, session
events, limits and the manager's own errors. The behaviour is the table ``TRANSITIONS`` below:
``(state, trigger, guard) -> action, next state``. Facts (car pilot state, limits, pauses, faults)
are kept as fields; whenever one changes the machine re-evaluates the ``UPDATE`` rows, so a level
(for example "the car wants power and power is available") moves it as soon as it holds.

Pilot and relays are derived from state and facts after every input (``_apply_outputs``):
relays are allowed only in Charging, PWM runs in PrepareCharging/Charging/ChargingPausedEV when
power is available and nothing blocks, F is shown while disabled and briefly after a new fault.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from everpy.core.clock import Clock, TimerHandle

from .error_effects import effect_of
from .pwm import MIN_CHARGING_CURRENT_A, current_for_duty_cycle, duty_cycle_for_current

log = logging.getLogger(__name__)


class State(StrEnum):
    DISABLED = "Disabled"
    IDLE = "Idle"
    WAITING_FOR_AUTHENTICATION = "WaitingForAuthentication"
    PREPARE_CHARGING = "PrepareCharging"
    CHARGING = "Charging"
    CHARGING_PAUSED_EV = "ChargingPausedEV"
    CHARGING_PAUSED_EVSE = "ChargingPausedEVSE"
    STOPPING_CHARGING = "StoppingCharging"
    FINISHED = "Finished"


class Trigger(StrEnum):
    ENABLE = "Enable"
    DISABLE = "Disable"
    PLUG = "CarPluggedIn"  # pilot left A
    UNPLUG = "CarUnplugged"  # pilot back to A
    AUTHORIZE = "Authorize"  # an accepted token arrived
    WITHDRAW = "Withdraw"  # authorization withdrawn before a transaction started
    STOP = "Stop"  # end the transaction (command, token, error)
    STOP_TIMEOUT = "StopTimeout"  # relays did not confirm off in time
    WAKE_UP_GAVE_UP = "WakeUpGaveUp"  # the car did not ask for power even after the wake-up pulse
    UPDATE = "Update"  # a fact changed: re-evaluate


@dataclass(frozen=True)
class Transition:
    source: State
    trigger: Trigger
    guard: str | None  # name of a Charger predicate; None = always
    action: str | None  # name of a Charger method run before entering target
    target: State


S, T = State, Trigger
_IN_TRANSACTION = (
    S.PREPARE_CHARGING,
    S.CHARGING,
    S.CHARGING_PAUSED_EV,
    S.CHARGING_PAUSED_EVSE,
    S.STOPPING_CHARGING,
)

# First matching row wins. Triggers without a matching row are ignored in that state.
TRANSITIONS: tuple[Transition, ...] = (
    # --- enable / disable
    Transition(S.DISABLED, T.ENABLE, "session_without_transaction", "announce_enabled",
               S.WAITING_FOR_AUTHENTICATION),
    Transition(S.DISABLED, T.ENABLE, "car_plugged", "announce_enabled_and_start_session",
               S.WAITING_FOR_AUTHENTICATION),
    Transition(S.DISABLED, T.ENABLE, None, "announce_enabled", S.IDLE),
    Transition(S.DISABLED, T.UNPLUG, "in_session", "end_session", S.DISABLED),
    *(Transition(s, T.DISABLE, None, "finish_transaction_and_disable", S.DISABLED) for s in _IN_TRANSACTION),
    *(Transition(s, T.DISABLE, None, "announce_disabled", S.DISABLED)
      for s in (S.IDLE, S.WAITING_FOR_AUTHENTICATION, S.FINISHED)),
    # --- before a transaction
    Transition(S.IDLE, T.PLUG, "authorized", "start_transaction", S.PREPARE_CHARGING),
    Transition(S.IDLE, T.PLUG, None, "start_session_by_plug", S.WAITING_FOR_AUTHENTICATION),
    Transition(S.IDLE, T.AUTHORIZE, "not_authorized", "start_session_by_authorization", S.IDLE),
    Transition(S.IDLE, T.WITHDRAW, "authorized", "plugin_timeout", S.IDLE),
    Transition(S.WAITING_FOR_AUTHENTICATION, T.AUTHORIZE, None, "authorize_and_start_transaction",
               S.PREPARE_CHARGING),
    Transition(S.WAITING_FOR_AUTHENTICATION, T.UNPLUG, None, "end_session", S.IDLE),
    # --- transaction running: where the facts say we should be
    Transition(S.PREPARE_CHARGING, T.UPDATE, "evse_blocks", None, S.CHARGING_PAUSED_EVSE),
    Transition(S.PREPARE_CHARGING, T.UPDATE, "can_deliver_power", None, S.CHARGING),
    Transition(S.PREPARE_CHARGING, T.WAKE_UP_GAVE_UP, None, None, S.CHARGING_PAUSED_EV),
    Transition(S.CHARGING, T.UPDATE, "evse_cannot_deliver", None, S.CHARGING_PAUSED_EVSE),
    Transition(S.CHARGING, T.UPDATE, "car_stopped_requesting", None, S.CHARGING_PAUSED_EV),
    Transition(S.CHARGING_PAUSED_EV, T.UPDATE, "evse_cannot_deliver", None, S.CHARGING_PAUSED_EVSE),
    Transition(S.CHARGING_PAUSED_EV, T.UPDATE, "can_deliver_power", None, S.CHARGING),
    Transition(S.CHARGING_PAUSED_EVSE, T.UPDATE, "can_deliver_power", None, S.CHARGING),
    Transition(S.CHARGING_PAUSED_EVSE, T.UPDATE, "evse_can_resume_before_first_charge", None,
               S.PREPARE_CHARGING),
    Transition(S.CHARGING_PAUSED_EVSE, T.UPDATE, "evse_can_resume", None, S.CHARGING_PAUSED_EV),
    # --- ending a transaction
    Transition(S.CHARGING, T.STOP, None, None, S.STOPPING_CHARGING),
    Transition(S.STOPPING_CHARGING, T.UPDATE, "relays_open", "finish_transaction", S.FINISHED),
    Transition(S.STOPPING_CHARGING, T.STOP_TIMEOUT, None, "finish_transaction", S.FINISHED),
    *(Transition(s, T.STOP, None, "finish_transaction", S.FINISHED)
      for s in (S.PREPARE_CHARGING, S.CHARGING_PAUSED_EV, S.CHARGING_PAUSED_EVSE)),
    *(Transition(s, T.UNPLUG, None, "finish_transaction_and_end_session", S.IDLE) for s in _IN_TRANSACTION),
    # Finished ignores new tokens: a new transaction needs a new plug-in (as in EVerest; Auth agrees).
    Transition(S.FINISHED, T.UNPLUG, None, "end_session", S.IDLE),
)

PWM_STATES = (S.PREPARE_CHARGING, S.CHARGING, S.CHARGING_PAUSED_EV)
INOPERATIVE = "evse_manager/Inoperative"
# Stop reasons that mean "the authorization ended" and so are reported with a Deauthorized event.
DEAUTHORIZING_REASONS = ("Local", "Remote", "DeAuthorized", "MasterPass", "UnlockCommand")


class Pilot(StrEnum):
    X1 = "X1"  # +12 V, no PWM
    F = "F"  # -12 V, EVSE not available
    PWM = "PWM"


@dataclass(frozen=True)
class PilotOutput:
    mode: Pilot
    duty_percent: float = 100.0


class ChargerOutputs(Protocol):
    """Where the machine's decisions go. Calls are synchronous and must not block."""

    def set_pilot(self, pilot: PilotOutput) -> None: ...
    def allow_power_on(self, allow: bool) -> None: ...
    def session_event(self, event: dict[str, Any]) -> None: ...
    def limits_changed(self, limits: dict[str, Any]) -> None: ...
    def raise_error(self, error_type: str, message: str) -> None: ...
    def clear_error(self, error_type: str) -> None: ...


@dataclass
class ChargerSettings:
    connector_id: int = 1
    state_f_after_fault_s: float = 0.3
    pwm_min_change_interval_s: float = 5.0
    power_off_timeout_s: float = 3.0
    has_ventilation: bool = True
    soft_over_current_tolerance_percent: float = 10.0
    soft_over_current_measurement_noise_a: float = 0.5
    soft_over_current_timeout_s: float = 7.0
    # Legacy wake-up (IEC 61851-1 A.6): some cars fall asleep before the PWM comes; F wakes them.
    wake_up_after_s: float = 30.0
    wake_up_pulse_s: float = 0.3
    wake_up_give_up_after_s: float = 10.0


@dataclass
class Transaction:
    id_tag: dict[str, Any]
    start_meter: dict[str, Any] | None
    reservation_id: int | None
    has_charged: bool = False


@dataclass
class _StopRequest:
    reason: str
    id_tag: dict[str, Any] | None = None


@dataclass
class _Facts:
    car_pilot: str = "A"
    relays_closed: bool = False
    limits_a: dict[str, float] = field(default_factory=dict)  # limit source -> per-phase current
    phases: int = 3
    user_paused: bool = False
    faults: dict[str, str] = field(default_factory=dict)  # error key -> error type
    enable_sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # source -> (state, prio)


class Charger:
    def __init__(
        self,
        clock: Clock,
        outputs: ChargerOutputs,
        settings: ChargerSettings | None = None,
        meter_reading: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self.clock = clock
        self.out = outputs
        self.settings = settings or ChargerSettings()
        self.meter_reading = meter_reading
        self.state = State.DISABLED
        self.started = False
        self.facts = _Facts()
        self.session_id: str | None = None
        self.authorization: dict[str, Any] | None = None  # token accepted, transaction not yet started
        self.transaction: Transaction | None = None
        self.reservation_id: int | None = None
        self._token_in_flight: dict[str, Any] | None = None
        self._stop_request: _StopRequest | None = None
        self._pilot: PilotOutput | None = None
        self._pilot_changed_at = -1e9
        self._relays_allowed: bool | None = None
        self._inoperative = False
        self._last_limits: dict[str, Any] | None = None
        self._fault_f_until = -1e9
        self._output_timer: TimerHandle | None = None
        self._stop_timer: TimerHandle | None = None
        self._overcurrent_timer: TimerHandle | None = None
        self._wake_up_timer: TimerHandle | None = None
        self._wake_up_f_until = -1e9
        self._wake_up_done = False
        self._dispatching = False
        self._held_events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ inputs
    def start(self) -> None:
        """Startup finished (first meter value or timeout): take sessions from now on."""
        self.started = True
        if self.enabled:
            self._dispatch(T.ENABLE)
        else:
            self._emit("Disabled")
            self._apply_outputs()

    def on_pilot(self, pilot_state: str) -> None:
        """Pilot state measured by the board: A, B, C, D or E."""
        before, self.facts.car_pilot = self.facts.car_pilot, pilot_state
        event = car_event(before, pilot_state)
        if event is None:
            return
        log.debug("pilot %s -> %s: %s", before, pilot_state, event)
        if event == "CarPluggedIn":
            self._dispatch(T.PLUG)
        elif event == "CarUnplugged":
            self._dispatch(T.UNPLUG)
        else:  # power requested / no longer requested / pilot shorted: facts the Update rows read
            self._dispatch(T.UPDATE)

    def on_relays(self, closed: bool) -> None:
        """Relay feedback from the board (PowerOn / PowerOff)."""
        self.facts.relays_closed = closed
        self._dispatch(T.UPDATE)

    def authorize(self, token: dict[str, Any], validation: dict[str, Any]) -> bool:
        """Authorization result from Auth; only Accepted tokens are used. True if the token was taken."""
        if validation.get("authorization_status") != "Accepted":
            return False
        reserved_for = validation.get("reservation_id")
        if self.reservation_id is not None and reserved_for is not None and reserved_for != self.reservation_id:
            log.warning("token for reservation %s refused: EVSE reserved for %s", reserved_for, self.reservation_id)
            return False
        self._token_in_flight = token
        before = self.state, self.authorization, self.transaction
        self._dispatch(T.AUTHORIZE)
        self._token_in_flight = None
        return (self.state, self.authorization, self.transaction) != before

    def withdraw_authorization(self) -> None:
        self._dispatch(T.WITHDRAW)

    def stop_transaction(self, reason: str, id_tag: dict[str, Any] | None = None) -> bool:
        if self.transaction is None or self.state == S.STOPPING_CHARGING:
            return False
        self._stop_request = _StopRequest(reason, id_tag)
        self._dispatch(T.STOP)
        return True

    def pause(self) -> bool:
        if self.transaction is None:
            return False
        self.facts.user_paused = True
        self._dispatch(T.UPDATE)
        return True

    def resume(self) -> bool:
        if self.transaction is None or not self.facts.user_paused:
            return False
        self.facts.user_paused = False
        self._dispatch(T.UPDATE)
        return True

    def set_limit(self, source: str, current_a: float | None) -> None:
        """Per-phase current limit from one source (board, cable, energy management); None removes it."""
        if current_a is None:
            self.facts.limits_a.pop(source, None)
        else:
            self.facts.limits_a[source] = max(0.0, float(current_a))
        self._dispatch(T.UPDATE)

    def set_phases(self, phases: int) -> None:
        self.facts.phases = phases
        self._apply_outputs()

    def set_enable_source(self, source: str, state: str, priority: int) -> bool:
        """Enable/disable request of one source; returns whether the EVSE is enabled afterwards."""
        was_enabled = self.enabled
        if state == "Unassigned":
            self.facts.enable_sources.pop(source, None)
        else:
            self.facts.enable_sources[source] = (state, priority)
        if self.started and self.enabled != was_enabled:
            if not self.enabled:
                self._stop_request = _StopRequest("Other")
            self._dispatch(T.ENABLE if self.enabled else T.DISABLE)
        return self.enabled

    def raise_fault(self, error_type: str, sub_type: str = "") -> None:
        effect = effect_of(error_type)
        if not effect.stops_charging:
            return
        key = f"{error_type}/{sub_type}"
        if key in self.facts.faults:
            return
        self.facts.faults[key] = error_type
        # A.5: show F for a moment so the car notices the fault, then X1 while the fault lasts.
        self._fault_f_until = self.clock.monotonic() + self.settings.state_f_after_fault_s
        if effect.ends_transaction_with and self.transaction is not None:
            self.stop_transaction(effect.ends_transaction_with)
        self._dispatch(T.UPDATE)

    def clear_fault(self, error_type: str, sub_type: str | None = None) -> None:
        for key, kind in list(self.facts.faults.items()):
            if kind == error_type and (sub_type is None or key == f"{error_type}/{sub_type}"):
                del self.facts.faults[key]
        self._dispatch(T.UPDATE)

    def reserve(self, reservation_id: int) -> bool:
        if not self.enabled or self.reservation_id is not None or self.state != S.IDLE or self.session_id:
            return False
        self.reservation_id = reservation_id
        self._emit("ReservationStart", reservation_start={"reservation_id": reservation_id})
        return True

    def cancel_reservation(self, reason: str = "Cancelled") -> bool:
        if self.reservation_id is None:
            return False
        ended, self.reservation_id = self.reservation_id, None
        self._emit("ReservationEnd", reservation_end={"reservation_id": ended, "reason": reason})
        return True

    def on_measured_current(self, max_phase_current_a: float) -> None:
        """Soft over current check: the car drew clearly more than signalled for too long -> MREC4."""
        signalled = self.signalled_current_a
        s = self.settings
        tolerance = 1 + s.soft_over_current_tolerance_percent / 100
        limit = (signalled + s.soft_over_current_measurement_noise_a) * tolerance
        if self.state == S.CHARGING and max_phase_current_a > limit:
            if self._overcurrent_timer is None:
                self._overcurrent_timer = self.clock.call_later(s.soft_over_current_timeout_s, self._over_current)
        elif self._overcurrent_timer is not None:
            self._overcurrent_timer.cancel()
            self._overcurrent_timer = None

    # ------------------------------------------------------------------ derived facts
    @property
    def enabled(self) -> bool:
        if not self.facts.enable_sources:
            return True
        best = min(prio for _, prio in self.facts.enable_sources.values())
        states = {st for st, prio in self.facts.enable_sources.values() if prio == best}
        return "Disable" not in states

    @property
    def available_current_a(self) -> float:
        return min(self.facts.limits_a.values(), default=0.0)

    @property
    def power_available(self) -> bool:
        return self.available_current_a >= MIN_CHARGING_CURRENT_A

    @property
    def signalled_current_a(self) -> float:
        """Current the car was told it may draw (follows the rate-limited PWM, not the limit)."""
        if self._pilot is None or self._pilot.mode != Pilot.PWM:
            return 0.0
        return current_for_duty_cycle(self._pilot.duty_percent)

    @property
    def pause_reasons(self) -> list[str]:
        reasons = []
        if self.facts.user_paused:
            reasons.append("UserPause")
        if self.facts.faults:
            reasons.append("Error")
        if not self.power_available:
            reasons.append("NoEnergy")
        return reasons

    # guards (named in TRANSITIONS)
    def car_plugged(self) -> bool:
        return self.facts.car_pilot != "A"

    def in_session(self) -> bool:
        return self.session_id is not None

    def session_without_transaction(self) -> bool:
        return self.car_plugged() and self.in_session()

    def authorized(self) -> bool:
        return self.authorization is not None

    def not_authorized(self) -> bool:
        return self.authorization is None

    def car_requests_power(self) -> bool:
        pilot = self.facts.car_pilot
        return pilot == "C" or (pilot == "D" and self.settings.has_ventilation)

    def evse_blocks(self) -> bool:
        return self.facts.user_paused or bool(self.facts.faults)

    def evse_cannot_deliver(self) -> bool:
        return self.evse_blocks() or not self.power_available

    def can_deliver_power(self) -> bool:
        return not self.evse_cannot_deliver() and self.car_requests_power()

    def car_stopped_requesting(self) -> bool:
        return not self.car_requests_power()

    def evse_can_resume(self) -> bool:
        return not self.evse_cannot_deliver()

    def evse_can_resume_before_first_charge(self) -> bool:
        return not self.evse_blocks() and self.transaction is not None and not self.transaction.has_charged

    def relays_open(self) -> bool:
        return not self.facts.relays_closed

    # ------------------------------------------------------------------ actions (named in TRANSITIONS)
    def announce_enabled(self) -> None:
        self._emit("Enabled")

    def announce_disabled(self) -> None:
        self._emit("Disabled")

    def announce_enabled_and_start_session(self) -> None:
        self._emit("Enabled")
        self.start_session_by_plug()

    def start_session_by_plug(self) -> None:
        self.session_id = str(uuid.uuid4())
        self._emit("SessionStarted", session_started=self._with_meter({"reason": "EVConnected"}))

    def start_session_by_authorization(self) -> None:
        self.session_id = str(uuid.uuid4())
        self.authorization = self._token_in_flight
        self._emit(
            "SessionStarted",
            session_started=self._with_meter({"reason": "Authorized", "id_tag": self.authorization}),
        )
        self._emit("Authorized", authorization=self.authorization)

    def authorize_and_start_transaction(self) -> None:
        self.authorization = self._token_in_flight
        self._emit("Authorized", authorization=self.authorization)
        self.start_transaction()

    def start_transaction(self) -> None:
        assert self.authorization is not None
        self.transaction = Transaction(self.authorization, self.meter_reading(), self.reservation_id)
        self.authorization = None
        details = self._with_meter({"id_tag": self.transaction.id_tag}, self.transaction.start_meter)
        if self.transaction.reservation_id is not None:
            details["reservation_id"] = self.transaction.reservation_id
        self._emit("TransactionStarted", transaction_started=details)
        if self.reservation_id is not None:
            self.cancel_reservation("UsedToStartCharging")

    def plugin_timeout(self) -> None:
        self.authorization = None
        self._emit("PluginTimeout")
        self.end_session()

    def finish_transaction(self) -> None:
        request = self._stop_request or _StopRequest("Other")
        self._stop_request = None
        transaction, self.transaction = self.transaction, None
        assert transaction is not None
        self.facts.user_paused = False
        if request.reason in DEAUTHORIZING_REASONS:
            self._emit("Deauthorized", **({"authorization": request.id_tag} if request.id_tag else {}))
        self._emit("ChargingFinished")
        end_meter = self.meter_reading()
        details: dict[str, Any] = self._with_meter({"reason": request.reason}, end_meter)
        start_wh = _imported_wh(transaction.start_meter)
        end_wh = _imported_wh(end_meter)
        if start_wh is not None and end_wh is not None:
            details["energy_Wh"] = round(end_wh - start_wh, 3)
        if request.id_tag:
            details["id_tag"] = request.id_tag
        self._emit("TransactionFinished", transaction_finished=details)

    def finish_transaction_and_end_session(self) -> None:
        if self._stop_request is None:
            self._stop_request = _StopRequest("EVDisconnected")
        self.finish_transaction()
        self.end_session()

    def finish_transaction_and_disable(self) -> None:
        self.finish_transaction()
        self.announce_disabled()

    def end_session(self) -> None:
        self._emit("SessionFinished")
        self.session_id = None
        self.authorization = None
        if self._overcurrent_timer is not None:
            self._overcurrent_timer.cancel()
            self._overcurrent_timer = None
        # The manager's own over current error ends with the session (the car is gone).
        if "evse_manager/MREC4OverCurrentFailure/" in self.facts.faults:
            del self.facts.faults["evse_manager/MREC4OverCurrentFailure/"]
            self.out.clear_error("evse_manager/MREC4OverCurrentFailure")

    # ------------------------------------------------------------------ state entry
    def _enter(self, state: State, previous: State) -> None:
        if state == S.WAITING_FOR_AUTHENTICATION:
            self._emit("AuthRequired")
        elif state == S.PREPARE_CHARGING:
            self._emit("PrepareCharging")
            self._wake_up_done = False
        elif state == S.CHARGING:
            assert self.transaction is not None
            first = not self.transaction.has_charged
            self.transaction.has_charged = True
            self._emit("ChargingStarted" if first else "ChargingResumed")
        elif state == S.CHARGING_PAUSED_EV:
            self._emit("ChargingPausedEV")
        elif state == S.CHARGING_PAUSED_EVSE:
            self._emit("ChargingPausedEVSE", charging_paused_evse={"reasons": self.pause_reasons})
        elif state == S.STOPPING_CHARGING:
            self._emit("StoppingCharging")
            self._stop_timer = self.clock.call_later(
                self.settings.power_off_timeout_s, lambda: self._dispatch(T.STOP_TIMEOUT)
            )
        if previous == S.STOPPING_CHARGING and self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None
        if previous == S.PREPARE_CHARGING and self._wake_up_timer is not None:
            self._wake_up_timer.cancel()
            self._wake_up_timer = None

    def _follow_pwm_for_wake_up(self, before: PilotOutput | None, after: PilotOutput) -> None:
        """The wake-up clock runs while PrepareCharging shows PWM: the car must have had PWM to react to."""
        if self.state != S.PREPARE_CHARGING or self._wake_up_done:
            return
        was_pwm = before is not None and before.mode == Pilot.PWM
        if after.mode == Pilot.PWM and not was_pwm:
            if self._wake_up_timer is not None:
                self._wake_up_timer.cancel()
            self._wake_up_timer = self.clock.call_later(self.settings.wake_up_after_s, self._wake_up)
        elif after.mode != Pilot.PWM and self._wake_up_timer is not None:
            self._wake_up_timer.cancel()
            self._wake_up_timer = None

    def _wake_up(self) -> None:
        """Still in PrepareCharging after 30 s of PWM: pulse F once, then give the car a last chance."""
        self._wake_up_done = True
        log.info("car did not ask for power within %.0f s of PWM: wake-up pulse", self.settings.wake_up_after_s)
        self._wake_up_f_until = self.clock.monotonic() + self.settings.wake_up_pulse_s
        self._apply_outputs()
        self._wake_up_timer = self.clock.call_later(
            self.settings.wake_up_give_up_after_s, lambda: self._dispatch(T.WAKE_UP_GAVE_UP)
        )

    # ------------------------------------------------------------------ engine
    def _dispatch(self, trigger: Trigger) -> None:
        if not self.started:
            return
        if self._dispatching:
            # A transition's action fed an input back (e.g. a fault ending the transaction); the
            # outer dispatch re-evaluates UPDATE rows afterwards, other triggers run now.
            if trigger == T.UPDATE:
                return
        outer = not self._dispatching
        self._dispatching = True
        try:
            moved = self._fire(trigger)
            if trigger != T.UPDATE or moved:
                # Settle: re-evaluate level conditions until the state stops moving.
                for _ in range(len(State)):
                    if not self._fire(T.UPDATE):
                        break
        finally:
            if outer:
                self._dispatching = False
        if outer:
            # Outputs first so relays open before anyone hears about the transition.
            self._apply_outputs()
            held, self._held_events = self._held_events, []
            for event in held:
                self.out.session_event(event)

    def _fire(self, trigger: Trigger) -> bool:
        for row in TRANSITIONS:
            if row.source != self.state or row.trigger != trigger:
                continue
            if row.guard is not None and not getattr(self, row.guard)():
                continue
            previous = self.state
            log.debug("%s --%s--> %s (%s)", previous, trigger, row.target, row.action)
            if row.action is not None:
                getattr(self, row.action)()
            self.state = row.target
            if row.target != previous:
                self._enter(row.target, previous)
            return True
        return False

    def _apply_outputs(self) -> None:
        """Drive pilot and relays from the current state; relays off first, on last."""
        allow = self.state == S.CHARGING
        if not allow and self._relays_allowed is not False:
            self._relays_allowed = False
            self.out.allow_power_on(False)
        self._apply_pilot()
        if allow and not self._relays_allowed:
            self._relays_allowed = True
            self.out.allow_power_on(True)
        inoperative = bool(self.facts.faults)
        if inoperative != self._inoperative:
            self._inoperative = inoperative
            if inoperative:
                self.out.raise_error(INOPERATIVE, "cannot charge: " + ", ".join(sorted(self.facts.faults.values())))
            else:
                self.out.clear_error(INOPERATIVE)
        limits = {
            "max_current": round(self.available_current_a, 2),
            "nr_of_phases_available": self.facts.phases,
            "pwm_duty_cycle": round(self._pilot.duty_percent, 2) if self._pilot else 100.0,
        }
        if limits != self._last_limits:
            self._last_limits = limits
            self.out.limits_changed(limits)

    def _apply_pilot(self) -> None:
        now = self.clock.monotonic()
        wanted = self._wanted_pilot(now)
        current = self._pilot
        if wanted == current:
            return
        if (
            current is not None
            and current.mode == Pilot.PWM
            and wanted.mode == Pilot.PWM
            and now - self._pilot_changed_at < self.settings.pwm_min_change_interval_s
        ):
            # IEC 61851-1 gives the car 5 s to follow a duty change: do not change it faster.
            self._retry_outputs_at(self._pilot_changed_at + self.settings.pwm_min_change_interval_s)
            return
        self._pilot = wanted
        self._pilot_changed_at = now
        self.out.set_pilot(wanted)
        self._follow_pwm_for_wake_up(current, wanted)

    def _wanted_pilot(self, now: float) -> PilotOutput:
        if not self.started or self.state == S.DISABLED:
            return PilotOutput(Pilot.F)
        f_until = max(self._fault_f_until, self._wake_up_f_until)
        if now < f_until:
            self._retry_outputs_at(f_until)
            return PilotOutput(Pilot.F)
        if self.state in PWM_STATES and self.power_available and not self.evse_blocks():
            return PilotOutput(Pilot.PWM, duty_cycle_for_current(self.available_current_a))
        return PilotOutput(Pilot.X1)

    def _retry_outputs_at(self, when: float) -> None:
        if self._output_timer is not None:
            self._output_timer.cancel()

        def retry() -> None:
            self._output_timer = None
            self._apply_outputs()

        self._output_timer = self.clock.call_later(max(0.0, when - self.clock.monotonic()), retry)

    def _over_current(self) -> None:
        self._overcurrent_timer = None
        message = f"car drew more than the signalled {self.signalled_current_a:.1f} A for too long"
        self.out.raise_error("evse_manager/MREC4OverCurrentFailure", message)
        self.raise_fault("evse_manager/MREC4OverCurrentFailure")

    # ------------------------------------------------------------------ helpers
    def _emit(self, event: str, **details: Any) -> None:
        message: dict[str, Any] = {
            "uuid": self.session_id or "",
            "event": event,
            "timestamp": self.clock.utcnow().isoformat().replace("+00:00", "Z"),
            "connector_id": self.settings.connector_id,
        }
        message.update({k: v for k, v in details.items() if v is not None})
        if self._dispatching:
            self._held_events.append(message)
        else:
            self.out.session_event(message)

    def _with_meter(self, details: dict[str, Any], meter: dict[str, Any] | None = None) -> dict[str, Any]:
        meter = meter if meter is not None else self.meter_reading()
        if meter is not None:
            details["meter_value"] = meter
        return details


def car_event(before: str, after: str) -> str | None:
    """A pilot change as a car event (names as in EVerest's IEC state machine); None = no change."""
    if before == after:
        return None
    if after == "A":
        return "CarUnplugged"
    if before == "A":
        return "CarPluggedIn"  # also A -> C (simplified mode): the Update rows see C right after
    if after in ("C", "D"):
        return "CarRequestedPower"
    if after == "B":
        return "CarRequestedStopPower"
    return "PilotShorted"  # E: the board reports MREC14PilotFault as well


def _imported_wh(meter: dict[str, Any] | None) -> float | None:
    if meter is None:
        return None
    return float(meter["energy_Wh_import"]["total"])
