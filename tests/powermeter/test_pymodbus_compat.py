"""The driver under the pymodbus the Yocto layer ships (3.6.7 on scarthgap), in a separate process,
against this interpreter's pymodbus server. Opt-in: set EVERPY_OLD_PYMODBUS_PYTHON to an interpreter
that has that pymodbus plus pyserial, PyYAML, jsonschema and pluggy, e.g.

    python -m venv /tmp/pm367 && /tmp/pm367/bin/pip install pymodbus==3.6.7 pyserial pyyaml jsonschema pluggy
    EVERPY_OLD_PYMODBUS_PYTHON=/tmp/pm367/bin/python pytest tests/powermeter/test_pymodbus_compat.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from everpy_modules.GenericPowermeter.modbus_link import ModbusSettings
from everpy_modules.GenericPowermeter.register_map import load_register_map

from .meter_sim import MeterImage, WireFault, float_words, rtu_meter, tcp_meter

OLD_PYTHON = os.environ.get("EVERPY_OLD_PYMODBUS_PYTHON", "")
pytestmark = pytest.mark.skipif(not OLD_PYTHON, reason="EVERPY_OLD_PYMODBUS_PYTHON not set")
ROOT = Path(__file__).resolve().parents[2]


async def read_with_old_pymodbus(settings: ModbusSettings, tmp_path: Path) -> dict[str, Any]:
    # The other interpreter has no editable install: expose modules/ as everpy_modules by a link.
    tmp_path.mkdir()
    (tmp_path / "everpy_modules").symlink_to(ROOT / "modules", target_is_directory=True)
    process = await asyncio.create_subprocess_exec(
        OLD_PYTHON,
        str(Path(__file__).with_name("read_meter.py")),
        json.dumps(asdict(settings)),
        "sdm630_v2",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0
    return json.loads(stdout.decode().strip().splitlines()[-1])


@pytest.fixture
def sdm630() -> tuple[MeterImage, dict]:
    return MeterImage.for_map(load_register_map("sdm630_v2"))


async def test_old_pymodbus_reads_tcp_and_reports_nan(sdm630: tuple, tmp_path: Path) -> None:
    image, expected = sdm630
    async with tcp_meter(image) as port:
        settings = ModbusSettings("tcp", 1, 0.5, host="127.0.0.1", port=port)
        outcome = await read_with_old_pymodbus(settings, tmp_path / "a")
        assert outcome["pymodbus"] != sys.modules["pymodbus"].__version__
        assert outcome["reading"] == expected
        image.exception_code = 2
        assert (await read_with_old_pymodbus(settings, tmp_path / "b"))["failure"] == "EXCEPTION_REPLY"
        image.exception_code = None
        image.words[72], image.words[73] = float_words(float("nan"))
        assert (await read_with_old_pymodbus(settings, tmp_path / "c"))["failure"] == "INVALID_REPLY"
    outcome = await read_with_old_pymodbus(settings, tmp_path / "d")  # server gone
    assert outcome["failure"] == "NO_CONNECTION" and "127.0.0.1" in outcome["detail"]


async def test_old_pymodbus_reads_rtu_over_a_pty(sdm630: tuple, tmp_path: Path) -> None:
    image, expected = sdm630
    async with rtu_meter(image) as (tty_path, wire):
        settings = ModbusSettings("rtu", 1, 0.5, serial_port=tty_path, baudrate=9600)
        assert (await read_with_old_pymodbus(settings, tmp_path / "a"))["reading"] == expected
        for fault, kind in [
            (WireFault.BAD_CRC, "NO_REPLY"),
            (WireFault.SHORT_REPLY, "INVALID_REPLY"),
            (WireFault.BYTE_COUNT_MISMATCH, "NO_REPLY"),
            (WireFault.SILENT, "NO_REPLY"),
        ]:
            wire.fault = fault
            assert (await read_with_old_pymodbus(settings, tmp_path / fault.value))["failure"] == kind, fault
