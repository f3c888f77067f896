"""GenericPowermeter as the billing meter of an EvseManager (with the simulated board), reading a
pymodbus server over TCP: the EVSE forwards the Modbus readings and treats CommunicationFault as a
lost meter until the fault clears."""

from __future__ import annotations

from typing import Any

from everpy_modules.GenericPowermeter.register_map import load_register_map

from everpy.testing import run_system

from .meter_sim import MeterImage, float_words, tcp_meter

EVSE_METER_LOST = "evse_manager/PowermeterLost"


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
