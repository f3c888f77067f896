"""GenericPowermeter as the billing meter of an EvseManager (with the simulated board), reading a
pymodbus server over TCP: the EVSE forwards the Modbus readings and treats CommunicationFault as a
lost meter until the fault clears; an implausible reading pauses charging only with
fail_on_powermeter_errors, and never reaches the EVSE's powermeter var."""

from __future__ import annotations

from typing import Any

import pytest
from everpy_modules.EvseManager.charger import State
from everpy_modules.GenericPowermeter.register_map import load_register_map

from everpy.testing import run_system
from tests.charging.sil_system import WAIT_S, conn, error_types, sil, sil_config

from .meter_sim import MeterImage, float_words, tcp_meter

EVSE_METER_LOST = "evse_manager/PowermeterLost"
IMPLAUSIBLE = "powermeter/ImplausibleReading"


def evse_with_modbus_meter(port: int) -> dict[str, Any]:
    return {
        "active_modules": {
            "evse": {
                "module": "EvseManager",
                "config_module": {"connector_id": 1, "evse_id": "DE*EVP*E1", "powermeter_timeout_s": 0},
                "connections": {
                    "bsp": [{"module_id": "board", "implementation_id": "board_support"}],
                    "powermeter": [{"module_id": "meter", "implementation_id": "main"}],
                },
            },
            "board": {"module": "BoardSupportSimulator"},
            "meter": {
                "module": "GenericPowermeter",
                "config_module": {
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "register_map": "sdm630_v2",
                    "poll_interval_ms": 100,
                    "timeout_ms": 300,
                    "retries": 0,
                },
            },
        }
    }


async def test_evse_forwards_modbus_readings_and_reacts_to_meter_loss() -> None:
    image, expected = MeterImage.for_map(load_register_map("sdm630_v2"))
    async with tcp_meter(image) as port, run_system(evse_with_modbus_meter(port)) as system:
        evse_readings = system.watch("evse", "evse", "powermeter")
        evse_errors = system.watch_errors("evse", "evse")
        await system.flush()  # subscriptions in place before the fault is provoked
        reading = await evse_readings.next(timeout=15)
        assert reading["energy_Wh_import"] == expected["energy_Wh_import"]

        image.words[72], image.words[73] = float_words(float("nan"))
        await evse_errors.wait_for(lambda e: e["type"] == EVSE_METER_LOST and e["state"] == "Active", timeout=15)

        moved_on_kwh = expected["energy_Wh_import"]["total"] / 1000 + 0.0625  # a plausible step
        image.words[72], image.words[73] = float_words(moved_on_kwh)
        await evse_errors.wait_for(
            lambda e: e["type"] == EVSE_METER_LOST and e["state"] == "ClearedByModule", timeout=15
        )
        fresh = await evse_readings.wait_for(
            lambda r: r["energy_Wh_import"]["total"] == moved_on_kwh * 1000, timeout=15
        )
        assert fresh["voltage_V"] == expected["voltage_V"]


def sil_with_modbus_meter(port: int, fail_on_powermeter_errors: bool) -> dict[str, Any]:
    """The charging SIL (board, car, RFID, Auth) with GenericPowermeter as the EVSE's meter."""
    config = sil_config(evse={"fail_on_powermeter_errors": fail_on_powermeter_errors})
    modules = config["active_modules"]
    modules["evse"]["connections"]["powermeter"] = [conn("meter", "main")]
    modules["meter"] = evse_with_modbus_meter(port)["active_modules"]["meter"]
    modules["meter"]["config_module"]["poll_interval_ms"] = 1000  # on the SIL's fake clock
    # Replies wait in real time: a loaded CI machine must not turn a slow reply into a missed poll, which
    # would leave the fake-clock steps below a poll short.
    modules["meter"]["config_module"].update(timeout_ms=5000, retries=2)
    return config


@pytest.mark.parametrize("fail_on_powermeter_errors", [True, False], ids=["fail-on-errors", "ignore-errors"])
async def test_implausible_meter_pauses_charging_only_with_fail_on_powermeter_errors(
    fail_on_powermeter_errors: bool,
) -> None:
    image, expected = MeterImage.for_map(load_register_map("sdm630_v2"))
    good_kwh = expected["energy_Wh_import"]["total"] / 1000
    async with tcp_meter(image) as port, sil(sil_with_modbus_meter(port, fail_on_powermeter_errors)) as s:
        evse_readings = s.system.watch("evse", "evse", "powermeter")
        await s.system.flush()
        await s.charging()
        image.words[72], image.words[73] = float_words(1e27)  # 1e30 Wh
        await s.advance(1.0, step=1.0)  # the next poll
        await s.evse_errors.wait_for(lambda e: e["type"] == IMPLAUSIBLE and e["state"] == "Active", WAIT_S)
        if fail_on_powermeter_errors:
            await s.evse_errors.wait_for(lambda e: e["type"] == EVSE_METER_LOST and e["state"] == "Active", WAIT_S)
            paused = await s.skip_to("ChargingPausedEVSE")
            assert paused["charging_paused_evse"]["reasons"] == ["Error"]
            await s.relays(False)
        else:
            blocks = len(load_register_map("sdm630_v2").blocks)
            for _ in range(3):  # three more refused polls; charging goes on
                # One step, then its whole poll: a step taken while a poll still waits for its (real-time)
                # replies would merge two polls into one.
                before = image.requests
                await s.advance(1.0, step=1.0)
                await image.wait_for_requests(before + blocks)
            await s.settle()
            assert [e["event"] for e in s.events.drain()] == []
            assert [e["event"] for e in s.board_events.drain() if e["event"] in ("PowerOn", "PowerOff")] == []
            assert s.evse.charger.state == State.CHARGING
            assert EVSE_METER_LOST not in [e["type"] for e in s.evse_errors.drain()]

        image.words[72], image.words[73] = float_words(good_kwh)
        await s.advance(1.0, step=1.0)
        await s.evse_errors.wait_for(lambda e: e["type"] == IMPLAUSIBLE and e["state"] == "ClearedByModule", WAIT_S)
        if fail_on_powermeter_errors:
            await s.expect("ChargingResumed")
            assert (EVSE_METER_LOST, "ClearedByModule") in error_types(s.evse_errors)
        await evse_readings.wait_for(lambda r: r["energy_Wh_import"]["total"] == good_kwh * 1000, WAIT_S)
        assert all(r["energy_Wh_import"]["total"] == good_kwh * 1000 for r in evse_readings.values)
