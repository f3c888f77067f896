"""The one place that talks to pymodbus.

Uses the synchronous clients only (run in a worker thread by the caller): their connect/read/close
behaviour is the same from pymodbus 3.6.7 (Yocto scarthgap) to 3.16, unlike the async clients'
reconnect logic. The API differences we touch: the unit id keyword (``slave=`` up to 3.9,
``device_id=`` since, see :func:`_unit_keyword`) and I/O errors being returned instead of raised
before 3.7 (see :meth:`ModbusLink.read_registers`).

Every failure leaves as :class:`MeterReadError` with a kind, never as a half-read value.
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass
from typing import Any

import serial
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

# Modbus exception codes worth naming in a log line.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target did not respond",
}


class FailureKind(enum.Enum):
    NO_CONNECTION = "no connection"  # TCP connect refused / serial port cannot be opened
    NO_REPLY = "no reply"  # timeout, including replies dropped by pymodbus for a bad CRC
    EXCEPTION_REPLY = "exception reply"  # the meter answered with a Modbus exception code
    INVALID_REPLY = "invalid reply"  # a reply that does not match the request or holds garbage


class MeterReadError(Exception):
    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class ModbusSettings:
    transport: str  # "tcp" or "rtu"
    unit_id: int
    timeout_s: float
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    def describe(self) -> str:
        if self.transport == "tcp":
            return f"unit {self.unit_id} at {self.host}:{self.port}"
        return f"unit {self.unit_id} on {self.serial_port} ({self.baudrate} 8{self.parity}{self.stopbits})"


def _unit_keyword(read_method: Any) -> str:
    return "device_id" if "device_id" in inspect.signature(read_method).parameters else "slave"


class ModbusLink:
    """A blocking Modbus client that reconnects on demand. Not thread-safe: one caller thread."""

    def __init__(self, settings: ModbusSettings) -> None:
        self.settings = settings
        self._client: ModbusTcpClient | ModbusSerialClient | None = None
        self._unit_keyword = ""

    def _open(self) -> ModbusTcpClient | ModbusSerialClient:
        s = self.settings
        # retries=0: the reader retries itself, uniformly for every kind of failure.
        if s.transport == "tcp":
            client: ModbusTcpClient | ModbusSerialClient = ModbusTcpClient(
                s.host, port=s.port, timeout=s.timeout_s, retries=0
            )
        else:
            client = ModbusSerialClient(
                s.serial_port,
                baudrate=s.baudrate,
                bytesize=8,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=s.timeout_s,
                retries=0,
            )
        try:
            connected = client.connect()
        except (OSError, serial.SerialException) as exc:
            raise MeterReadError(FailureKind.NO_CONNECTION, f"{s.describe()}: {exc}") from None
        if not connected:
            client.close()
            raise MeterReadError(FailureKind.NO_CONNECTION, f"cannot connect to {s.describe()}")
        self._unit_keyword = _unit_keyword(client.read_input_registers)
        return client

    def read_registers(self, function_code: int, address: int, count: int) -> list[int]:
        """Read ``count`` registers; returns exactly ``count`` 16-bit words or raises MeterReadError."""
        if self._client is None:
            self._client = self._open()
        client = self._client
        read = client.read_input_registers if function_code == 4 else client.read_holding_registers
        where = f"{self.settings.describe()}, FC{function_code} address {address} count {count}"
        unit: dict[str, Any] = {self._unit_keyword: self.settings.unit_id}  # keyword differs by pymodbus version
        try:
            reply = read(address, count=count, **unit)
            if isinstance(reply, ModbusException):
                raise reply  # pymodbus < 3.7 returns I/O errors instead of raising them
        except ConnectionException as exc:
            self.close()
            raise MeterReadError(FailureKind.NO_CONNECTION, f"{where}: {exc}") from None
        except ModbusException as exc:
            # pymodbus reports timeouts and frames it could not decode (bad CRC, wrong length) the
            # same way; either way nothing usable arrived. The next request starts on a fresh
            # connection, so leftovers of this exchange cannot be taken as its answer.
            self.close()
            raise MeterReadError(FailureKind.NO_REPLY, f"{where}: {exc}") from None
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise MeterReadError(FailureKind.NO_CONNECTION, f"{where}: {exc}") from None
        if reply.isError():
            code = getattr(reply, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "unknown code") if isinstance(code, int) else "no code"
            raise MeterReadError(FailureKind.EXCEPTION_REPLY, f"{where}: exception {code} ({name})")
        registers = list(getattr(reply, "registers", None) or [])
        if len(registers) != count:
            self.close()
            raise MeterReadError(FailureKind.INVALID_REPLY, f"{where}: reply carries {len(registers)} registers")
        if any(not 0 <= word <= 0xFFFF for word in registers):
            self.close()
            raise MeterReadError(FailureKind.INVALID_REPLY, f"{where}: register value out of range")
        return registers

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
