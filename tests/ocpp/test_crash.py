"""kill -9 of the whole station process group mid-transaction: the CSMS ends with exactly the right
transaction messages."""

from __future__ import annotations

import pytest

from everpy.csms import Csms

from .crash import (
    check_transaction,
    energy,
    energy_payload,
    resends_are_same_message,
)
from .sil import CHARGE_FOREVER, StationProcess, sil_ocpp_config

pytestmark = pytest.mark.slow

async def test_tc_034_kill_mid_transaction_stops_it_with_power_loss_after_restart(tmp_path):
    async with Csms() as csms:
        config = sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER,
                                 keys={"MeterValueSampleInterval": "1"})
        station = StationProcess(config, tmp_path)
        station.start()
        try:
            start = await csms.wait_for("StartTransaction", timeout=30)
            await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == 1, timeout=20)
            await csms.wait_for("MeterValues", lambda p: energy_payload(p) > 10, timeout=20)
            station.kill()
            delivered_before = len(csms.distinct("MeterValues"))
            await csms.wait_disconnected("CP1")
            station.start()
            stop = await csms.wait_for("StopTransaction", timeout=30)
            await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1,
                                after=csms.received.index(stop))
        finally:
            station.stop()
        assert stop.payload["reason"] == "PowerLoss"
        # StopTxnSampledData collected before the crash survives it; the end sample is the last reading
        contexts = [v["sampledValue"][0]["context"] for v in stop.payload["transactionData"]]
        assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
        assert stop.payload["transactionData"][-1]["sampledValue"][0]["value"] == str(stop.payload["meterStop"])
        _, meter_values, _ = check_transaction(csms, 1)
        assert len(meter_values) >= delivered_before
        last_energy = energy(meter_values[-1])
        # the last reading the station saw before the kill: at least what it reported, at most ~2 s more
        assert round(last_energy) <= stop.payload["meterStop"] <= last_energy + 16 * 3 * 230 * 2 / 3600 + 1
        assert stop.payload["meterStop"] >= start.payload["meterStart"]
        resends_are_same_message(csms)
        assert len(csms.messages("BootNotification")) == 2, station.log()
