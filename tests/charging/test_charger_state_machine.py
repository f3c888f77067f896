"""The EvseManager charger state machine on its own: a fake clock, a recording output sink, no bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from everpy_modules.EvseManager.charger import (
    TRANSITIONS,
    Charger,
    ChargerSettings,
    Pilot,
    PilotOutput,
    State,
    car_event,
)
from everpy_modules.EvseManager.pwm import current_for_duty_cycle, duty_cycle_for_current

from everpy.core.clock import FakeClock

TOKEN = {"id_token": {"value": "CAFE01", "type": "ISO14443"}, "authorization_type": "RFID"}
ACCEPTED = {"authorization_status": "Accepted"}


class Recorder:
    def __init__(self) -> None:
        self.pilot: list[PilotOutput] = []
        self.relays: list[bool] = []
        self.events: list[dict[str, Any]] = []
        self.limits: list[dict[str, Any]] = []
        self.raised: list[str] = []
        self.cleared: list[str] = []
        self.log: list[str] = []  # every output in order, to check relay/pilot ordering

    def set_pilot(self, pilot: PilotOutput) -> None:
        self.pilot.append(pilot)
        self.log.append(f"pilot {pilot.mode}")

    def allow_power_on(self, allow: bool) -> None:
        self.relays.append(allow)
        self.log.append(f"relays {allow}")

    def session_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.log.append(event["event"])

    def limits_changed(self, limits: dict[str, Any]) -> None:
        self.limits.append(limits)

    def raise_error(self, error_type: str, message: str) -> None:
        self.raised.append(error_type)

    def clear_error(self, error_type: str) -> None:
        self.cleared.append(error_type)

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]

    def take(self) -> list[str]:
        names = self.names()
        self.events.clear()
        return names


class Meter:
    def __init__(self) -> None:
        self.wh = 1000.0

    def reading(self) -> dict[str, Any]:
        return {"timestamp": "2026-01-01T00:00:00Z", "energy_Wh_import": {"total": self.wh}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def out() -> Recorder:
    return Recorder()


@pytest.fixture
def meter() -> Meter:
    return Meter()


@pytest.fixture
def charger(clock: FakeClock, out: Recorder, meter: Meter) -> Charger:
    c = Charger(clock, out, ChargerSettings(), meter.reading)
    c.set_limit("hardware", 32)
    c.start()
    return c


# ------------------------------------------------------------------ helpers to reach a state
def idle(c: Charger) -> None:
    pass


def waiting(c: Charger) -> None:
    c.on_pilot("B")


def authorized_no_car(c: Charger) -> None:
    c.authorize(TOKEN, ACCEPTED)


def prepare(c: Charger) -> None:
    c.on_pilot("B")
    c.authorize(TOKEN, ACCEPTED)


def charging(c: Charger) -> None:
    prepare(c)
    c.on_pilot("C")
    c.on_relays(True)


def paused_ev(c: Charger) -> None:
    charging(c)
    c.on_pilot("B")
    c.on_relays(False)


def paused_evse(c: Charger) -> None:
    charging(c)
    c.pause()
    c.on_relays(False)


def stopping(c: Charger) -> None:
    charging(c)
    c.stop_transaction("Local", TOKEN)


def finished(c: Charger) -> None:
    paused_ev(c)
    c.stop_transaction("Remote")


def disabled(c: Charger) -> None:
    c.set_enable_source("LocalAPI", "Disable", 10)


SETUPS: dict[State, Callable[[Charger], None]] = {
    State.IDLE: idle,
    State.WAITING_FOR_AUTHENTICATION: waiting,
    State.PREPARE_CHARGING: prepare,
    State.CHARGING: charging,
    State.CHARGING_PAUSED_EV: paused_ev,
    State.CHARGING_PAUSED_EVSE: paused_evse,
    State.STOPPING_CHARGING: stopping,
    State.FINISHED: finished,
    State.DISABLED: disabled,
}


def test_setups_reach_their_state(clock: FakeClock, out: Recorder, meter: Meter) -> None:
    for state, setup in SETUPS.items():
        c = Charger(clock, Recorder(), ChargerSettings(), meter.reading)
        c.set_limit("hardware", 32)
        c.start()
        setup(c)
        assert c.state == state, setup.__name__


def test_table_names_only_existing_guards_and_actions() -> None:
    for row in TRANSITIONS:
        for name in (row.guard, row.action):
            assert name is None or callable(getattr(Charger, name, None)), row


def test_every_state_is_reachable_in_the_table() -> None:
    targets = {row.target for row in TRANSITIONS}
    assert set(State) <= targets


# ------------------------------------------------------------------ the transition table test
# (setup, input, expected state, events emitted by the input)
CASES: list[tuple[Callable[[Charger], None], Callable[[Charger], Any], State, list[str]]] = [
    (idle, lambda c: c.on_pilot("B"), State.WAITING_FOR_AUTHENTICATION, ["SessionStarted", "AuthRequired"]),
    (idle, lambda c: c.on_pilot("C"), State.WAITING_FOR_AUTHENTICATION, ["SessionStarted", "AuthRequired"]),
    (idle, lambda c: c.authorize(TOKEN, ACCEPTED), State.IDLE, ["SessionStarted", "Authorized"]),
    (idle, lambda c: c.authorize(TOKEN, {"authorization_status": "Invalid"}), State.IDLE, []),
    (idle, lambda c: c.set_enable_source("CSMS", "Disable", 5), State.DISABLED, ["Disabled"]),
    (idle, lambda c: c.reserve(7), State.IDLE, ["ReservationStart"]),
    (authorized_no_car, lambda c: c.on_pilot("B"), State.PREPARE_CHARGING,
     ["TransactionStarted", "PrepareCharging"]),
    (authorized_no_car, lambda c: c.withdraw_authorization(), State.IDLE, ["PluginTimeout", "SessionFinished"]),
    (waiting, lambda c: c.authorize(TOKEN, ACCEPTED), State.PREPARE_CHARGING,
     ["Authorized", "TransactionStarted", "PrepareCharging"]),
    (waiting, lambda c: c.on_pilot("A"), State.IDLE, ["SessionFinished"]),
    (waiting, lambda c: c.withdraw_authorization(), State.WAITING_FOR_AUTHENTICATION, []),
    (prepare, lambda c: c.on_pilot("C"), State.CHARGING, ["ChargingStarted"]),
    (prepare, lambda c: c.on_pilot("D"), State.CHARGING, ["ChargingStarted"]),
    (prepare, lambda c: c.pause(), State.CHARGING_PAUSED_EVSE, ["ChargingPausedEVSE"]),
    (prepare, lambda c: c.stop_transaction("Remote"), State.FINISHED,
     ["Deauthorized", "ChargingFinished", "TransactionFinished"]),
    (prepare, lambda c: c.on_pilot("A"), State.IDLE, ["ChargingFinished", "TransactionFinished", "SessionFinished"]),
    (charging, lambda c: c.on_pilot("B"), State.CHARGING_PAUSED_EV, ["ChargingPausedEV"]),
    (charging, lambda c: c.pause(), State.CHARGING_PAUSED_EVSE, ["ChargingPausedEVSE"]),
    (charging, lambda c: c.set_limit("energy", 3), State.CHARGING_PAUSED_EVSE, ["ChargingPausedEVSE"]),
    (charging, lambda c: c.raise_fault("evse_board_support/DiodeFault"), State.CHARGING_PAUSED_EVSE,
     ["ChargingPausedEVSE"]),
    (charging, lambda c: c.raise_fault("evse_board_support/VendorWarning"), State.CHARGING, []),
    (charging, lambda c: c.raise_fault("evse_board_support/RCDTriggered", "DC"), State.STOPPING_CHARGING,
     ["StoppingCharging"]),
    (charging, lambda c: c.stop_transaction("Local", TOKEN), State.STOPPING_CHARGING, ["StoppingCharging"]),
    (charging, lambda c: c.on_pilot("A"), State.IDLE, ["ChargingFinished", "TransactionFinished", "SessionFinished"]),
    (charging, lambda c: c.set_enable_source("CSMS", "Disable", 5), State.DISABLED,
     ["ChargingFinished", "TransactionFinished", "Disabled"]),
    (paused_ev, lambda c: c.on_pilot("C"), State.CHARGING, ["ChargingResumed"]),
    (paused_ev, lambda c: c.pause(), State.CHARGING_PAUSED_EVSE, ["ChargingPausedEVSE"]),
    (paused_ev, lambda c: c.stop_transaction("Remote"), State.FINISHED,
     ["Deauthorized", "ChargingFinished", "TransactionFinished"]),
    (paused_evse, lambda c: c.resume(), State.CHARGING, ["ChargingResumed"]),
    (paused_evse, lambda c: (c.on_pilot("B"), c.resume()), State.CHARGING_PAUSED_EV, ["ChargingPausedEV"]),
    (paused_evse, lambda c: c.on_pilot("A"), State.IDLE,
     ["ChargingFinished", "TransactionFinished", "SessionFinished"]),
    (stopping, lambda c: c.on_relays(False), State.FINISHED, ["Deauthorized", "ChargingFinished",
                                                              "TransactionFinished"]),
    (stopping, lambda c: c.on_pilot("A"), State.IDLE,
     ["Deauthorized", "ChargingFinished", "TransactionFinished", "SessionFinished"]),
    (finished, lambda c: c.on_pilot("A"), State.IDLE, ["SessionFinished"]),
    (finished, lambda c: c.authorize(TOKEN, ACCEPTED), State.FINISHED, []),
    (disabled, lambda c: c.on_pilot("B"), State.DISABLED, []),
    (disabled, lambda c: c.set_enable_source("LocalAPI", "Unassigned", 10), State.IDLE, ["Enabled"]),
    (disabled, lambda c: (c.on_pilot("B"), c.set_enable_source("LocalAPI", "Enable", 10)),
     State.WAITING_FOR_AUTHENTICATION, ["Enabled", "SessionStarted", "AuthRequired"]),
    (disabled, lambda c: c.authorize(TOKEN, ACCEPTED), State.DISABLED, []),
]


@pytest.mark.parametrize(
    ("setup", "action", "expected_state", "expected_events"),
    CASES,
    ids=[f"{s.__name__}-{i}" for i, (s, *_) in enumerate(CASES)],
)
def test_transition(setup, action, expected_state, expected_events, charger: Charger, out: Recorder) -> None:
    setup(charger)
    out.take()
    action(charger)
    assert charger.state == expected_state
    assert out.names() == expected_events


# ------------------------------------------------------------------ outputs: pilot, relays, timing
def test_plug_then_swipe_full_session(charger: Charger, out: Recorder, meter: Meter) -> None:
    out.take()  # Enabled at start
    charger.on_pilot("B")
    assert out.pilot[-1] == PilotOutput(Pilot.X1)
    charger.authorize(TOKEN, ACCEPTED)
    assert out.pilot[-1] == PilotOutput(Pilot.PWM, duty_cycle_for_current(32))
    assert out.relays == [False]
    charger.on_pilot("C")
    assert out.relays == [False, True]  # closed in the same call as B->C, well within 3 s
    charger.on_relays(True)
    meter.wh = 1500.0
    charger.stop_transaction("Local", TOKEN)
    assert out.relays[-1] is False
    charger.on_relays(False)
    charger.on_pilot("A")
    assert out.names() == [
        "SessionStarted", "AuthRequired", "Authorized", "TransactionStarted", "PrepareCharging",
        "ChargingStarted", "StoppingCharging", "Deauthorized", "ChargingFinished", "TransactionFinished",
        "SessionFinished",
    ]
    finished_event = out.events[-2]["transaction_finished"]
    assert finished_event["reason"] == "Local"
    assert finished_event["energy_Wh"] == 500.0
    assert finished_event["meter_value"]["energy_Wh_import"]["total"] == 1500.0
    assert len({e["uuid"] for e in out.events}) == 1


def test_car_leaving_c_opens_relays_before_anything_else(charger: Charger, out: Recorder) -> None:
    charging(charger)
    out.log.clear()
    charger.on_pilot("B")
    assert out.log[0] == "relays False"
    assert out.pilot[-1].mode == Pilot.PWM  # EV pause keeps PWM so the car can resume


async def test_fault_shows_f_then_x1_and_resumes_when_cleared(
    charger: Charger, out: Recorder, clock: FakeClock
) -> None:
    if True:
        charging(charger)
        charger.raise_fault("evse_board_support/DiodeFault")
        assert out.relays[-1] is False
        assert out.pilot[-1] == PilotOutput(Pilot.F)
        await clock.advance(0.29)
        assert out.pilot[-1] == PilotOutput(Pilot.F)
        await clock.advance(0.02)
        assert out.pilot[-1] == PilotOutput(Pilot.X1)
        assert out.events[-1]["charging_paused_evse"] == {"reasons": ["Error"]}
        assert out.raised == ["evse_manager/Inoperative"]
        charger.clear_fault("evse_board_support/DiodeFault")
        assert out.cleared == ["evse_manager/Inoperative"]
        assert charger.state == State.CHARGING
        assert out.relays[-1] is True


def test_rcd_trip_ends_the_transaction_with_ground_fault(charger: Charger, out: Recorder) -> None:
    charging(charger)
    charger.raise_fault("evse_board_support/RCDTriggered", "DC")
    charger.on_relays(False)
    assert charger.state == State.FINISHED
    assert out.events[-1]["transaction_finished"]["reason"] == "GroundFault"


async def test_pwm_changes_at_most_every_5_s(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    charging(charger)
    assert out.pilot[-1].duty_percent == pytest.approx(32 / 0.6)
    await clock.advance(1)
    charger.set_limit("energy", 16)
    assert out.pilot[-1].duty_percent == pytest.approx(32 / 0.6)  # PWM started 1 s ago
    charger.set_limit("energy", 20)
    await clock.advance(3.9)
    assert out.pilot[-1].duty_percent == pytest.approx(32 / 0.6)
    await clock.advance(0.2)
    assert out.pilot[-1].duty_percent == pytest.approx(20 / 0.6)  # the latest limit, once
    assert [p.duty_percent for p in out.pilot].count(pytest.approx(16 / 0.6)) == 0
    charger.set_limit("energy", 10)  # at t=5.1, 0.1 s after the last change
    await clock.advance(4.8)
    assert out.pilot[-1].duty_percent == pytest.approx(20 / 0.6)
    await clock.advance(0.2)
    assert out.pilot[-1].duty_percent == pytest.approx(10 / 0.6)
    assert out.limits[-1]["max_current"] == 10


def test_below_6_a_stops_pwm_and_pauses(charger: Charger, out: Recorder) -> None:
    charging(charger)
    charger.set_limit("energy", 5.0)
    assert charger.state == State.CHARGING_PAUSED_EVSE
    assert out.pilot[-1] == PilotOutput(Pilot.X1)
    assert out.events[-1]["charging_paused_evse"] == {"reasons": ["NoEnergy"]}
    charger.set_limit("energy", 6.0)
    assert charger.state == State.CHARGING
    assert out.pilot[-1] == PilotOutput(Pilot.PWM, 10.0)


def test_prepare_charging_waits_for_energy_with_x1(charger: Charger, out: Recorder) -> None:
    charger.set_limit("energy", 0)
    prepare(charger)
    charger.on_pilot("C")
    assert charger.state == State.PREPARE_CHARGING
    assert out.pilot[-1] == PilotOutput(Pilot.X1)
    assert True not in out.relays
    charger.set_limit("energy", 16)
    assert charger.state == State.CHARGING
    assert out.relays[-1] is True


def test_reservation_is_used_by_the_transaction(charger: Charger, out: Recorder) -> None:
    assert charger.reserve(3)
    assert not charger.reserve(4)
    assert not charger.authorize(TOKEN, {"authorization_status": "Accepted", "reservation_id": 9})
    charger.on_pilot("B")
    charger.authorize(TOKEN, {"authorization_status": "Accepted", "reservation_id": 3})
    started = next(e for e in out.events if e["event"] == "TransactionStarted")
    assert started["transaction_started"]["reservation_id"] == 3
    ended = next(e for e in out.events if e["event"] == "ReservationEnd")
    assert ended["reservation_end"] == {"reservation_id": 3, "reason": "UsedToStartCharging"}
    assert charger.reservation_id is None


def test_cancel_reservation(charger: Charger, out: Recorder) -> None:
    assert not charger.cancel_reservation()
    charger.reserve(5)
    assert charger.cancel_reservation()
    assert out.events[-1]["reservation_end"] == {"reservation_id": 5, "reason": "Cancelled"}


def test_enable_disable_priorities(charger: Charger) -> None:
    assert charger.set_enable_source("LocalAPI", "Disable", 100) is False
    assert charger.set_enable_source("CSMS", "Enable", 5) is True  # smaller number wins
    assert charger.set_enable_source("ServiceTechnician", "Disable", 5) is False  # equal: disable wins
    assert charger.set_enable_source("ServiceTechnician", "Unassigned", 5) is True
    assert charger.set_enable_source("CSMS", "Unassigned", 5) is False
    assert charger.set_enable_source("LocalAPI", "Unassigned", 100) is True
    assert charger.state == State.IDLE


async def test_soft_over_current_raises_mrec4_after_7_s(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    charger.set_limit("energy", 16)
    charging(charger)
    charger.on_measured_current(19.0)  # (16 + 0.5) * 1.1 = 18.15
    await clock.advance(6.9)
    assert charger.state == State.CHARGING
    await clock.advance(0.2)
    assert out.raised == ["evse_manager/MREC4OverCurrentFailure", "evse_manager/Inoperative"]
    assert charger.state == State.STOPPING_CHARGING
    charger.on_relays(False)
    assert out.events[-1]["transaction_finished"]["reason"] == "OvercurrentFault"
    charger.on_pilot("A")
    assert out.cleared == ["evse_manager/MREC4OverCurrentFailure", "evse_manager/Inoperative"]


async def test_brief_over_current_is_tolerated(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    charger.set_limit("energy", 16)
    charging(charger)
    charger.on_measured_current(19.0)
    await clock.advance(5)
    charger.on_measured_current(16.0)
    await clock.advance(10)
    assert out.raised == []


async def test_stop_times_out_without_relay_feedback(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    charging(charger)
    charger.stop_transaction("Remote")
    await clock.advance(3.1)
    assert charger.state == State.FINISHED


def test_nothing_happens_before_start(clock: FakeClock, out: Recorder, meter: Meter) -> None:
    c = Charger(clock, out, ChargerSettings(), meter.reading)
    c.set_limit("hardware", 32)
    c.on_pilot("B")
    assert out.events == []
    c.start()
    assert out.names() == ["Enabled", "SessionStarted", "AuthRequired"]


@pytest.mark.parametrize(
    ("amps", "duty"),
    [(0, 100), (5.8, 100), (6, 10), (10, 100 / 6), (16, 16 / 0.6), (32, 32 / 0.6), (51, 85), (52, 85),
     (60, 88), (80, 96), (100, 97)],
)
def test_duty_cycle_for_current(amps: float, duty: float) -> None:
    assert duty_cycle_for_current(amps) == pytest.approx(duty)


@pytest.mark.parametrize("amps", [6, 10, 13, 16, 20, 25, 32, 40, 51, 60, 63, 70, 80])
def test_duty_cycle_round_trips_to_current(amps: float) -> None:
    assert current_for_duty_cycle(duty_cycle_for_current(amps)) == pytest.approx(amps)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [("A", "B", "CarPluggedIn"), ("A", "C", "CarPluggedIn"), ("C", "A", "CarUnplugged"), ("B", "A", "CarUnplugged"),
     ("B", "C", "CarRequestedPower"), ("B", "D", "CarRequestedPower"), ("C", "B", "CarRequestedStopPower"),
     ("C", "E", "PilotShorted"), ("B", "B", None)],
)
def test_pilot_changes_become_car_events(before: str, after: str, event: str | None) -> None:
    assert car_event(before, after) == event


def test_car_in_d_gets_no_power_without_ventilation(clock: FakeClock, out: Recorder, meter: Meter) -> None:
    c = Charger(clock, out, ChargerSettings(has_ventilation=False), meter.reading)
    c.set_limit("hardware", 32)
    c.start()
    prepare(c)
    c.on_pilot("D")
    assert c.state == State.PREPARE_CHARGING
    assert True not in out.relays


async def test_legacy_wake_up_pulses_f_then_gives_up(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    prepare(charger)
    out.take()
    pwm = out.pilot[-1]
    await clock.advance(29.9)
    assert out.pilot[-1] == pwm
    await clock.advance(0.2)
    assert out.pilot[-1] == PilotOutput(Pilot.F)  # the wake-up pulse ...
    await clock.advance(0.3)
    assert out.pilot[-1] == pwm  # ... then PWM again
    await clock.advance(9.7)
    assert charger.state == State.CHARGING_PAUSED_EV
    assert out.take() == ["ChargingPausedEV"]
    charger.on_pilot("C")  # the car woke up after all
    assert charger.state == State.CHARGING
    assert out.take() == ["ChargingStarted"]


async def test_no_wake_up_when_the_car_asks_in_time(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    prepare(charger)
    await clock.advance(20)
    charger.on_pilot("C")
    await clock.advance(60)
    assert Pilot.F not in [p.mode for p in out.pilot[1:]]
    assert charger.state == State.CHARGING


async def test_no_wake_up_pulse_while_there_is_no_pwm(charger: Charger, out: Recorder, clock: FakeClock) -> None:
    charger.set_limit("energy", 0)
    prepare(charger)
    await clock.advance(45)
    assert out.pilot[-1] == PilotOutput(Pilot.X1)
    charger.set_limit("energy", 16)
    await clock.advance(29.9)  # 30 s of PWM, counted from when the power came
    assert out.pilot[-1].mode == Pilot.PWM
    await clock.advance(0.2)
    assert out.pilot[-1] == PilotOutput(Pilot.F)
