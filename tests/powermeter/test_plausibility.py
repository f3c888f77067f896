"""GenericPowermeter on the real bus reading a real pymodbus server that returns readings the meter
cannot have measured: 1e30 Wh, an energy register going backwards, a jump. Nothing implausible
is published, powermeter/ImplausibleReading is raised once and cleared when plausible readings
return; a backwards counter is only taken as the new level by a restarted driver."""

from __future__ import annotations

from typing import Any

import pytest
from everpy_modules.GenericPowermeter.register_map import load_register_map

from everpy.core.config_errors import ConfigError
from everpy.core.exceptions import ModuleStartupError
from everpy.testing import Recorder, RunningSystem, run_system

from .meter_sim import MeterImage, float_words, tcp_meter
from .test_module import measurements, tcp_config, watch_meter

IMPLAUSIBLE = "powermeter/ImplausibleReading"
SDM630 = load_register_map("sdm630_v2")
POLLS_WHILE_REFUSED = 5


def register_of(group: str, key: str) -> int:
    """PDU address of one field in the SDM630 map."""
    return next(v.address for v in SDM630.values if (v.group, v.key) == (group, key))


IMPORT_TOTAL = register_of("energy_Wh_import", "total")


def set_kwh(image: MeterImage, address: int, kwh: float) -> None:
    image.words[address], image.words[address + 1] = float_words(kwh)


def meter_config(port: int, **options: Any) -> dict[str, Any]:
    config = tcp_config(port)
    config["active_modules"]["meter"]["config_module"].update(options)
    return config


def implausible(errors: Recorder) -> list[dict[str, Any]]:
    return [e for e in errors.values if e["type"] == IMPLAUSIBLE]


async def wait_for_implausible(errors: Recorder, state: str) -> dict[str, Any]:
    return await errors.wait_for(lambda e: e["type"] == IMPLAUSIBLE and e["state"] == state, timeout=15)


async def polls_pass(system: RunningSystem, image: MeterImage, polls: int) -> None:
    """Wait until the meter has answered ``polls`` more whole polls and their results are on the bus."""
    await image.wait_for_requests(image.requests + (polls + 1) * len(SDM630.blocks))
    await system.flush()


def assert_all_plausible(published: list[dict[str, Any]]) -> None:
    """Every reading that reached the bus is in range and no energy counter ever went down."""
    limits = SDM630.limits
    previous: dict[str, dict[str, float]] = {}
    for reading in published:
        for group in ("energy_Wh_import", "energy_Wh_export"):
            for key, value in reading[group].items():
                assert 0 <= value <= limits.energy_Wh, f"{group}.{key} = {value} published"
                assert value >= previous.get(group, {}).get(key, 0.0), f"{group}.{key} went back to {value}"
        previous = {g: dict(reading[g]) for g in ("energy_Wh_import", "energy_Wh_export")}
        assert abs(reading["power_W"]["total"]) <= limits.power_W


async def refused_then_recovered(
    system: RunningSystem, image: MeterImage, address: int, bad_kwh: float, good_kwh: float
) -> dict[str, Any]:
    """Put ``bad_kwh`` into a counter register: the error is raised once and no reading published
    over several polls; then ``good_kwh``: cleared, readings again. Returns the raised error."""
    readings, errors = await watch_meter(system)
    await readings.next(timeout=15)
    set_kwh(image, address, bad_kwh)
    raised = await wait_for_implausible(errors, "Active")
    await polls_pass(system, image, 1)  # readings of polls before the change have arrived
    readings.drain()
    await polls_pass(system, image, POLLS_WHILE_REFUSED)
    assert readings.drain() == []
    assert [e["state"] for e in implausible(errors)] == ["Active"]
    assert [e["type"] for e in system.instances["meter"].active_errors("main")] == [IMPLAUSIBLE]

    set_kwh(image, address, good_kwh)
    await wait_for_implausible(errors, "ClearedByModule")
    fresh = await readings.next(timeout=15)
    if address == IMPORT_TOTAL:
        assert fresh["energy_Wh_import"]["total"] == pytest.approx(good_kwh * 1000)
    assert [e["state"] for e in implausible(errors)] == ["Active", "ClearedByModule"]
    assert not system.instances["meter"].active_errors("main")
    assert_all_plausible(readings.values)
    return raised


async def test_1e30_wh_is_refused_raised_once_and_cleared() -> None:
    image, expected = MeterImage.for_map(SDM630)
    start_kwh = expected["energy_Wh_import"]["total"] / 1000
    async with tcp_meter(image) as port, run_system(meter_config(port)) as system:
        raised = await refused_then_recovered(system, image, IMPORT_TOTAL, 1e27, start_kwh)  # 1e27 kWh = 1e30 Wh
        assert "energy_Wh_import.total = 1e+30 is outside what the meter can measure" in raised["message"]


@pytest.mark.parametrize(
    "field",
    [("energy_Wh_import", "total"), ("energy_Wh_export", "L2")],
    ids=["import-total", "export-L2"],
)
async def test_energy_register_going_backwards_is_refused_until_it_is_back(field: tuple[str, str]) -> None:
    image, _expected = MeterImage.for_map(SDM630)
    address = register_of(*field)
    set_kwh(image, address, 1.045)  # 1045 Wh
    async with tcp_meter(image) as port, run_system(meter_config(port)) as system:
        raised = await refused_then_recovered(system, image, address, 0.5, 1.046)
        assert f"{'.'.join(field)} went backwards from 1045 to 500" in raised["message"]


async def test_only_a_restarted_driver_takes_a_counter_that_stays_backwards() -> None:
    """A swapped or reset meter: refused for as long as it stays at the lower level (the error
    stays visible), and the new baseline of a restarted driver."""
    image, _expected = MeterImage.for_map(SDM630)
    set_kwh(image, IMPORT_TOTAL, 1.045)
    async with tcp_meter(image) as port:
        async with run_system(meter_config(port)) as system:
            readings, errors = await watch_meter(system)
            await readings.next(timeout=15)
            set_kwh(image, IMPORT_TOTAL, 0.5)
            await wait_for_implausible(errors, "Active")
            await polls_pass(system, image, 1)
            readings.drain()
            await polls_pass(system, image, 3 * POLLS_WHILE_REFUSED)
            assert readings.drain() == []
            assert [e["state"] for e in implausible(errors)] == ["Active"]
        async with run_system(meter_config(port)) as system:
            readings, errors = await watch_meter(system)
            first = await readings.next(timeout=15)
            assert first["energy_Wh_import"]["total"] == 500.0
            await polls_pass(system, image, 2)
            assert implausible(errors) == []


async def test_energy_jump_faster_than_max_power_is_refused() -> None:
    image, expected = MeterImage.for_map(SDM630)
    start_kwh = expected["energy_Wh_import"]["total"] / 1000
    async with tcp_meter(image) as port, run_system(meter_config(port)) as system:
        # 100 kWh within a 0.1 s poll: the SDM630's 86.7 kW would need over an hour.
        raised = await refused_then_recovered(system, image, IMPORT_TOTAL, start_kwh + 100, start_kwh + 0.0625)
        assert "energy_Wh_import.total rose 100000 Wh" in raised["message"]


async def test_max_power_option_tightens_the_jump_check() -> None:
    """62.5 Wh in one 0.1 s poll is possible for the SDM630 (86.7 kW with a 2 s margin) but not
    for an 11 kW charger: with max_power_W 11000 it is refused (until ~12 s have passed, when
    11 kW could have delivered it)."""
    image, expected = MeterImage.for_map(SDM630)
    start_kwh = expected["energy_Wh_import"]["total"] / 1000
    async with tcp_meter(image) as port:
        async with run_system(meter_config(port)) as system:
            readings, errors = await watch_meter(system)
            await readings.next(timeout=15)
            set_kwh(image, IMPORT_TOTAL, start_kwh + 0.0625)
            await readings.wait_for(lambda r: r["energy_Wh_import"]["total"] == (start_kwh + 0.0625) * 1000, 15)
            assert implausible(errors) == []
        set_kwh(image, IMPORT_TOTAL, start_kwh)
        async with run_system(meter_config(port, max_power_W=11000)) as system:
            readings, errors = await watch_meter(system)
            await readings.next(timeout=15)
            set_kwh(image, IMPORT_TOTAL, start_kwh + 0.0625)
            raised = await wait_for_implausible(errors, "Active")
            assert "more than 11000 W can deliver" in raised["message"]
            set_kwh(image, IMPORT_TOTAL, start_kwh)
            await wait_for_implausible(errors, "ClearedByModule")
            assert measurements(await readings.next(timeout=15)) == expected
            assert_all_plausible(readings.values)


async def test_limit_option_above_the_meters_range_stops_startup() -> None:
    config = meter_config(502, host="127.0.0.1", max_power_W=100000)
    with pytest.raises(ModuleStartupError, match=r"max_power_W: power_W 100000 is above what the meter can measure"):
        async with run_system(config):
            pass


async def test_limit_options_out_of_their_range_are_refused_by_the_config_check() -> None:
    config = meter_config(502, max_power_W=-1, max_voltage_V=2000, timing_margin_ms=70000)
    with pytest.raises(ConfigError) as caught:
        async with run_system(config):
            pass
    text = str(caught.value)
    assert "max_power_W: value out of range (expected >= 0, given: -1)" in text
    assert "max_voltage_V: value out of range (expected <= 1500, given: 2000)" in text
    assert "timing_margin_ms: value out of range (expected <= 60000, given: 70000)" in text
