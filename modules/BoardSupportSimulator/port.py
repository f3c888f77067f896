"""The physics of one simulated AC charging port: pilot, relays, residual current, energy.

Both sides set inputs (the EVSE side: pilot output, relay permission; the car side: resistors,
diode, current, leakage); :meth:`Port.snapshot` says what each side observes. The module compares
snapshots before and after each input and publishes the differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PortSettings:
    voltage_v: float = 230.0
    # Residual current at which the RCD trips, mA (6 mA DC-sensitive RCD-DD per IEC 62955).
    rcd_trip_ma: float = 6.0


@dataclass(frozen=True)
class Observation:
    """What can be seen from outside at one instant."""

    pilot_state: str  # A..E as the EVSE measures it
    relays_closed: bool
    duty_percent: float  # what the car measures: 100 = X1, 0 = F
    errors: frozenset[tuple[str, str]]  # (error type, sub type) the board detects
    current_a: tuple[float, float, float]


@dataclass
class Port:
    settings: PortSettings = field(default_factory=PortSettings)
    # EVSE side
    enabled: bool = True
    pilot_mode: str = "X1"  # X1, F, E or PWM
    duty_percent: float = 100.0
    power_allowed: bool = False
    # The board's own watchdog on the manager: relays may be closed only while a power lease is
    # valid. True here keeps the physics usable on its own; the module starts every port without a
    # lease (False) and sets it from renew_power_lease and the lease's expiry.
    lease_valid: bool = True
    # car side
    car_state: str = "A"  # A, B, C, D, E
    diode_ok: bool = True
    car_current_a: float = 0.0
    car_phases: int = 3
    residual_ma: float = 0.0
    # latched faults
    rcd_tripped: bool = False
    diode_fault: bool = False
    injected: set[tuple[str, str]] = field(default_factory=set)
    energy_wh_per_phase: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def pilot_output(self) -> tuple[str, float]:
        """Pilot as driven: disabled ports show F; PWM values are kept until enabled again."""
        if not self.enabled:
            return "F", 0.0
        if self.pilot_mode == "PWM":
            return "PWM", self.duty_percent
        return self.pilot_mode, {"X1": 100.0, "F": 0.0, "E": 0.0}[self.pilot_mode]

    def relays_closed(self) -> bool:
        return (
            self.enabled
            and self.power_allowed
            and self.lease_valid
            and self.car_state in ("C", "D")
            and not self.rcd_tripped
        )

    def currents(self) -> tuple[float, float, float]:
        if not self.relays_closed():
            return (0.0, 0.0, 0.0)
        per_phase = self.car_current_a
        return tuple(per_phase if i < self.car_phases else 0.0 for i in range(3))  # type: ignore[return-value]

    def update_latches(self) -> None:
        """Faults that latch until the car is gone.

        The RCD trips while power flows. A missing diode is only visible during PWM (no negative pilot
        level); the fault is kept after the PWM stops, else the EVSE would retry PWM every 300 ms.
        """
        if self.relays_closed() and self.residual_ma >= self.settings.rcd_trip_ma:
            self.rcd_tripped = True
        if not self.diode_ok and self.pilot_output()[0] == "PWM" and self.car_state != "A":
            self.diode_fault = True
        if self.car_state == "A":
            self.diode_fault = False
            if self.residual_ma < self.settings.rcd_trip_ma:
                self.rcd_tripped = False

    def detected_errors(self) -> frozenset[tuple[str, str]]:
        found = set(self.injected)
        if self.diode_fault:
            found.add(("evse_board_support/DiodeFault", ""))
        if self.car_state == "E":
            found.add(("evse_board_support/MREC14PilotFault", "pilot shorted"))
        if self.rcd_tripped:
            found.add(("evse_board_support/RCDTriggered", "DC"))
        return frozenset(found)

    def snapshot(self) -> Observation:
        self.update_latches()
        _, duty = self.pilot_output()
        return Observation(
            pilot_state=self.car_state,
            relays_closed=self.relays_closed(),
            duty_percent=duty,
            errors=self.detected_errors(),
            current_a=self.currents(),
        )

    def power_w(self) -> float:
        return sum(self.currents()) * self.settings.voltage_v

    @property
    def energy_wh(self) -> float:
        return sum(self.energy_wh_per_phase)

    def integrate(self, seconds: float) -> None:
        for phase, current in enumerate(self.currents()):
            self.energy_wh_per_phase[phase] += current * self.settings.voltage_v * seconds / 3600.0
