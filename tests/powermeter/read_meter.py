"""Read a meter once with the GenericPowermeter driver and print the outcome as one JSON line.

Run by test_pymodbus_compat.py under another interpreter (an older pymodbus), so it only uses the
driver layer: `python read_meter.py '<ModbusSettings as JSON>' <map name>`.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pymodbus
from everpy_modules.GenericPowermeter.meter_reader import MeterReader
from everpy_modules.GenericPowermeter.modbus_link import MeterReadError, ModbusSettings
from everpy_modules.GenericPowermeter.register_map import load_register_map


async def read(settings: ModbusSettings, map_name: str) -> dict:
    reader = MeterReader(load_register_map(map_name), settings, retries=0)
    try:
        return {"pymodbus": pymodbus.__version__, "reading": await reader.read()}
    except MeterReadError as exc:
        return {"pymodbus": pymodbus.__version__, "failure": exc.kind.name, "detail": exc.detail}
    finally:
        await reader.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(read(ModbusSettings(**json.loads(sys.argv[1])), sys.argv[2]))))
