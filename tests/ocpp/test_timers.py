"""The long OCPP timers on a FakeClock: heartbeat, sampled and clock-aligned meter values (TC_070,
TC_071), the transaction message retry interval."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from everpy.core.clock import FakeClock
from everpy.csms import Behaviour, Csms

from .station import WAIT_S, Address, Station, advance, sil_station, wait_file


async def charging_on_fake_time(station: Station, clock: FakeClock) -> None:
    await station.plug_in()
    await station.swipe("TAG1")
    await station.transactions.wait_for(lambda e: e["transaction_event"] == "Started", WAIT_S)
    for _ in range(30):
        if any(r.payload["status"] == "Charging" for r in station.csms.messages("StatusNotification")):
            return
        await advance(station, clock, 1)
    raise AssertionError("not charging after 30 s of fake time")


async def test_heartbeat_after_the_interval_of_silence(tmp_path):
    clock = FakeClock()
    async with Csms(behaviour=Behaviour(boot_interval=120)) as csms:
        async with sil_station(tmp_path, csms, clock=clock) as station:
            await advance(station, clock, 110, step=10)
            assert not csms.messages("Heartbeat")
            await advance(station, clock, 20, step=10)
            await csms.wait_for("Heartbeat", timeout=WAIT_S)
            assert await station.config_key("HeartbeatInterval") == "120"  # taken from BootNotification.conf


async def test_tc_070_sampled_meter_values_during_a_transaction(tmp_path):
    clock = FakeClock()
    keys = {"MeterValueSampleInterval": "60", "MeterValuesSampledData": "Energy.Active.Import.Register,Voltage"}
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys=keys, clock=clock) as station:
            await charging_on_fake_time(station, clock)
            await advance(station, clock, 125, step=5)
            first = await csms.wait_for("MeterValues", timeout=WAIT_S)
            second = await csms.wait_for("MeterValues", after=csms.received.index(first) + 1, timeout=WAIT_S)
            for received in (first, second):
                assert received.payload["transactionId"] == 1 and received.payload["connectorId"] == 1
                samples = received.payload["meterValue"][0]["sampledValue"]
                assert {s["context"] for s in samples} == {"Sample.Periodic"}
                assert {s["measurand"] for s in samples} == {"Energy.Active.Import.Register", "Voltage"}
                assert {s["phase"] for s in samples if s["measurand"] == "Voltage"} == {"L1-N", "L2-N", "L3-N"}
            energy = [float(next(s["value"] for s in r.payload["meterValue"][0]["sampledValue"]
                                 if s["measurand"] == "Energy.Active.Import.Register")) for r in (first, second)]
            assert 0 < energy[0] < energy[1]  # 11 kW for a minute is about 180 Wh


async def test_tc_071_clock_aligned_meter_values(tmp_path):
    clock = FakeClock(start=1_767_225_600.0 + 890)  # 2026-01-01T00:14:50Z, 10 s before a 15-minute boundary
    keys = {"ClockAlignedDataInterval": "900", "MeterValuesAlignedData": "Energy.Active.Import.Register"}
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys=keys, clock=clock) as station:
            await advance(station, clock, 12)
            aligned = await csms.wait_for("MeterValues", timeout=WAIT_S)
            value = aligned.payload["meterValue"][0]
            assert value["sampledValue"][0]["context"] == "Sample.Clock"
            assert value["timestamp"].startswith("2026-01-01T00:15:00")
            assert "transactionId" not in aligned.payload


async def test_transaction_message_retry_interval_grows_per_attempt(tmp_path):
    clock = FakeClock()
    keys = {"TransactionMessageAttempts": "3", "TransactionMessageRetryInterval": "30"}
    async with Csms(behaviour=Behaviour(fail={"StartTransaction": 2})) as csms:
        async with sil_station(tmp_path, csms, keys=keys, clock=clock) as station:
            await station.plug_in()
            await station.swipe("TAG1")
            await csms.wait_for("StartTransaction", timeout=WAIT_S)
            await advance(station, clock, 29, step=1)
            assert len(csms.messages("StartTransaction")) == 1
            await advance(station, clock, 2, step=1)
            await csms.wait_until(lambda: len(csms.messages("StartTransaction")) == 2, WAIT_S)
            await advance(station, clock, 58, step=2)  # the 3rd attempt waits 2 x 30 s
            assert len(csms.messages("StartTransaction")) == 2
            await advance(station, clock, 4, step=1)
            await csms.wait_until(lambda: len(csms.messages("StartTransaction")) == 3, WAIT_S)
            assert station.ocpp.cp.repository.transaction_id(station.ocpp.cp.connectors[1].transaction.tx_key) == 1


async def test_minimum_status_duration_delays_and_suppresses_flicker(tmp_path):
    clock = FakeClock()
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys={"MinimumStatusDuration": "10"}, clock=clock) as station:
            await station.plug_in()
            await advance(station, clock, 5)
            assert not [r for r in csms.messages("StatusNotification") if r.payload["status"] == "Preparing"]
            await advance(station, clock, 6)
            await csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", WAIT_S)


async def test_tc_004_2_connection_timeout_from_the_ocpp_key(tmp_path):
    clock = FakeClock()
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, keys={"ConnectionTimeOut": "15"}, clock=clock) as station:
            status = station.system.watch("auth", "main", "token_validation_status")
            await station.swipe("EARLY")
            await status.wait_for(lambda s: s["status"] == "Accepted", WAIT_S)
            await advance(station, clock, 12)
            assert not [s for s in status.drain() if s["status"] == "TimedOut"]
            await advance(station, clock, 5)
            await status.wait_for(lambda s: s["status"] == "TimedOut", WAIT_S)
            assert not csms.messages("StartTransaction")


async def test_reconnect_backoff_doubles_with_jitter_up_to_the_maximum(tmp_path):
    clock = FakeClock()
    closed = Csms()
    await closed.start()
    url = closed.url
    await closed.stop()  # nothing listens on this port any more: every attempt is refused at once
    ocpp = {"reconnect_min_s": 1.0, "reconnect_max_s": 8.0}
    async with sil_station(tmp_path, Address(url), ocpp=ocpp, clock=clock, wait_boot=False) as station:
        states = station.system.watch("ocpp", "main", "connection_status")
        attempts: list[float] = []
        step = 0.25
        while clock.monotonic() < 60:
            await advance(station, clock, step, step=step)
            attempts += [clock.monotonic() for s in states.drain() if s["state"] == "Connecting"]
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        assert len(gaps) >= 5
        for number, gap in enumerate(gaps, start=2):  # before attempt n: min(8, 2^(n-2)) x (1..1.5)
            base = min(8.0, 2.0 ** (number - 2))
            assert base - step <= gap <= base * 1.5 + step, (number, gap, gaps)


async def test_a_shorter_heartbeat_interval_applies_at_once(tmp_path):
    clock = FakeClock()
    async with Csms(behaviour=Behaviour(boot_interval=86400)) as csms:
        async with sil_station(tmp_path, csms, clock=clock) as station:
            await advance(station, clock, 30, step=10)
            assert (await station.call("ChangeConfiguration", key="HeartbeatInterval", value="60"))["status"] \
                == "Accepted"
            await advance(station, clock, 40, step=10)
            await csms.wait_for("Heartbeat", timeout=WAIT_S)


async def test_system_clock_set_from_the_csms_when_configured(tmp_path):
    clock = FakeClock()  # 2026-01-01, far from the CSMS's real time
    system = {"set_system_time_command": f"sh -c 'echo \"$0\" > {tmp_path}/time-set'"}
    async with Csms() as csms:
        async with sil_station(tmp_path, csms, clock=clock, system=system, ocpp={"time_from_csms": True}):
            await wait_file(tmp_path / "time-set")
            async with asyncio.timeout(WAIT_S):  # the file exists before the shell has written into it
                while not (written := (tmp_path / "time-set").read_text().strip()):
                    await asyncio.sleep(0.05)
            assert written[:10] == datetime.now(UTC).strftime("%Y-%m-%d")
