"""One meter: a register map read over a Modbus link, all-or-nothing per poll.

The blocking Modbus I/O runs on one dedicated thread per meter, so a slow or silent meter never
stalls the event loop and requests to the same bus are never interleaved.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from .modbus_link import FailureKind, MeterReadError, ModbusLink, ModbusSettings
from .register_map import RegisterMap, ReplyValueError, decode_reading

Reading = dict[str, dict[str, float]]


class MeterReader:
    def __init__(self, register_map: RegisterMap, settings: ModbusSettings, retries: int) -> None:
        self.register_map = register_map
        self.settings = settings
        self.retries = retries
        self._link = ModbusLink(settings)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modbus-{settings.unit_id}")

    async def read(self) -> Reading:
        """Read every block and decode them; raises MeterReadError if any part fails."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._read_blocking)

    def _read_blocking(self) -> Reading:
        replies = {block.address: self._read_block(block.address, block.count) for block in self.register_map.blocks}
        try:
            return decode_reading(self.register_map, replies)
        except ReplyValueError as exc:
            # A well-framed reply with impossible content (NaN, negative counter) is as unusable as
            # no reply; the next poll asks again.
            raise MeterReadError(FailureKind.INVALID_REPLY, f"{self.settings.describe()}: {exc}") from None

    def _read_block(self, address: int, count: int) -> list[int]:
        # Retrying at once is safe on RTU, whose replies do not name the register they answer: a
        # late reply to a failed attempt answers the same request. After the last attempt the whole
        # poll is abandoned, and pymodbus drains stray input before the next poll's first request.
        attempt = 0
        while True:
            try:
                return self._link.read_registers(self.register_map.function_code, address, count)
            except MeterReadError:
                attempt += 1
                if attempt > self.retries:
                    raise

    async def close(self) -> None:
        """Close the link on the I/O thread (after any read in progress) and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._link.close)
        self._thread.shutdown(wait=False)
