"""A simulated meter for the tests: a real pymodbus server serving a register image, reachable over
TCP or as Modbus RTU over a real pty pair, with a wire in between that can break replies.

    image = MeterImage.for_map(load_register_map("sdm630_v2"))     # distinct value per field
    async with tcp_meter(image) as port: ...                        # pymodbus TCP server
    async with rtu_meter(image) as (tty_path, wire): ...            # pymodbus serial server on a pty
        wire.fault = WireFault.BAD_CRC                              # corrupt replies from now on

The RTU path is: client -> /dev/pts/B | bridge | /dev/pts/A -> pymodbus ModbusSerialServer. The
bridge copies bytes between the two pty masters (what socat would do) and, when told, rewrites or
swallows frames: that is how bad CRCs and wrong byte counts reach the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import struct
import tty
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from everpy_modules.GenericPowermeter.register_map import MappedValue, RegisterMap
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

try:  # pymodbus >= 3.10: a device is a SimDevice with an action hook
    from pymodbus.constants import ExcCodes
    from pymodbus.simulator import DataType, SimData, SimDevice

    LEGACY_DATASTORE = False
except ImportError:  # pymodbus 3.6 (Yocto scarthgap): slave contexts holding data blocks
    from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext
    from pymodbus.datastore.store import BaseModbusDataBlock
    from pymodbus.pdu import ExceptionResponse

    LEGACY_DATASTORE = True

REGISTER_SPACE = 25_000  # PDU addresses that exist: enough for the SDM (0..357) and Klefr (20482..24611) maps
UNIT_ID = 1


def float_words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


@dataclass
class MeterImage:
    """Register contents plus server-side faults, shared with the running server."""

    words: dict[int, int] = field(default_factory=dict)  # PDU address -> register; unset = 0
    exception_code: int | None = None  # answer every read with this Modbus exception
    requests: int = 0
    _request_seen: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def for_map(cls, register_map: RegisterMap) -> tuple[MeterImage, dict[str, dict[str, float]]]:
        """An image with a different, exactly representable value in every mapped register, and the
        powermeter fields the driver must publish for it. The values are small enough to be within
        every shipped map's limits (1..8 A, V, kWh, kW), so the driver publishes them."""
        image = cls()
        expected: dict[str, dict[str, float]] = {}
        addresses = sorted({value.address for value in register_map.values})
        for value in register_map.values:
            raw = 1.0 + 0.25 * addresses.index(value.address)  # multiples of 1/4 survive float32
            image.set_float(value, raw)
            expected.setdefault(value.group, {})[value.key] = raw * value.scale
        return image, expected

    def set_float(self, value: MappedValue, raw: float) -> None:
        self.words[value.address], self.words[value.address + 1] = float_words(raw)

    def answer(self, address: int, count: int) -> list[int] | int:
        """Registers for one read request, or the Modbus exception code to answer with."""
        self.requests += 1
        self._request_seen.set()
        if self.exception_code is not None:
            return self.exception_code
        return [self.words.get(a, 0) for a in range(address, address + count)]

    async def wait_for_requests(self, total: int, timeout: float = 15.0) -> None:
        """Wait until the server has answered ``total`` requests since start (bounded)."""
        async with asyncio.timeout(timeout):
            while self.requests < total:
                self._request_seen.clear()
                await self._request_seen.wait()

    def server_context(self) -> object:
        """What a pymodbus server of the installed version takes as its datastore."""
        return _legacy_context(self) if LEGACY_DATASTORE else _sim_device(self)


def _sim_device(image: MeterImage) -> SimDevice:
    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        reply = image.answer(address, count)
        if isinstance(reply, int):
            return ExcCodes(reply)
        # current_registers is the whole block (first element = start_address); fill what is read.
        current_registers[address - start_address : address - start_address + count] = reply
        return None

    def registers() -> list[SimData]:
        return [SimData(0, values=[0] * REGISTER_SPACE, datatype=DataType.REGISTERS)]

    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    # Separate blocks (coils, discrete inputs, holding, input) so FC3 and FC4 both see the image.
    return SimDevice(id=UNIT_ID, simdata=(bits, list(bits), registers(), registers()), action=action)


def _legacy_context(image: MeterImage) -> ModbusServerContext:
    class ImageBlock(BaseModbusDataBlock):
        """pymodbus 3.6 data block reading the image; addresses arrive as PDU address + 1."""

        def __init__(self, function_code: int) -> None:
            self.function_code = function_code
            self.address, self.default_value, self.values = 1, 0, {}

        def validate(self, address: int, count: int = 1) -> bool:
            return True

        def getValues(self, address: int, count: int = 1) -> list[int] | ExceptionResponse:
            reply = image.answer(address - 1, count)
            return ExceptionResponse(self.function_code, reply) if isinstance(reply, int) else reply

        def setValues(self, address: int, values: list[int]) -> None:
            raise NotImplementedError("the simulated meter is read-only")

        def reset(self) -> None:
            pass

    slave = ModbusSlaveContext(hr=ImageBlock(3), ir=ImageBlock(4))
    return ModbusServerContext(slaves={UNIT_ID: slave}, single=False)


@contextlib.asynccontextmanager
async def tcp_meter(image: MeterImage, port: int = 0) -> AsyncIterator[int]:
    """A pymodbus Modbus TCP server on 127.0.0.1 (a free port unless given); yields the port."""
    server = ModbusTcpServer(image.server_context(), address=("127.0.0.1", port))
    await server.listen()
    try:
        yield server.transport.sockets[0].getsockname()[1]
    finally:
        await server.shutdown()


class WireFault(enum.Enum):
    NONE = "none"
    SILENT = "silent"  # cable cut: requests never reach the meter
    BAD_CRC = "bad_crc"  # reply with its CRC flipped
    SHORT_REPLY = "short_reply"  # well-formed reply with one register less than asked for
    BYTE_COUNT_MISMATCH = "byte_count_mismatch"  # byte count field says more than the frame holds


def crc16_modbus(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def _open_raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class PtyWire:
    """Byte bridge between two pty masters that can corrupt RTU replies frame by frame."""

    def __init__(self) -> None:
        self.fault = WireFault.NONE
        self.corrupt_replies_left: int | None = None  # with BAD_CRC: heal after this many replies
        self.meter_master, self._meter_slave, self.meter_path = _open_raw_pty()
        self.client_master, self._client_slave, self.client_path = _open_raw_pty()
        self._reply_buffer = b""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.client_master, self._from_client)
        loop.add_reader(self.meter_master, self._from_meter)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self.client_master, self.meter_master):
            loop.remove_reader(fd)
        for fd in (self.client_master, self._client_slave, self.meter_master, self._meter_slave):
            os.close(fd)

    def _from_client(self) -> None:
        data = _read_available(self.client_master)
        if data and self.fault is not WireFault.SILENT:
            os.write(self.meter_master, data)

    def _from_meter(self) -> None:
        self._reply_buffer += _read_available(self.meter_master)
        while (frame := self._take_reply_frame()) is not None:
            os.write(self.client_master, self._mangle(frame))

    def _take_reply_frame(self) -> bytes | None:
        """Cut one complete FC3/FC4 reply (or exception reply) off the buffer."""
        buffer = self._reply_buffer
        if len(buffer) < 3:
            return None
        length = 5 if buffer[1] & 0x80 else 3 + buffer[2] + 2
        if len(buffer) < length:
            return None
        self._reply_buffer = buffer[length:]
        return buffer[:length]

    def _mangle(self, frame: bytes) -> bytes:
        if self.fault is WireFault.BAD_CRC:
            if self.corrupt_replies_left is not None:
                self.corrupt_replies_left -= 1
                if self.corrupt_replies_left <= 0:
                    self.fault, self.corrupt_replies_left = WireFault.NONE, None
            return frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if frame[1] & 0x80:
            return frame
        if self.fault is WireFault.SHORT_REPLY:
            body = bytes([frame[0], frame[1], frame[2] - 2]) + frame[3:-4]
            return body + crc16_modbus(body)
        if self.fault is WireFault.BYTE_COUNT_MISMATCH:
            body = bytes([frame[0], frame[1], frame[2] + 4]) + frame[3:-2]
            return body + crc16_modbus(body)
        return frame


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


@contextlib.asynccontextmanager
async def rtu_meter(image: MeterImage, baudrate: int = 9600) -> AsyncIterator[tuple[str, PtyWire]]:
    """A pymodbus serial (RTU) server on one pty, bridged to another; yields (client tty, wire)."""
    wire = PtyWire()
    wire.start()
    server = ModbusSerialServer(image.server_context(), port=wire.meter_path, baudrate=baudrate)
    serving = asyncio.ensure_future(server.serve_forever())
    try:
        yield wire.client_path, wire
    finally:
        await server.shutdown()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        wire.close()


Mangle = Callable[[bytes], bytes]


@contextlib.asynccontextmanager
async def mangling_tcp_proxy(backend_port: int, mangle: Mangle) -> AsyncIterator[int]:
    """A Modbus TCP proxy on a free port whose replies (whole MBAP frames) pass through ``mangle``."""

    async def pipe_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)

    async def pipe_replies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readexactly(7)  # transaction, protocol, length, unit
            body = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
            writer.write(mangle(header + body))

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        meter_reader, meter_writer = await asyncio.open_connection("127.0.0.1", backend_port)
        pipes = [
            asyncio.ensure_future(pipe_requests(client_reader, meter_writer)),
            asyncio.ensure_future(pipe_replies(meter_reader, client_writer)),
        ]
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for writer in (client_writer, meter_writer):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
