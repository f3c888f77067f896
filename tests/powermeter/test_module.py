"""GenericPowermeter on the real bus (private mosquitto, everpy runtime) reading a real pymodbus
server over TCP and over a pty pair: published values, CommunicationFault raise/clear, commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from everpy_modules.GenericPowermeter.register_map import load_register_map

from everpy.core.clock import FakeClock
from everpy.core.exceptions import ModuleStartupError
from everpy.testing import Recorder, RunningSystem, run_system

from .meter_sim import MeterImage, WireFault, float_words, rtu_meter, tcp_meter

FAULT = "powermeter/CommunicationFault"
POLL_MS = 100


def meter_config(**connection: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "meter": {
                "module": "GenericPowermeter",
                "config_module": {
                    "register_map": "sdm630_v2",
                    "meter_id": "SDM630-0042",
                    "poll_interval_ms": POLL_MS,
                    "timeout_ms": 300,
                    "retries": 0,
                    **connection,
                },
            }
        }
    }


def tcp_config(port: int) -> dict[str, Any]:
    return meter_config(transport="tcp", host="127.0.0.1", port=port)


def measurements(reading: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reading.items() if k not in ("timestamp", "meter_id")}


async def wait_for_error(errors: Recorder, state: str) -> dict[str, Any]:
    return await errors.wait_for(lambda e: e["type"] == FAULT and e["state"] == state, timeout=15)


async def assert_silent_while_failing(system: RunningSystem, image: MeterImage, readings: Recorder) -> None:
    """While the fault is active, several polls reach the meter and none publishes a reading."""
    await image.wait_for_requests(image.requests + 1)  # readings from before the fault have arrived
    readings.drain()
    await image.wait_for_requests(image.requests + 5)
    await system.flush()
    assert readings.drain() == []


async def watch_meter(system: RunningSystem) -> tuple[Recorder, Recorder]:
    """Record the meter's readings and errors; returns once the broker has the subscriptions."""
    recorders = system.watch("meter", "main", "powermeter"), system.watch_errors("meter", "main")
    await system.flush()
    return recorders


def meter_faults(system: RunningSystem) -> list[dict[str, Any]]:
    return [e for e in system.instances["meter"].active_errors("main") if e["type"] == FAULT]


@pytest.fixture
def sdm630() -> tuple[MeterImage, dict[str, dict[str, float]]]:
    return MeterImage.for_map(load_register_map("sdm630_v2"))


async def test_tcp_meter_publishes_readings_and_reports_loss_and_recovery(sdm630: tuple) -> None:
    image, expected = sdm630
    async with (
        tcp_meter(image) as port,
        run_system(meter_config(transport="tcp", host="127.0.0.1", port=port)) as system,
    ):
        readings, errors = await watch_meter(system)

        first = await readings.next(timeout=15)
        assert measurements(first) == expected
        assert first["meter_id"] == "SDM630-0042"
        assert first["timestamp"].endswith("Z")

        image.words[72], image.words[73] = float_words(float("nan"))  # import total turns to NaN
        raised = await wait_for_error(errors, "Active")
        assert "30073" in raised["message"]
        assert system.instances["meter"].active_errors("main")
        await assert_silent_while_failing(system, image, readings)
        assert all(r["energy_Wh_import"]["total"] == expected["energy_Wh_import"]["total"] for r in readings.values)

        moved_on_kwh = expected["energy_Wh_import"]["total"] / 1000 + 0.0625  # a plausible step
        image.words[72], image.words[73] = float_words(moved_on_kwh)
        await wait_for_error(errors, "ClearedByModule")
        fresh = await readings.wait_for(lambda r: r["energy_Wh_import"]["total"] == moved_on_kwh * 1000, timeout=15)
        assert fresh["power_W"] == expected["power_W"]
        assert not system.instances["meter"].active_errors("main")


async def test_tcp_meter_switched_off_and_on_again(sdm630: tuple) -> None:
    image, expected = sdm630
    async with tcp_meter(image) as port:
        pass  # the port is free again: the meter is "switched off"
    async with run_system(tcp_config(port)) as system:
        readings, errors = await watch_meter(system)
        # Nobody listens on the port yet: the first poll (right after global ready) fails, possibly
        # before this probe subscribed to the error topic, so ask the module for its active errors.
        if not meter_faults(system):
            await wait_for_error(errors, "Active")
        [raised] = meter_faults(system)
        assert "127.0.0.1" in raised["message"]
        assert readings.drain() == []
        async with tcp_meter(image, port=port):
            await wait_for_error(errors, "ClearedByModule")
            assert measurements(await readings.next(timeout=15)) == expected


async def test_rtu_meter_over_a_pty_publishes_and_recovers_from_corrupted_replies(sdm630: tuple) -> None:
    image, expected = sdm630
    async with rtu_meter(image) as (tty_path, wire):
        config = meter_config(transport="rtu", serial_port=tty_path, baudrate=9600)
        async with run_system(config) as system:
            readings, errors = await watch_meter(system)
            assert measurements(await readings.next(timeout=15)) == expected

            wire.fault = WireFault.BAD_CRC
            await wait_for_error(errors, "Active")
            await assert_silent_while_failing(system, image, readings)

            wire.fault = WireFault.NONE
            await wait_for_error(errors, "ClearedByModule")
            assert measurements(await readings.next(timeout=15)) == expected


async def test_transactions_are_not_supported_without_signing(sdm630: tuple) -> None:
    image, _expected = sdm630
    async with (
        tcp_meter(image) as port,
        run_system(meter_config(transport="tcp", host="127.0.0.1", port=port)) as system,
    ):
        request = {
            "evse_id": "DE*PNX*E1",
            "transaction_id": "tx-1",
            "identification_status": "ASSIGNED",
            "identification_flags": ["RFID_PLAIN"],
            "identification_type": "ISO14443",
            "identification_data": "deadbeef",
        }
        started = await system.call("meter", "main", "start_transaction", value=request)
        assert started["status"] == "NOT_SUPPORTED" and "OCMF" in started["error"]
        stopped = await system.call("meter", "main", "stop_transaction", transaction_id="")
        assert stopped["status"] == "NOT_SUPPORTED"


async def test_broken_register_map_stops_startup_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "my_meter.yaml"
    broken.write_text("function_code: 4\nvalues:\n  energy_Wh_import:\n    total: {register: 30073, sacle: 1000}\n")
    config = meter_config(transport="tcp", host="127.0.0.1", register_map=str(broken))
    with pytest.raises(ModuleStartupError, match=rf"{broken}:4: .*unknown key 'sacle'.*did you mean 'scale'"):
        async with run_system(config):
            pass


async def test_tcp_without_host_stops_startup() -> None:
    with pytest.raises(ModuleStartupError, match="transport 'tcp' needs 'host'"):
        async with run_system(meter_config(transport="tcp")):
            pass


async def test_polls_follow_the_module_clock(sdm630: tuple) -> None:
    image, expected = sdm630
    clock = FakeClock()
    config = meter_config(transport="tcp", host="127.0.0.1", poll_interval_ms=60_000)
    async with tcp_meter(image) as port:
        config["active_modules"]["meter"]["config_module"]["port"] = port
        async with run_system(config, clock=clock) as system:
            readings, _errors = await watch_meter(system)
            requests_per_poll = len(load_register_map("sdm630_v2").blocks)
            await image.wait_for_requests(requests_per_poll)  # the poll at ready
            first = await readings.next(timeout=15)  # its reading, before time moves
            assert first["timestamp"] == "2026-01-01T00:00:00.000Z"
            await clock.advance(59.0)
            await system.flush()
            assert image.requests == requests_per_poll  # nothing until the interval is over
            readings.drain()
            await clock.advance(1.0)
            reading = await readings.next(timeout=15)
            assert measurements(reading) == expected
            assert reading["timestamp"] == "2026-01-01T00:01:00.000Z"  # taken from the fake clock


async def test_rtu_broadcast_unit_id_stops_startup() -> None:
    with pytest.raises(ModuleStartupError, match="unit_id 0 cannot answer on RS-485"):
        async with run_system(meter_config(transport="rtu", unit_id=0)):
            pass
