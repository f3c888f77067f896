"""A restart of the OCPP module is not a power loss: the transaction the charger kept running goes on."""

from __future__ import annotations

import os
import signal

from everpy.csms import Csms
from everpy.testing import run_system

from .sil import SilDriver, sil_ocpp_config
from .station import WAIT_S


async def test_crashed_ocpp_module_continues_the_running_transaction(tmp_path, csms: Csms):
    config = sil_ocpp_config(tmp_path, csms.url, car_script=None, swipe=False,
                             keys={"MeterValueSampleInterval": "1"})
    config["active_modules"]["ocpp"]["process"] = "own"
    config.setdefault("settings", {})["restart_backoff_s"] = 0.2
    async with run_system(config) as system:
        driver = SilDriver(system)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
        await driver.plug_in()
        await driver.swipe("TAG1")
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", WAIT_S)
        start = await csms.wait_for("StartTransaction", timeout=WAIT_S)
        transaction_id = csms.answer_to(start)["transactionId"]
        states = system.watch_topic(system.topics.module_state("ocpp"))
        child = system.runtime.children["ocpp"].process
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)  # the OCPP service crashes; the charger keeps charging
        await states.wait_for(lambda p: b'"down"' in p, timeout=WAIT_S)
        await states.wait_for(lambda p: b'"ready"' in p, timeout=WAIT_S)
        mark = len(csms.received)
        later = await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == transaction_id,
                                    timeout=WAIT_S, after=mark)
        assert later.payload["connectorId"] == 1
        assert not csms.messages("StopTransaction")  # not ended as a power loss
        await driver.unplug()
        stop = await csms.wait_for("StopTransaction", timeout=WAIT_S)
        assert stop.payload["transactionId"] == transaction_id and stop.payload["reason"] == "EVDisconnected"
        assert [r for r in csms.messages("StartTransaction")] == [start]  # one transaction, not two
