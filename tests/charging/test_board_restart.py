"""A board driver restarted mid-session is re-synchronised: the session goes on, or ends cleanly.

The FlakyBoard's hardware (pilot, PWM, relays, the car) outlives the driver instance, like an MCU
across a crash of its host-side driver: the runtime restarts the crashed module in-process, the
manager sees ModuleState down -> ready, re-sends its whole desired state (enable first) and takes
what the board re-publishes on enable as the truth.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.testing import run_system

from .sil_system import Sil, sil, until
from .test_board_faults import BOARDS, Flaky, charge, flaky, flaky_config

FAST_RESTART = {"restart_backoff_s": 0.05, "restart_backoff_max_s": 0.05}
DOWN_FAULT = ("evse_manager/BoardCommandsFailing", "ModuleDown")


async def crash_and_restart(f: Flaky) -> None:
    first = f.board
    f.board.crash()
    await f.run_until(lambda: f.evse._board_down, "board seen down")
    await f.run_until(lambda: f.board is not first and f.evse._resync_seen is None and not f.evse._board_down,
                      "board restarted and re-synchronised")


async def test_a_restarted_board_gets_the_whole_state_again_and_the_session_goes_on() -> None:
    async with flaky(settings=FAST_RESTART) as f:
        await charge(f)
        enables = f.hardware.attempts["enable"]
        f.events.drain()
        await crash_and_restart(f)
        assert f.board.restarted  # the fresh instance found the MCU as it was
        assert f.hardware.attempts["enable"] == enables + 1  # enable first: the board re-announced itself
        await f.run_until(lambda: f.evse.charger.state == "Charging" and f.hardware.relays_closed, "charging again")
        names = [e["event"] for e in f.events.drain()]
        assert names == ["ChargingPausedEVSE", "ChargingResumed"]  # the same transaction, no new one
        assert f.hardware.pilot_mode == "PWM" and f.hardware.power_allowed
        errors = [(e["type"], e.get("sub_type"), e["state"]) for e in f.evse_errors.drain()
                  if (e["type"], e.get("sub_type")) == DOWN_FAULT]
        assert [state for *_, state in errors] == ["Active", "ClearedByModule"]


async def test_a_car_that_left_while_the_driver_was_away_ends_the_session_cleanly() -> None:
    async with flaky(settings=FAST_RESTART) as f:
        await charge(f)
        f.events.drain()
        first = f.board
        f.board.crash()
        await f.run_until(lambda: f.evse._board_down, "board seen down")
        f.hardware.car_pilot = "A"  # unplugged while no driver listened: nobody published it
        f.hardware.relays_closed = False
        await f.run_until(lambda: f.board is not first and not f.evse._board_down and f.evse._resync_seen is None,
                          "board restarted and re-synchronised")
        finished = await f.skip_to("TransactionFinished")
        assert finished["transaction_finished"]["reason"] == "EVDisconnected"
        await f.skip_to("SessionFinished")
        await f.run_until(lambda: f.evse.charger.state == "Idle", "Idle")


async def test_an_orderly_stop_ends_the_transaction_as_reboot_with_the_relays_open() -> None:
    """SIGTERM/Ctrl-C run the stopping() hooks with the bus up: the transaction is stopped, not left
    open (the next boot would close it as PowerLoss), and the relays are open before the host goes on."""
    async with sil() as s:
        await s.charging()
        s.board_events.drain()
        assert await s.system.runtime.host.stopping() == []  # every module's hook finished in time
        assert s.evse.charger.transaction is None and not s.evse.charger.facts.relays_closed
        events = await s.expect("StoppingCharging", "ChargingFinished", "TransactionFinished")
        assert events[-1]["transaction_finished"]["reason"] == "Reboot"
        assert events[-1]["transaction_finished"]["energy_Wh"] >= 0
        await s.relays(False)


async def test_a_board_driver_process_killed_with_sigkill_is_resynchronised(tmp_path: Path) -> None:
    """The driver as `process: own`, killed hard: the MCU state is in a file the next process reads."""
    mcu = tmp_path / "mcu.json"
    config = flaky_config(board={"hardware_file": str(mcu)}, settings=FAST_RESTART)
    config["active_modules"]["board"]["process"] = "own"
    clock = FakeClock()
    async with run_system(config, clock=clock, extra_module_dirs=[BOARDS]) as system:
        s = Sil(system, clock)
        evse = s.evse
        await until(lambda: evse.charger.started and mcu.exists(), what="EVSE started")

        def hardware() -> dict[str, Any]:
            return json.loads(mcu.read_text())

        await system.call("board", "car", "set_cp_state", cp_state="B")
        await s.skip_to("PrepareCharging")
        await system.call("board", "car", "set_cp_state", cp_state="C")
        await s.skip_to("ChargingStarted")
        await until(lambda: hardware()["relays_closed"], what="relays closed")
        child = system.runtime.children["board"].process
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)
        await until(lambda: evse._board_down, what="board seen down")
        await until(lambda: not evse._board_down and evse._resync_seen is None, what="board back and resynced")
        assert hardware()["attempts"]["enable"] == 2
        moved = 0.0
        while not (evse.charger.state == "Charging" and hardware()["relays_closed"]):
            assert moved < 60, "charging did not resume"
            await s.advance(0.1, 0.1)  # the fault's F pulse runs on the module clock
            moved += 0.1
        assert [e["event"] for e in s.events.drain()] == ["ChargingPausedEVSE", "ChargingResumed"]  # same transaction
