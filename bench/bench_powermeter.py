"""GenericPowermeter poll cycle vs the raw pymodbus reads it is made of.

Floor: the same read requests (one per register block of the SDM630 map) issued with a bare
pymodbus sync client, nothing else. Measured: one `MeterReader.read()` (worker thread hop, the
same requests, reply checks, float decoding). Both against the same in-process pymodbus server,
over TCP and as RTU over a pty pair. Run: `python bench/bench_powermeter.py` (prints a table).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pymodbus.client import ModbusSerialClient, ModbusTcpClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from everpy_modules.GenericPowermeter.meter_reader import MeterReader  # noqa: E402
from everpy_modules.GenericPowermeter.modbus_link import ModbusSettings  # noqa: E402
from everpy_modules.GenericPowermeter.register_map import RegisterMap, load_register_map  # noqa: E402

from tests.powermeter.meter_sim import MeterImage, rtu_meter, tcp_meter  # noqa: E402

CYCLES = 300
WARMUP = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(cycle: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(CYCLES + WARMUP):
        start = time.perf_counter()
        await cycle()
        if i >= WARMUP:
            samples.append(time.perf_counter() - start)
    return samples


def raw_cycle(client: ModbusTcpClient | ModbusSerialClient, register_map: RegisterMap) -> None:
    for block in register_map.blocks:
        reply = client.read_input_registers(block.address, count=block.count, device_id=1)
        assert not reply.isError() and len(reply.registers) == block.count


async def measure(
    client: ModbusTcpClient | ModbusSerialClient, settings: ModbusSettings, register_map: RegisterMap
) -> tuple[list[float], list[float]]:
    client.connect()
    floor = await timed(lambda: asyncio.to_thread(raw_cycle, client, register_map))
    client.close()
    reader = MeterReader(register_map, settings, retries=0)
    driver = await timed(reader.read)
    await reader.close()
    return floor, driver


async def main() -> None:
    register_map = load_register_map("sdm630_v2")
    image, _ = MeterImage.for_map(register_map)
    rows = []
    async with tcp_meter(image) as port:
        settings = ModbusSettings("tcp", 1, 1.0, host="127.0.0.1", port=port)
        rows.append(("TCP", *await measure(ModbusTcpClient("127.0.0.1", port=port), settings, register_map)))
    async with rtu_meter(image) as (tty_path, _wire):
        settings = ModbusSettings("rtu", 1, 1.0, serial_port=tty_path, baudrate=115200)
        client = ModbusSerialClient(tty_path, baudrate=115200, timeout=1.0)
        rows.append(("RTU/pty", *await measure(client, settings, register_map)))

    print(f"SDM630-V2 map, {len(register_map.blocks)} requests per poll, {CYCLES} polls each (ms per poll)")
    print(f"{'transport':<10}{'raw p50':>10}{'raw p99':>10}{'driver p50':>12}{'driver p99':>12}{'ratio p50':>11}")
    for name, floor, driver in rows:
        raw50, drv50 = statistics.median(floor) * 1e3, statistics.median(driver) * 1e3
        print(
            f"{name:<10}{raw50:>10.2f}{percentile(floor, 0.99) * 1e3:>10.2f}"
            f"{drv50:>12.2f}{percentile(driver, 0.99) * 1e3:>12.2f}{drv50 / raw50:>11.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
