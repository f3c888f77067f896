"""Register map files: shipped maps hold the documented registers, broken maps are refused at
start-up with every problem named as file:line."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from everpy_modules.GenericPowermeter.register_map import (
    MappedValue,
    available_maps,
    decode_value,
    load_register_map,
    plan_reads,
)

from everpy.core.config_errors import ConfigError
from everpy.metering import MeterLimits


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "meter.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def field_registers(map_name: str) -> dict[str, int]:
    return {f"{v.group}.{v.key}": v.register for v in load_register_map(map_name).values}


def test_shipped_maps() -> None:
    assert {"sdm630_v2", "sdm72dm_v2", "sdm230", "klefr_693x_694x"} <= set(available_maps())


def test_sdm630_map_matches_eastron_documentation() -> None:
    sdm630 = load_register_map("sdm630_v2")
    assert sdm630.function_code == 4
    registers = field_registers("sdm630_v2")
    assert registers["energy_Wh_import.total"] == 30073
    assert [registers[f"energy_Wh_import.L{n}"] for n in (1, 2, 3)] == [30347, 30349, 30351]
    assert registers["power_W.total"] == 30053
    assert [registers[f"voltage_V.L{n}"] for n in (1, 2, 3)] == [30001, 30003, 30005]
    assert [registers[f"current_A.L{n}"] for n in (1, 2, 3)] == [30007, 30009, 30011]
    assert registers["frequency_Hz.L1"] == 30071
    by_field = {f"{v.group}.{v.key}": v for v in sdm630.values}
    assert by_field["energy_Wh_import.total"].address == 72  # FC4 PDU address = register - 30001
    assert by_field["energy_Wh_import.total"].scale == 1000  # kWh -> Wh


def test_klefr_map_uses_holding_registers() -> None:
    klefr = load_register_map("klefr_693x_694x")
    assert klefr.function_code == 3
    assert field_registers("klefr_693x_694x")["energy_Wh_import.total"] == 24588


def test_broken_map_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        description: broken on purpose
        function_code: 5
        word_order: middle
        colour: red
        values:
          energy_Wh_import:
            total: {register: 30073, scale: 1000}
            L4: {register: 30347}
          power_W:
            L1: {register: 30013}
          voltage_V:
            L1: {register: 30074}
            L2: {register: 30003, type: float64}
          current_A:
            L1: {register: abc}
          frequency_Hz:
            L1: {register: 30071, scale: 0}
          temperature_C:
            total: {register: 30100}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_register_map(str(path))
    text = str(caught.value)
    expected = [
        (2, "function_code", "unsupported function code"),
        (3, "word_order", "unknown word order"),
        (4, "colour", "unknown key 'colour'"),
        (8, "L4", "unknown energy_Wh_import key 'L4'"),
        (9, "power_W", "power_W needs 'total'"),
        (12, "voltage_V.L1", "overlaps energy_Wh_import.total"),
        (13, "voltage_V.L2.type", "unknown value type"),
        (15, "current_A.L1", "'register' must be an integer"),
        (17, "frequency_Hz.L1.scale", "finite non-zero"),
        (18, "temperature_C", "unknown powermeter field 'temperature_C'"),
    ]
    for line, where, message in expected:
        matching = [row for row in text.splitlines() if row.startswith(f"{path}:{line}:")]
        assert matching, f"nothing reported for line {line} ({message}) in:\n{text}"
        assert where in matching[0] and message in matching[0], matching[0]
    assert len(caught.value.issues) == len(expected)


def test_map_without_import_energy_is_refused(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        function_code: 4
        values:
          voltage_V:
            L1: {register: 1}
        """,
    )
    with pytest.raises(ConfigError, match=r"meter.yaml:2: values: energy_Wh_import.total is required"):
        load_register_map(str(path))


def test_register_outside_the_address_space_after_offset(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        function_code: 4
        register_offset: 30001
        values:
          energy_Wh_import:
            total: {register: 73}
        """,
    )
    with pytest.raises(ConfigError, match=r"meter.yaml:5: .*register outside the Modbus address space"):
        load_register_map(str(path))


def test_malformed_yaml_and_unknown_map_names(tmp_path: Path) -> None:
    path = write_map(tmp_path, "values: [unclosed\n")
    with pytest.raises(ConfigError, match=r"meter.yaml:\d+: malformed YAML"):
        load_register_map(str(path))
    with pytest.raises(ConfigError, match=r"register map 'sdm999' not found; shipped maps: .*sdm630_v2"):
        load_register_map("sdm999")


def test_user_map_with_integers_and_little_endian_words(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        function_code: 3
        word_order: little
        values:
          energy_Wh_import:
            total: {register: 100, type: uint32, scale: 10}
          power_W:
            total: {register: 102, type: int16}
        """,
    )
    user_map = load_register_map(str(path))
    energy, power = sorted(user_map.values, key=lambda v: v.address)
    assert decode_value(energy, [0x0002, 0x0001], "little") == ((1 << 16) + 2) * 10
    assert decode_value(power, [0xFFFE], "little") == -2
    assert [(b.address, b.count) for b in user_map.blocks] == [(100, 3)]


def value_at(address: int) -> MappedValue:
    return MappedValue("voltage_V", "L1", address, address, "float32", 1.0)


def test_read_planning_respects_request_size_and_gaps() -> None:
    values = [value_at(a) for a in (0, 2, 4, 10, 40, 42)]
    assert [(b.address, b.count) for b in plan_reads(values, 125, 0)] == [(0, 6), (10, 2), (40, 4)]
    assert [(b.address, b.count) for b in plan_reads(values, 125, 4)] == [(0, 12), (40, 4)]
    assert [(b.address, b.count) for b in plan_reads(values, 4, 100)] == [(0, 4), (4, 2), (10, 2), (40, 4)]


def test_shipped_maps_declare_their_meters_limits() -> None:
    sdm630 = load_register_map("sdm630_v2").limits
    assert (sdm630.power_W, sdm630.current_A, sdm630.voltage_V) == (86_700, 100, 289)
    assert sdm630.energy_Wh == 9_999_999_900  # 9,999,999.9 kWh
    assert sdm630.energy_relative_resolution == 2.0**-23  # float32 counters
    assert load_register_map("sdm230").limits.power_W == 27_600
    assert load_register_map("klefr_693x_694x").limits == replace(
        MeterLimits(), energy_relative_resolution=2.0**-23
    )  # no limits section: the defaults


def test_integer_counters_allow_one_count_as_their_step(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        function_code: 3
        limits: {power_W: 22000, energy_resolution_Wh: 1}
        values:
          energy_Wh_import:
            total: {register: 100, type: uint32, scale: 100}
        """,
    )
    limits = load_register_map(str(path)).limits
    assert (limits.power_W, limits.energy_resolution_Wh, limits.energy_relative_resolution) == (22_000, 100, 0)


def test_broken_limits_are_listed_with_their_lines(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """\
        function_code: 4
        limits:
          power_W: 0
          current_A: lots
          voltage: 300
          energy_resolution_Wh: -1
        values:
          energy_Wh_import:
            total: {register: 1}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_register_map(str(path))
    text = str(caught.value)
    assert "meter.yaml:3: limits.power_W: must be a finite number above 0" in text
    assert "meter.yaml:4: limits.current_A: must be a finite number above 0" in text
    assert "meter.yaml:5: " in text and "unknown key 'voltage'" in text and "voltage_V" in text
    assert "meter.yaml:6: limits.energy_resolution_Wh: must be a finite number >= 0" in text
    assert len(caught.value.issues) == 4
