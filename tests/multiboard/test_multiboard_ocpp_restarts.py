"""A board restarting in the middle of a satellite's transaction: the main board's restart rebuilds the
transaction (the satellite kept charging), a satellite's reboot ends it with its last reading (no
phantom transaction). Every board is its own process, connected to the in-repo CSMS."""

from __future__ import annotations

import json
from pathlib import Path

from boards import new_serial
from test_multiboard_ocpp import CAR_PLUGS_IN_AND_WAITS, main_board, satellite, status

from everpy.csms import Csms


def sampling_main_board(tmp_path: Path, url: str, serial: str) -> dict:
    config = main_board(tmp_path, url, [serial])
    ocpp = config["active_modules"]["ocpp"]["config_module"]
    ocpp["configuration"] = json.dumps({**json.loads(ocpp["configuration"]), "MeterValueSampleInterval": "1"})
    return config


async def charging_on_satellite(csms: Csms, sat) -> int:
    assert await sat.probe.call("car", "main", "execute_charging_session", value=CAR_PLUGS_IN_AND_WAITS)
    await csms.wait_for("StatusNotification", status(2, "Preparing"), timeout=30)
    await csms.call_action("CP1", "RemoteStartTransaction", {"idTag": "SAT-TX", "connectorId": 2})
    start = await csms.wait_for("StartTransaction", lambda p: p["connectorId"] == 2, timeout=30)
    await csms.wait_for("StatusNotification", status(2, "Charging"), timeout=30)
    return int(csms._answers[("CP1", start.unique_id)]["transactionId"])


async def test_main_board_restart_rebuilds_the_satellite_transaction(boards, tmp_path: Path) -> None:
    serial = new_serial()
    async with Csms() as csms:
        sat = await boards("sat1", satellite(1, tmp_path, serial))
        main = await boards("main", sampling_main_board(tmp_path, csms.url, serial))
        transaction_id = await charging_on_satellite(csms, sat)
        await main.kill()  # the main board loses power; the satellite keeps charging
        await main.start()
        mark = len(csms.received)
        await csms.wait_for("MeterValues", lambda p: p["connectorId"] == 2 and p.get("transactionId") == transaction_id,
                            timeout=30, after=mark)
        assert not csms.messages("StopTransaction")
        await csms.call_action("CP1", "RemoteStopTransaction", {"transactionId": transaction_id})
        assert csms.last_answer("CP1", "RemoteStopTransaction")["status"] == "Accepted"
        stop = await csms.wait_for("StopTransaction", timeout=30)
        assert stop.payload["transactionId"] == transaction_id and stop.payload["reason"] == "Remote"


async def test_satellite_reboot_ends_its_transaction_with_the_last_reading(boards, tmp_path: Path) -> None:
    serial = new_serial()
    async with Csms() as csms:
        sat = await boards("sat1", satellite(1, tmp_path, serial))
        await boards("main", sampling_main_board(tmp_path, csms.url, serial))
        transaction_id = await charging_on_satellite(csms, sat)
        sample = await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == transaction_id, timeout=30)
        await sat.kill()  # the satellite loses power mid-transaction and boots again
        await sat.start()
        stop = await csms.wait_for("StopTransaction", timeout=30)
        assert stop.payload["transactionId"] == transaction_id and stop.payload["reason"] == "PowerLoss"
        sent = [float(v["value"]) for r in csms.messages("MeterValues") if r.payload.get("transactionId")
                == transaction_id for mv in r.payload["meterValue"] for v in mv["sampledValue"]
                if v.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"]
        # the last reading, never below one sent (meterStop is whole Wh, samples carry decimals)
        assert sample and stop.payload["meterStop"] >= round(max(sent))
        await csms.wait_for("StatusNotification", status(2, "Available"), timeout=30)
