"""Register maps: which Modbus registers hold which field of the powermeter var.

A map is a YAML data file (see ``maps/``); adding a meter means adding a file, not code. The file
is validated completely at start-up and every problem is reported as ``file:line: message``, so a
typo in a map stops the module with a clear message instead of producing wrong readings later.

File format::

    description: Eastron SDM630-V2          # free text
    function_code: 4                        # 3 = holding registers, 4 = input registers
    register_offset: 30001                  # PDU address = register - register_offset
    word_order: big                         # 32-bit values: high word first (big) or last (little)
    max_registers_per_read: 80              # largest request the meter accepts
    max_gap_registers: 0                    # unused registers a request may span to save a request
    values:
      energy_Wh_import:
        total: {register: 30073, scale: 1000}   # value * scale = published value (kWh -> Wh)
      voltage_V:
        L1: {register: 30001}                   # type defaults to float32, scale to 1

``values`` mirrors the powermeter type: group (energy_Wh_import, power_W, ...) then phase key.

What the meter can measure at all, from its data sheet (readings outside are refused as
implausible, see everpy/metering.py; a limit left out keeps the wide default of MeterLimits)::

    limits:
      energy_Wh: 9999999900      # largest value of the energy counters (9,999,999.9 kWh)
      power_W: 87000             # |active|, |reactive| power, total and per phase
      current_A: 100
      voltage_V: 289             # |voltage| (phase to neutral, or DC)
      frequency_Hz: 66
      energy_resolution_Wh: 10   # step of the energy counters (integer registers: one count)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from everpy.core.config_errors import ConfigError, ConfigIssue, IssueCollector, show_value
from everpy.core.yamlsrc import load_yaml
from everpy.metering import FLOAT32_RELATIVE_STEP, MeterLimits

MAPS_DIR = Path(__file__).resolve().parent / "maps"

# Which keys each group of the powermeter type has, and which of them the type requires once the
# group is present at all (taken from everpy/definitions/types/powermeter.yaml).
POWERMETER_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "energy_Wh_import": (("total", "L1", "L2", "L3"), ("total",)),
    "energy_Wh_export": (("total", "L1", "L2", "L3"), ("total",)),
    "power_W": (("total", "L1", "L2", "L3"), ("total",)),
    "VAR": (("total", "L1", "L2", "L3"), ("total",)),
    "voltage_V": (("DC", "L1", "L2", "L3"), ()),
    "current_A": (("DC", "L1", "L2", "L3", "N"), ()),
    "frequency_Hz": (("L1", "L2", "L3"), ("L1",)),
}
# Energy counters cannot run backwards below zero; a negative one is a corrupted reply.
NON_NEGATIVE_GROUPS = frozenset({"energy_Wh_import", "energy_Wh_export"})

# struct format (big-endian, per 16-bit word) and register count of each value type.
VALUE_TYPES: dict[str, tuple[str, int]] = {
    "float32": (">f", 2),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "int16": (">h", 1),
    "uint16": (">H", 1),
}
FUNCTION_CODES = {3: "holding registers", 4: "input registers"}
MODBUS_MAX_REGISTERS_PER_READ = 125  # protocol limit for FC3/FC4
TOP_LEVEL_KEYS = {
    "description",
    "function_code",
    "register_offset",
    "word_order",
    "max_registers_per_read",
    "max_gap_registers",
    "values",
    "limits",
}
LIMIT_KEYS = ("energy_Wh", "power_W", "current_A", "voltage_V", "frequency_Hz", "energy_resolution_Wh")
VALUE_KEYS = {"register", "type", "scale"}


@dataclass(frozen=True)
class MappedValue:
    """One field of the powermeter var and where it is read from."""

    group: str  # e.g. "energy_Wh_import"
    key: str  # e.g. "total"
    register: int  # as printed in the meter's manual
    address: int  # PDU address sent on the wire
    value_type: str
    scale: float

    @property
    def register_count(self) -> int:
        return VALUE_TYPES[self.value_type][1]


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus read request covering several mapped values."""

    address: int
    count: int
    values: tuple[MappedValue, ...]


@dataclass(frozen=True)
class RegisterMap:
    name: str
    source: str
    description: str
    function_code: int
    word_order: str
    values: tuple[MappedValue, ...]
    blocks: tuple[ReadBlock, ...]
    limits: MeterLimits


class ReplyValueError(ValueError):
    """The registers arrived but do not hold a plausible value (NaN, infinite, negative counter)."""


def resolve_map_path(name_or_path: str) -> Path:
    """A bare name ("sdm630_v2") means a map shipped in ``maps/``; anything else is a file path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    return MAPS_DIR / f"{name_or_path}.yaml"


def available_maps() -> list[str]:
    return sorted(p.stem for p in MAPS_DIR.glob("*.yaml"))


def load_register_map(name_or_path: str) -> RegisterMap:
    """Load and validate a map; raises ConfigError listing every problem as file:line."""
    path = resolve_map_path(name_or_path)
    if not path.is_file():
        hint = f"shipped maps: {', '.join(available_maps())}"
        raise ConfigError([ConfigIssue(str(path), None, "", f"register map {name_or_path!r} not found; {hint}")])
    data, lines = load_yaml(path)
    issues = IssueCollector(str(path), lines)
    register_map = _parse(path, data, issues)
    issues.raise_if_any()
    assert register_map is not None  # no issues means parsing completed
    return register_map


def _parse(path: Path, data: Any, issues: IssueCollector) -> RegisterMap | None:
    if not isinstance(data, dict):
        issues.add([], "a register map must be a mapping", given=show_value(data))
        return None
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            issues.unknown_key([], str(key), TOP_LEVEL_KEYS)
    function_code = _int_setting(data, "function_code", None, issues)
    if function_code is not None and function_code not in FUNCTION_CODES:
        issues.add(["function_code"], "unsupported function code", expected="3 or 4", given=str(function_code))
    offset = _int_setting(data, "register_offset", 0, issues)
    max_read = _int_setting(data, "max_registers_per_read", MODBUS_MAX_REGISTERS_PER_READ, issues)
    if max_read is not None and not 2 <= max_read <= MODBUS_MAX_REGISTERS_PER_READ:
        issues.add(["max_registers_per_read"], "out of range", expected="2..125", given=str(max_read))
    max_gap = _int_setting(data, "max_gap_registers", 0, issues)
    if max_gap is not None and max_gap < 0:
        issues.add(["max_gap_registers"], "must not be negative", given=str(max_gap))
    word_order = data.get("word_order", "big")
    if word_order not in ("big", "little"):
        issues.add(["word_order"], "unknown word order", expected="big or little", given=show_value(word_order))
    description = data.get("description", "")
    if not isinstance(description, str):
        issues.add(["description"], "must be text", given=show_value(description))

    values = _parse_values(data.get("values"), offset or 0, issues)
    _check_overlaps(values, issues)
    declared_limits = _parse_limits(data.get("limits", {}), issues)
    if issues.issues or function_code is None or max_read is None or max_gap is None:
        return None
    return RegisterMap(
        name=path.stem,
        source=str(path),
        description=description,
        function_code=function_code,
        word_order=word_order,
        values=tuple(values),
        blocks=plan_reads(values, max_read, max_gap),
        limits=_with_counter_resolution(MeterLimits(**declared_limits), values),
    )


def _parse_limits(section: Any, issues: IssueCollector) -> dict[str, float]:
    if not isinstance(section, dict):
        issues.add(["limits"], f"expected a mapping of {', '.join(LIMIT_KEYS)}", given=show_value(section))
        return {}
    limits: dict[str, float] = {}
    for key, value in section.items():
        if key not in LIMIT_KEYS:
            issues.unknown_key(["limits"], str(key), LIMIT_KEYS)
            continue
        lowest_ok = 0 if key == "energy_resolution_Wh" else 1e-9  # a maximum of 0 refuses everything
        if isinstance(value, bool) or not isinstance(value, int | float) or not lowest_ok <= value < math.inf:
            what = "a finite number >= 0" if lowest_ok == 0 else "a finite number above 0"
            issues.add(["limits", key], f"must be {what}", given=show_value(value))
            continue
        limits[key] = float(value)
    return limits


def _with_counter_resolution(limits: MeterLimits, values: Sequence[MappedValue]) -> MeterLimits:
    """Add the step the energy registers themselves impose: one count of an integer register, and
    the precision of a float32 (which coarsens as the counter grows)."""
    energy = [v for v in values if v.group in NON_NEGATIVE_GROUPS]
    integer_step = max((abs(v.scale) for v in energy if v.value_type != "float32"), default=0.0)
    relative = FLOAT32_RELATIVE_STEP if any(v.value_type == "float32" for v in energy) else 0.0
    return replace(
        limits,
        energy_resolution_Wh=max(limits.energy_resolution_Wh, integer_step),
        energy_relative_resolution=relative,
    )


def _int_setting(data: dict, key: str, default: int | None, issues: IssueCollector) -> int | None:
    if key not in data:
        if default is None:
            issues.add([], f"missing required key {key!r}")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        issues.add([key], "must be an integer", given=show_value(value))
        return None
    return value


def _parse_values(section: Any, offset: int, issues: IssueCollector) -> list[MappedValue]:
    if not isinstance(section, dict) or not section:
        issues.add(["values"] if section is not None else [], "missing or empty 'values' section")
        return []
    found: list[MappedValue] = []
    for group, entries in section.items():
        if group not in POWERMETER_GROUPS:
            issues.unknown_key(["values"], str(group), POWERMETER_GROUPS, what="powermeter field")
            continue
        allowed, required = POWERMETER_GROUPS[group]
        if not isinstance(entries, dict) or not entries:
            issues.add(["values", group], f"expected a mapping of {', '.join(allowed)}", given=show_value(entries))
            continue
        for key, spec in entries.items():
            if key not in allowed:
                issues.unknown_key(["values", group], str(key), allowed, what=f"{group} key")
                continue
            value = _parse_value(group, key, spec, offset, issues)
            if value is not None:
                found.append(value)
        for key in required:
            if key not in entries:
                issues.add(["values", group], f"{group} needs '{key}' (the powermeter type requires it)")
    if "energy_Wh_import" not in section:
        issues.add(["values"], "energy_Wh_import.total is required (every powermeter reading carries it)")
    return found


def _parse_value(group: str, key: str, spec: Any, offset: int, issues: IssueCollector) -> MappedValue | None:
    where = ["values", group, key]
    if not isinstance(spec, dict):
        issues.add(where, "expected {register: N, type: ..., scale: ...}", given=show_value(spec))
        return None
    for unknown in set(spec) - VALUE_KEYS:
        issues.unknown_key(where, str(unknown), VALUE_KEYS)
    raw_register = spec.get("register")
    value_type = spec.get("type", "float32")
    scale = spec.get("scale", 1)
    ok = True
    register: int | None = None
    if isinstance(raw_register, bool) or not isinstance(raw_register, int):
        issues.add(where, "'register' must be an integer", given=show_value(raw_register))
        ok = False
    elif not 0 <= raw_register - offset <= 0xFFFF:
        issues.add(
            [*where, "register"],
            "register outside the Modbus address space after subtracting register_offset",
            expected=f"{offset}..{offset + 0xFFFF}",
            given=str(raw_register),
        )
        ok = False
    else:
        register = raw_register
    if value_type not in VALUE_TYPES:
        issues.add(
            [*where, "type"],
            "unknown value type",
            expected=", ".join(VALUE_TYPES),
            given=show_value(value_type),
        )
        ok = False
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale == 0:
        issues.add([*where, "scale"], "must be a finite non-zero number", given=show_value(scale))
        ok = False
    if not ok or register is None:
        return None
    return MappedValue(group, key, register, register - offset, value_type, float(scale))


def _check_overlaps(values: Sequence[MappedValue], issues: IssueCollector) -> None:
    """Two fields may share a register (a single-phase meter's total is its L1) but must not
    partly overlap: that is always a typo and would decode garbage."""
    by_address = sorted(values, key=lambda v: v.address)
    for previous, current in zip(by_address, by_address[1:], strict=False):
        same_value = previous.address == current.address and previous.value_type == current.value_type
        if not same_value and current.address < previous.address + previous.register_count:
            issues.add(
                ["values", current.group, current.key],
                f"register {current.register} overlaps {previous.group}.{previous.key} "
                f"(register {previous.register}, {previous.value_type})",
            )


def plan_reads(values: Sequence[MappedValue], max_registers: int, max_gap: int) -> tuple[ReadBlock, ...]:
    """Group values into as few requests as possible without exceeding the meter's request size
    or reading more than ``max_gap`` unmapped registers in between (some meters answer reads of
    undefined registers with an exception)."""
    blocks: list[ReadBlock] = []
    start = end = 0
    members: list[MappedValue] = []
    for value in sorted(values, key=lambda v: v.address):
        value_end = value.address + value.register_count
        fits = members and value.address - end <= max_gap and max(end, value_end) - start <= max_registers
        if fits:
            members.append(value)
            end = max(end, value_end)
            continue
        if members:
            blocks.append(ReadBlock(start, end - start, tuple(members)))
        start, end, members = value.address, value_end, [value]
    if members:
        blocks.append(ReadBlock(start, end - start, tuple(members)))
    return tuple(blocks)


def decode_value(value: MappedValue, registers: Sequence[int], word_order: str) -> float:
    """Registers of one value -> scaled number; raises ReplyValueError for implausible content."""
    words = list(registers)
    if word_order == "little":
        words.reverse()
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    (number,) = struct.unpack(VALUE_TYPES[value.value_type][0], raw)
    scaled = number * value.scale
    if not math.isfinite(scaled):
        raise ReplyValueError(f"register {value.register} ({value.group}.{value.key}) holds {number!r}")
    if value.group in NON_NEGATIVE_GROUPS and scaled < 0:
        raise ReplyValueError(f"register {value.register} ({value.group}.{value.key}) is negative: {number!r}")
    return scaled


def decode_reading(register_map: RegisterMap, replies: Mapping[int, Sequence[int]]) -> dict[str, dict[str, float]]:
    """Registers of every block (keyed by block address) -> the measurement part of a powermeter
    reading. Every value must decode; one bad value rejects the whole reading."""
    reading: dict[str, dict[str, float]] = {}
    for block in register_map.blocks:
        registers = replies[block.address]
        for value in block.values:
            first = value.address - block.address
            part = registers[first : first + value.register_count]
            reading.setdefault(value.group, {})[value.key] = decode_value(value, part, register_map.word_order)
    return reading
