"""Turning everpy Powermeter readings into OCPP 1.6 sampled values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Reading = dict[str, Any]
# measurand -> (unit, [(phase or None, getter)])
_Getter = Callable[[Reading], float | None]


def _path(*keys: str) -> _Getter:
    def get(reading: Reading) -> float | None:
        value: Any = reading
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return get


def _positive(getter: _Getter, sign: float) -> _Getter:
    def get(reading: Reading) -> float | None:
        value = getter(reading)
        return None if value is None else max(0.0, sign * value)

    return get


_PHASES = ("L1", "L2", "L3")
_MEASURANDS: dict[str, tuple[str, list[tuple[str | None, _Getter]]]] = {
    "Energy.Active.Import.Register": ("Wh", [(None, _path("energy_Wh_import", "total"))]),
    "Energy.Active.Export.Register": ("Wh", [(None, _path("energy_Wh_export", "total"))]),
    "Power.Active.Import": ("W", [(None, _positive(_path("power_W", "total"), 1.0))]),
    "Power.Active.Export": ("W", [(None, _positive(_path("power_W", "total"), -1.0))]),
    "Power.Reactive.Import": ("var", [(None, _path("VAR", "total"))]),
    "Current.Import": ("A", [(p, _path("current_A", p)) for p in _PHASES]),
    "Voltage": ("V", [(f"{p}-N", _path("voltage_V", p)) for p in _PHASES]),
    "Frequency": ("", [(None, _path("frequency_Hz", "L1"))]),
    "Current.Offered": ("A", [(None, _path("offered_current_A"))]),
    "SoC": ("Percent", [(None, _path("soc"))]),
}


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")


def sampled_values(reading: Reading, measurands: list[str], context: str) -> list[dict[str, Any]]:
    """Sampled values of the measurands the reading has; unknown or missing measurands are skipped."""
    values: list[dict[str, Any]] = []
    for measurand in measurands:
        if measurand not in _MEASURANDS:
            continue
        unit, sources = _MEASURANDS[measurand]
        for phase, getter in sources:
            value = getter(reading)
            if value is None:
                continue
            sample: dict[str, Any] = {"value": _format(value), "context": context, "measurand": measurand,
                                      "location": "EV" if measurand == "SoC" else "Outlet"}
            if unit:
                sample["unit"] = unit
            if phase is not None:
                sample["phase"] = phase
            values.append(sample)
    return values


def energy_wh(reading: Reading | None) -> int | None:
    value = None if reading is None else _path("energy_Wh_import", "total")(reading)
    return None if value is None else int(round(value))
