"""The Modbus driver layer (register map + link + reader) against real pymodbus servers, over TCP
and as RTU over a pty pair, including every way a reply can go wrong."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from everpy_modules.GenericPowermeter.meter_reader import MeterReader
from everpy_modules.GenericPowermeter.modbus_link import FailureKind, MeterReadError, ModbusSettings
from everpy_modules.GenericPowermeter.register_map import available_maps, load_register_map

from .meter_sim import MeterImage, WireFault, float_words, mangling_tcp_proxy, rtu_meter, tcp_meter

TIMEOUT_S = 0.3  # per reply; short so failure tests stay fast, long enough for a loaded 2-core box


def tcp_settings(port: int) -> ModbusSettings:
    return ModbusSettings(transport="tcp", unit_id=1, timeout_s=TIMEOUT_S, host="127.0.0.1", port=port)


def rtu_settings(tty_path: str) -> ModbusSettings:
    return ModbusSettings(transport="rtu", unit_id=1, timeout_s=TIMEOUT_S, serial_port=tty_path, baudrate=9600)


async def read_failure(reader: MeterReader) -> MeterReadError:
    with pytest.raises(MeterReadError) as caught:
        await reader.read()
    return caught.value


@pytest.fixture
def sdm630() -> tuple[MeterImage, dict[str, dict[str, float]]]:
    return MeterImage.for_map(load_register_map("sdm630_v2"))


@pytest.fixture
async def tcp_reader(sdm630: tuple[MeterImage, dict]) -> AsyncIterator[tuple[MeterReader, MeterImage, dict]]:
    image, expected = sdm630
    async with tcp_meter(image) as port:
        reader = MeterReader(load_register_map("sdm630_v2"), tcp_settings(port), retries=1)
        yield reader, image, expected
        await reader.close()


@pytest.mark.parametrize("map_name", available_maps())
async def test_every_shipped_map_reads_exact_values_over_tcp(map_name: str) -> None:
    register_map = load_register_map(map_name)
    image, expected = MeterImage.for_map(register_map)
    async with tcp_meter(image) as port:
        reader = MeterReader(register_map, tcp_settings(port), retries=0)
        try:
            assert await reader.read() == expected
        finally:
            await reader.close()
    assert image.requests == len(register_map.blocks)


async def test_sdm630_fields_come_from_the_documented_registers() -> None:
    """Independent of the map file: SDM630 values placed at Eastron's register numbers by hand."""
    image = MeterImage()
    by_register = {
        30073: 1234.5,  # import total, kWh
        30347: 400.25,
        30349: 410.5,
        30351: 423.75,
        30053: 11040.0,  # total power, W
        30001: 230.5,
        30003: 231.0,
        30005: 229.75,
        30007: 16.0,
        30009: 15.5,
        30011: 16.25,
        30071: 50.0,
    }
    for register, raw in by_register.items():
        pdu_address = register - 30001  # Eastron: FC4 PDU address = register - 30001
        image.words[pdu_address], image.words[pdu_address + 1] = float_words(raw)
    async with tcp_meter(image) as port:
        reader = MeterReader(load_register_map("sdm630_v2"), tcp_settings(port), retries=0)
        reading = await reader.read()
        await reader.close()
    assert reading["energy_Wh_import"] == {"total": 1234500.0, "L1": 400250.0, "L2": 410500.0, "L3": 423750.0}
    assert reading["power_W"]["total"] == 11040.0
    assert reading["voltage_V"] == {"L1": 230.5, "L2": 231.0, "L3": 229.75}
    assert reading["current_A"] == {"L1": 16.0, "L2": 15.5, "L3": 16.25, "N": 0.0}
    assert reading["frequency_Hz"] == {"L1": 50.0}


async def test_reads_sdm630_as_rtu_over_a_pty(sdm630: tuple[MeterImage, dict]) -> None:
    image, expected = sdm630
    async with rtu_meter(image) as (tty_path, _wire):
        reader = MeterReader(load_register_map("sdm630_v2"), rtu_settings(tty_path), retries=1)
        try:
            assert await reader.read() == expected
            image.words[72], image.words[73] = float_words(1224.5)  # import total (kWh) moves on
            assert (await reader.read())["energy_Wh_import"]["total"] == 1224500.0
        finally:
            await reader.close()


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (WireFault.BAD_CRC, FailureKind.NO_REPLY),
        (WireFault.SHORT_REPLY, FailureKind.INVALID_REPLY),
        (WireFault.BYTE_COUNT_MISMATCH, FailureKind.NO_REPLY),
        (WireFault.SILENT, FailureKind.NO_REPLY),
    ],
)
async def test_broken_rtu_replies_fail_the_read_and_the_next_good_reply_recovers(
    sdm630: tuple[MeterImage, dict], fault: WireFault, kind: FailureKind
) -> None:
    image, expected = sdm630
    async with rtu_meter(image) as (tty_path, wire):
        reader = MeterReader(load_register_map("sdm630_v2"), rtu_settings(tty_path), retries=0)
        try:
            wire.fault = fault
            assert (await read_failure(reader)).kind is kind
            wire.fault = WireFault.NONE
            assert await reader.read() == expected
        finally:
            await reader.close()


@pytest.mark.parametrize(("retries", "succeeds"), [(0, False), (1, True)])
async def test_retries_absorb_a_single_corrupted_reply(
    sdm630: tuple[MeterImage, dict], retries: int, succeeds: bool
) -> None:
    image, expected = sdm630
    async with rtu_meter(image) as (tty_path, wire):
        reader = MeterReader(load_register_map("sdm630_v2"), rtu_settings(tty_path), retries=retries)
        try:
            wire.fault, wire.corrupt_replies_left = WireFault.BAD_CRC, 1
            if succeeds:
                assert await reader.read() == expected
            else:
                assert (await read_failure(reader)).kind is FailureKind.NO_REPLY
        finally:
            await reader.close()


async def test_exception_replies_fail_the_read(tcp_reader: tuple[MeterReader, MeterImage, dict]) -> None:
    reader, image, expected = tcp_reader
    image.exception_code = 4  # slave device failure
    failure = await read_failure(reader)
    assert failure.kind is FailureKind.EXCEPTION_REPLY
    assert "exception 4 (device failure)" in str(failure)
    image.exception_code = None
    assert await reader.read() == expected


@pytest.mark.parametrize(
    ("words", "why"),
    [
        ([0x7FC0, 0x0000], "nan"),
        ([0x7F80, 0x0000], "inf"),
        ([0xC47A, 0x0000], "negative"),  # -1000 kWh imported
    ],
)
async def test_implausible_values_reject_the_whole_reading(
    tcp_reader: tuple[MeterReader, MeterImage, dict], words: list[int], why: str
) -> None:
    reader, image, _expected = tcp_reader
    image.words.update({72: words[0], 73: words[1]})  # energy_Wh_import.total
    failure = await read_failure(reader)
    assert failure.kind is FailureKind.INVALID_REPLY
    assert "30073" in str(failure) and why in str(failure).lower()


async def test_tcp_meter_down_then_back_on_the_same_port(sdm630: tuple[MeterImage, dict]) -> None:
    image, expected = sdm630
    async with tcp_meter(image) as port:
        reader = MeterReader(load_register_map("sdm630_v2"), tcp_settings(port), retries=0)
        assert await reader.read() == expected
    try:
        assert (await read_failure(reader)).kind in (FailureKind.NO_CONNECTION, FailureKind.NO_REPLY)
        assert (await read_failure(reader)).kind is FailureKind.NO_CONNECTION
        async with tcp_meter(image, port=port):
            assert await reader.read() == expected
    finally:
        await reader.close()


async def test_wrong_unit_id_gives_an_error_not_a_reading(sdm630: tuple[MeterImage, dict]) -> None:
    image, _expected = sdm630
    async with rtu_meter(image) as (tty_path, _wire):
        settings = replace(rtu_settings(tty_path), unit_id=7)
        reader = MeterReader(load_register_map("sdm630_v2"), settings, retries=0)
        try:
            # A real meter stays silent; pymodbus 3.16's server answers "device failure". Either way
            # the read must fail.
            await read_failure(reader)
        finally:
            await reader.close()


async def test_missing_serial_port_is_a_connection_failure() -> None:
    reader = MeterReader(load_register_map("sdm630_v2"), rtu_settings("/dev/does-not-exist"), retries=0)
    try:
        failure = await read_failure(reader)
        assert failure.kind is FailureKind.NO_CONNECTION
        assert "/dev/does-not-exist" in str(failure)
    finally:
        await reader.close()


def mangle_framing(rng: random.Random) -> Callable[[bytes], bytes]:
    """Break the framing of some replies (never the register bytes: Modbus TCP has no checksum, so
    changed data bytes would be a valid reading of other values that no driver could notice)."""

    def with_length(frame: bytes) -> bytes:
        return frame[:4] + (len(frame) - 6).to_bytes(2, "big") + frame[6:]

    def random_bytes(n: int) -> bytes:
        return bytes(rng.randrange(256) for _ in range(n))

    mutations: list[Callable[[bytes], bytes]] = [
        lambda f: f[: rng.randrange(7, len(f))],  # cut short, header promises more
        lambda f: with_length(f[: rng.randrange(8, len(f))]),  # cut short, consistent header
        lambda f: with_length(f + random_bytes(rng.randrange(1, 6))),  # trailing junk
        lambda f: f + random_bytes(rng.randrange(1, 6)),  # junk after the frame
        lambda f: f[:8] + bytes([rng.randrange(256)]) + f[9:],  # byte count field
        lambda f: f[:7] + bytes([rng.randrange(256)]) + f[8:],  # function code
        lambda f: f[:6] + bytes([rng.randrange(256)]) + f[7:],  # unit id
        lambda f: random_bytes(2) + f[2:],  # transaction id
        lambda f: f[:2] + random_bytes(2) + f[4:],  # protocol id
        lambda f: with_length(f[:7] + random_bytes(rng.randrange(1, 12))),  # garbage PDU
    ]

    def mangle(frame: bytes) -> bytes:
        return rng.choice(mutations)(frame) if rng.random() < 0.3 else frame

    return mangle


async def test_tcp_replies_with_broken_framing_never_give_a_wrong_reading(sdm630: tuple) -> None:
    image, expected = sdm630
    outcomes = {"reading": 0, "failure": 0}
    async with tcp_meter(image) as meter_port:
        async with mangling_tcp_proxy(meter_port, mangle_framing(random.Random(61851))) as proxy_port:
            settings = replace(tcp_settings(proxy_port), timeout_s=0.1)
            reader = MeterReader(load_register_map("sdm630_v2"), settings, retries=0)
            try:
                for _ in range(40):
                    try:
                        assert await reader.read() == expected
                        outcomes["reading"] += 1
                    except MeterReadError:
                        outcomes["failure"] += 1
            finally:
                await reader.close()
    assert outcomes["reading"] > 0 and outcomes["failure"] > 0, outcomes
