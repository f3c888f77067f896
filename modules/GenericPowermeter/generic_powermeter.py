"""GenericPowermeter: poll a Modbus meter, publish complete and plausible readings, report faults.

Per poll: read every register block of the map; if all of them arrive and decode, clear
CommunicationFault; if anything fails, publish nothing and raise CommunicationFault (once; it stays
active until a poll succeeds). A reading is never assembled from a mix of good and failed
requests. A complete reading is then checked against what the meter can have measured
(everpy.metering: range, energy never backwards, no rise faster than its maximum power): only a
plausible one is published; the others raise ImplausibleReading. So consumers (billing!) never see
a wrong value.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from everpy import Module, command
from everpy.metering import MeterLimits, ReadingGuard

from .meter_reader import MeterReader, Reading
from .modbus_link import MeterReadError, ModbusSettings
from .register_map import RegisterMap, load_register_map

IMPL = "main"
COMMUNICATION_FAULT = "powermeter/CommunicationFault"
IMPLAUSIBLE_READING = "powermeter/ImplausibleReading"
# config option -> the MeterLimits field it may lower
LIMIT_OPTIONS = {
    "max_energy_Wh": "energy_Wh",
    "max_power_W": "power_W",
    "max_current_A": "current_A",
    "max_voltage_V": "voltage_V",
}
NO_SIGNING = "GenericPowermeter reads plain Modbus registers and cannot sign meter values (no OCMF)"


class GenericPowermeter(Module):
    reader: MeterReader | None = None
    guard: ReadingGuard | None = None
    failing_since: float | None = None  # clock.monotonic() of the first failed poll of an outage

    async def init(self) -> None:
        cfg = self.config
        if cfg["transport"] == "tcp" and not cfg["host"]:
            raise ValueError(f"{self.id}: transport 'tcp' needs 'host' (IP address or name of the meter)")
        if cfg["transport"] == "rtu" and not 1 <= cfg["unit_id"] <= 247:
            raise ValueError(f"{self.id}: unit_id {cfg['unit_id']} cannot answer on RS-485 (1..247)")
        register_map = load_register_map(cfg["register_map"])
        settings = ModbusSettings(
            transport=cfg["transport"],
            unit_id=cfg["unit_id"],
            timeout_s=cfg["timeout_ms"] / 1000,
            host=cfg["host"],
            port=cfg["port"],
            serial_port=cfg["serial_port"],
            baudrate=cfg["baudrate"],
            parity=cfg["parity"],
            stopbits=cfg["stopbits"],
        )
        limits = self.meter_limits(register_map)
        self.guard = ReadingGuard(
            limits,
            self.log,
            raise_fault=lambda reason: self.raise_error(IMPL, IMPLAUSIBLE_READING, message=reason),
            clear_fault=lambda: self.clear_error(IMPL, IMPLAUSIBLE_READING),
            monotonic=self.clock.monotonic,
        )
        self.reader = MeterReader(register_map, settings, retries=cfg["retries"])
        self.log.info(
            "reading %s (%s, %d requests per poll) from %s every %d ms",
            register_map.description or register_map.name,
            register_map.source,
            len(register_map.blocks),
            settings.describe(),
            cfg["poll_interval_ms"],
        )
        self.log.info(
            "plausible: energy 0..%g Wh rising at most %g W, |current| <= %g A, |voltage| <= %g V",
            limits.energy_Wh, limits.power_W, limits.current_A, limits.voltage_V,
        )

    def meter_limits(self, register_map: RegisterMap) -> MeterLimits:
        """The map's limits, lowered where the config says so (0 = keep the map's)."""
        limits = register_map.limits
        for option, field in LIMIT_OPTIONS.items():
            if not self.config[option]:
                continue
            try:
                limits = limits.tightened(**{field: float(self.config[option])})
            except ValueError as exc:
                raise ValueError(f"{self.id}: {option}: {exc} (register map {register_map.source})") from None
        return replace(limits, timing_margin_s=self.config["timing_margin_ms"] / 1000)

    async def ready(self) -> None:
        self.spawn(self.poll_forever(), name="poll")

    async def shutdown(self) -> None:
        if self.reader is not None:  # None if init failed
            await self.reader.close()

    async def poll_forever(self) -> None:
        interval = self.config["poll_interval_ms"] / 1000
        while True:
            started = self.clock.monotonic()
            await self.poll_once()
            # Fixed rate: a slow meter shortens the pause instead of stretching the interval.
            await self.clock.sleep(interval - (self.clock.monotonic() - started))

    async def poll_once(self) -> None:
        assert self.reader is not None  # polling starts in ready(), after init() succeeded
        try:
            reading = await self.reader.read()
        except MeterReadError as exc:
            self.meter_failed(exc)
            return
        self.meter_answered()
        assert self.guard is not None  # set in init() with the reader
        if self.guard.accept(reading):
            self.publish(IMPL, "powermeter", self.powermeter_value(reading))

    def powermeter_value(self, reading: Reading) -> dict[str, Any]:
        timestamp = self.clock.utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        value: dict[str, Any] = {"timestamp": timestamp, **reading}
        if self.config["meter_id"]:
            value["meter_id"] = self.config["meter_id"]
        return value

    def meter_failed(self, exc: MeterReadError) -> None:
        if self.failing_since is None:
            self.failing_since = self.clock.monotonic()
            self.log.warning("meter lost: %s", exc)
            self.raise_error(IMPL, COMMUNICATION_FAULT, message=str(exc))
        else:
            self.log.debug("meter still failing: %s", exc)  # one warning per outage, not per poll

    def meter_answered(self) -> None:
        if self.failing_since is not None:
            down_s = self.clock.monotonic() - self.failing_since
            self.failing_since = None
            self.log.info("meter back after %.1f s", down_s)
            self.clear_error(IMPL, COMMUNICATION_FAULT)

    @command(IMPL, "start_transaction")
    async def start_transaction(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"status": "NOT_SUPPORTED", "error": NO_SIGNING}

    @command(IMPL, "stop_transaction")
    async def stop_transaction(self, transaction_id: str) -> dict[str, Any]:
        return {"status": "NOT_SUPPORTED", "error": NO_SIGNING}
