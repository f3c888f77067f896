"""The shipped run configs: config/sil.yaml charges in a loop; config/sil-sdm630.yaml reads an SDM630."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from everpy.testing import run_system

from .sil_system import WAIT_S, sil

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


async def test_sil_demo_runs_complete_sessions_in_a_loop() -> None:
    async with sil(CONFIG_DIR / "sil.yaml") as s:
        await s.advance(75)
        names = [e["event"] for e in s.events.drain()]
        first_session = names[: names.index("SessionFinished") + 1]
        assert first_session == [
            "SessionStarted", "AuthRequired", "Authorized", "TransactionStarted", "PrepareCharging",
            "ChargingStarted", "ChargingPausedEV", "ChargingResumed", "ChargingFinished",
            "TransactionFinished", "SessionFinished",
        ]
        assert "SessionStarted" in names[len(first_session):]  # the car came back for another session
        finished = [e for e in s.events.values if e["event"] == "TransactionFinished"][0]
        # 16 A for 20 s, then 32 A (the 32 A fuse allows it) for 30 s, on three phases at 230 V.
        expected_wh = (16 * 20 + 32 * 30) * 3 * 230 / 3600
        assert finished["transaction_finished"]["energy_Wh"] == pytest.approx(expected_wh, rel=0.1)


async def test_sil_sdm630_reads_the_meter_over_rs485() -> None:
    meter_sim = pytest.importorskip("tests.powermeter.meter_sim")
    from everpy_modules.GenericPowermeter.register_map import load_register_map

    image, expected = meter_sim.MeterImage.for_map(load_register_map("sdm630_v2"))
    config = yaml.safe_load((CONFIG_DIR / "sil-sdm630.yaml").read_text())
    async with meter_sim.rtu_meter(image) as (tty_path, _wire):
        config["active_modules"]["meter"]["config_module"]["serial_port"] = tty_path
        async with run_system(config) as system:
            readings = system.watch("evse", "evse", "powermeter")
            reading = await readings.next(WAIT_S)
            assert reading["energy_Wh_import"]["total"] == expected["energy_Wh_import"]["total"]
            assert reading["meter_id"] == "SDM630"
            ready = system.instances["evse"]
            assert ready.last_meter is not None
