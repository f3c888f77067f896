"""The board as a desired state, reconciled by one worker: retries with backoff, a latched fault, resync.

The charger decides what the board should do (enabled, pilot, relay permission, over current trip
level); this link keeps the latest decision per *slot* and pushes it to the board. Because only the
current desired value of a slot is ever sent, a value the charger has already replaced is never
sent after it, however long the board took to answer.

A failed command is retried with exponential backoff on the module clock (``RETRY_INITIAL_S``
doubling up to ``retry_max_s``): a board that fails every call costs a few calls a second at most,
never a hot loop. A command that only went through on a retry is a (throttled) warning. After
``failures_to_latch`` failed attempts within ``failure_window_s`` without a success in between, the
link *latches*: ``on_latched`` runs once and the manager makes that a fault (relays off, pilot F/X1).
While latched the link retries at ``probe_interval_s`` and, when it has nothing new to send, probes
by re-sending the relay permission (the safe state); ``successes_to_heal`` successful commands in a
row mean the board is healthy again and ``on_healed`` runs. A restarted board module whose resync
goes through heals the same way. ``clear_latch`` is the operator's way out (re-enabling the EVSE).

The power lease is renewed here as well, on REAL time (see ``_keep_lease``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from everpy import CommandError
from everpy.core.clock import Clock
from everpy.core.logs import LogThrottle

RETRY_INITIAL_S = 0.1
# Slot names; RESYNC_ORDER is the order a restarted board gets them (enable first: the board
# re-publishes its present state on enable).
ENABLE, POWER, PILOT, OVERCURRENT = "enable", "power", "pilot", "overcurrent"
RESYNC_ORDER = (ENABLE, POWER, PILOT, OVERCURRENT)


class BoardCalls(Protocol):
    """The part of a Remote the link uses (the bsp requirement)."""

    def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class BoardCall:
    cmd: str
    args: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, cmd: str, **args: Any) -> BoardCall:
        return cls(cmd, tuple(sorted(args.items())))

    def __str__(self) -> str:
        return self.cmd + (f"({', '.join(f'{k}={v}' for k, v in self.args)})" if self.args else "")


@dataclass(frozen=True)
class LinkSettings:
    failures_to_latch: int = 5
    failure_window_s: float = 60.0
    retry_max_s: float = 5.0
    probe_interval_s: float = 10.0
    successes_to_heal: int = 3
    command_timeout_s: float = 5.0
    power_lease_ms: int = 3000


class BoardLink:
    def __init__(
        self,
        board: BoardCalls,
        clock: Clock,
        log: logging.Logger,
        settings: LinkSettings,
        on_latched: Callable[[str], None],
        on_healed: Callable[[], None],
        on_enabled: Callable[[], None],
    ) -> None:
        self._board = board
        self._clock = clock
        self._log = log
        self.settings = settings
        self._on_latched = on_latched
        self._on_healed = on_healed
        self._on_enabled = on_enabled
        self._desired: dict[str, BoardCall] = {}
        self._sent: dict[str, BoardCall] = {}
        self._dirty: dict[str, None] = {}  # slots to send, oldest change first (a dict keeps order)
        self._wake = asyncio.Event()
        self.delivered = asyncio.Event()  # set after each command the board took; whoever waits clears it
        self._board_up = asyncio.Event()
        self._board_up.set()
        self._power_wanted = asyncio.Event()
        self._failures: deque[float] = deque()  # module-clock times of failed attempts since the last success
        self._attempts = 0  # failed attempts in a row, whatever the slot: sets the backoff
        self._slot_failures: dict[str, int] = {}  # failed attempts of each slot's value until it went through
        self._successes_in_row = 0
        self.latched = False
        # Per minute of module time: a stuck board costs a few lines, not megabytes.
        self._throttle = LogThrottle(log, 60.0, monotonic=clock.monotonic)
        self._lease_throttle = LogThrottle(log, 60.0)  # the lease runs on real time

    # ------------------------------------------------------------------ what the board should do
    def enable(self) -> None:
        self._want(ENABLE, BoardCall.of("enable", value=True))

    def set_pilot(self, cmd: str, **args: Any) -> None:
        self._want(PILOT, BoardCall.of(cmd, **args))

    def allow_power(self, allow: bool) -> None:
        reason = "FullPowerCharging" if allow else "PowerOff"
        self._want(POWER, BoardCall.of("allow_power_on", value={"allow_power_on": allow, "reason": reason}))
        if allow:
            self._power_wanted.set()
        else:
            self._power_wanted.clear()

    def set_overcurrent_limit(self, amps: float) -> None:
        self._want(OVERCURRENT, BoardCall.of("ac_set_overcurrent_limit_A", value=amps))

    @property
    def idle(self) -> bool:
        """Everything desired has been delivered."""
        return not self._dirty

    def _want(self, slot: str, call: BoardCall) -> None:
        self._desired[slot] = call
        self._dirty.pop(slot, None)
        if self._sent.get(slot) != call:
            self._dirty[slot] = None
            self._wake.set()

    # ------------------------------------------------------------------ board module lifecycle
    def board_down(self) -> None:
        """The board module is gone: send nothing (a down module answers nothing) until it is back."""
        self._board_up.clear()

    def board_ready(self) -> None:
        """A fresh board instance knows nothing: send the whole desired state again, enable first."""
        self._sent.clear()
        self._dirty.clear()
        for slot in RESYNC_ORDER:
            if slot in self._desired:
                self._dirty[slot] = None
        self._failures.clear()
        self._attempts = 0
        self._slot_failures.clear()
        self._board_up.set()
        self._wake.set()

    def clear_latch(self) -> None:
        """The operator cleared the fault: start counting failures afresh."""
        if self.latched:
            self._log.warning("board command fault cleared by the operator")
            self._heal()

    # ------------------------------------------------------------------ worker
    async def run(self) -> None:
        """The one worker that talks to the board, plus the lease keeper."""
        lease = asyncio.ensure_future(self._keep_lease())
        try:
            while True:
                await self._board_up.wait()
                self._wake.clear()
                slot = self._next_slot()
                if slot is None:
                    if not self.latched:
                        await self._wake.wait()
                        continue
                    woken = await self._clock.wait_event(self._wake, self.settings.probe_interval_s)
                    if woken or POWER not in self._desired:
                        continue
                    slot = POWER  # probe: the safe state again
                if await self._send(slot) or not self._board_up.is_set():
                    continue  # a board module that went down meanwhile is resynced when it is back
                # Back off on the module clock; a new desired value is picked up after the pause.
                await self._clock.sleep(self._backoff_s())
        finally:
            lease.cancel()

    def _next_slot(self) -> str | None:
        if POWER in self._dirty and not _allows_power(self._desired[POWER]) and not self._slot_failures.get(POWER):
            # Opening the relays goes before anything else; once it failed, the others take turns with
            # it (the pilot going to F/X1 tells the car to stop drawing even if the relays do not answer).
            return POWER
        return next(iter(self._dirty), None)

    async def _send(self, slot: str) -> bool:
        call = self._desired[slot]
        # Until the board answers, its value for this slot is unknown: any new wish must be sent.
        self._sent.pop(slot, None)
        if slot == POWER and _allows_power(call):
            # A board closes nothing without a valid lease: renew it right before allowing power.
            await self._renew_lease(self.settings.command_timeout_s)
        try:
            self._log.debug("board <- %s", call)
            await self._call(call)
        except CommandError as exc:
            if self._board_up.is_set():  # a module that is down is the ModuleDown fault, not a failure
                self._slot_failures[slot] = self._slot_failures.get(slot, 0) + 1
                self._failed(call, exc)
            if slot in self._dirty:
                self._dirty.pop(slot)
                self._dirty[slot] = None  # behind the others: one stuck command does not hold them up
            return False
        self._succeeded(call, self._slot_failures.pop(slot, 0))
        self._sent[slot] = call
        if self._desired.get(slot) == call:
            self._dirty.pop(slot, None)
        self.delivered.set()
        if slot == ENABLE:
            self._on_enabled()
        return True

    async def _call(self, call: BoardCall) -> None:
        await self._board.call(call.cmd, timeout=self.settings.command_timeout_s, **dict(call.args))

    def _failed(self, call: BoardCall, exc: CommandError) -> None:
        now = self._clock.monotonic()
        self._attempts += 1
        self._successes_in_row = 0
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.settings.failure_window_s:
            self._failures.popleft()
        self._throttle(f"failed {call.cmd}", logging.WARNING, "board command %s failed (%s); retrying in %.1f s",
                       call, exc, self._backoff_s())
        if not self.latched and len(self._failures) >= self.settings.failures_to_latch:
            self.latched = True
            message = (f"{len(self._failures)} board commands failed within "
                       f"{self.settings.failure_window_s:g} s, last {call}: {exc}")
            self._log.error("%s: charging stops until the board is healthy again", message)
            self._on_latched(message)

    def _succeeded(self, call: BoardCall, failed_before: int) -> None:
        if failed_before:
            self._throttle(f"retried {call.cmd}", logging.WARNING, "board command %s went through after %d failed "
                           "attempts", call, failed_before)
        self._attempts = 0
        self._failures.clear()
        if self.latched:
            self._successes_in_row += 1
            if self._successes_in_row >= self.settings.successes_to_heal:
                self._log.warning("board healthy again (%d commands in a row went through)", self._successes_in_row)
                self._heal()

    def _heal(self) -> None:
        self.latched = False
        self._successes_in_row = 0
        self._failures.clear()
        self._attempts = 0
        for call in self._desired.values():
            self._throttle.forget(f"failed {call.cmd}")
            self._throttle.forget(f"retried {call.cmd}")
        self._on_healed()

    def _backoff_s(self) -> float:
        cap = self.settings.probe_interval_s if self.latched else self.settings.retry_max_s
        return min(RETRY_INITIAL_S * 2 ** max(0, self._attempts - 1), cap)

    # ------------------------------------------------------------------ power lease
    async def _keep_lease(self) -> None:
        """Renew the lease every third of it while power is wanted, on REAL time (asyncio's clock).

        The lease proves that this process and the bus are alive, so it must not follow the module
        clock (tests jump that by minutes). A failed renewal is only logged: the board protects
        itself by opening the relays when the lease runs out.
        """
        period_s = self.settings.power_lease_ms / 3000
        while True:
            await self._power_wanted.wait()
            await asyncio.sleep(period_s)
            if not self._power_wanted.is_set() or not self._board_up.is_set():
                continue
            await self._renew_lease(period_s)

    async def _renew_lease(self, timeout_s: float) -> None:
        """One renewal; a failure is only logged (throttled): the board protects itself."""
        try:
            await self._board.call("renew_power_lease", timeout=timeout_s, valid_for_ms=self.settings.power_lease_ms)
        except CommandError as exc:
            self._lease_throttle("lease", logging.WARNING, "power lease renewal failed: %s", exc)
        else:
            self._lease_throttle.forget("lease")


def _allows_power(call: BoardCall) -> bool:
    return bool(dict(call.args)["value"]["allow_power_on"])
