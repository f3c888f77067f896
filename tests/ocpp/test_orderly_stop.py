"""Ctrl-C mid-charge is an orderly stop: the real `everpy run` process group of the SIL charger with OCPP
gets SIGINT while a transaction runs; the process exits 0, the EvseManager ends the transaction as Reboot,
OCPP queues the StopTransaction and delivers it before closing the websocket (the next start sends
no PowerLoss for it)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from everpy.csms import Csms

from .sil import CHARGE_FOREVER, StationProcess, sil_ocpp_config
from .station import WAIT_S

ANSWER_DELAY_S = 0.8  # well inside the module's shutdown_drain_s (3 s), with a StatusNotification before it


async def exited(station: StationProcess, timeout: float) -> int:
    """The process's exit status, waited for in a thread (bounded) so the CSMS keeps serving meanwhile."""
    assert station.process is not None
    return await asyncio.wait_for(asyncio.to_thread(station.process.wait), timeout)


@asynccontextmanager
async def charging_station(tmp_path: Path, csms: Csms) -> AsyncIterator[StationProcess]:
    """The SIL charger as its own `everpy run` process, charging at the CSMS; stopped at the end."""
    station = StationProcess(sil_ocpp_config(tmp_path, csms.url, car_script=CHARGE_FOREVER, swipe=True), tmp_path)
    station.start()
    try:
        await csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", WAIT_S * 3)
        assert station.process is not None
        yield station
    finally:
        station.stop()


async def test_sigint_mid_charge_ends_the_transaction_as_reboot_and_exits_0(tmp_path, csms: Csms):
    async with charging_station(tmp_path, csms) as station:
        assert station.process is not None
        start = await csms.wait_for("StartTransaction", timeout=WAIT_S)
        await csms.wait_until(lambda: csms.answer_to(start) is not None, WAIT_S)
        transaction_id = csms.answer_to(start)["transactionId"]
        # a CSMS that answers slowly: the StopTransaction's answer comes only while OCPP drains its queue
        # in shutdown(); without the drain the next start would resend it (same unique id)
        csms.behaviour.answer_delay_s = ANSWER_DELAY_S
        os.killpg(station.process.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole group
        assert await exited(station, WAIT_S * 2) == 0, station.log()[-3000:]
        stops = csms.messages("StopTransaction")
        assert [(s.payload["transactionId"], s.payload["reason"]) for s in stops] == [(transaction_id, "Reboot")], \
            station.log()[-3000:]
        assert stops[0].payload["meterStop"] >= start.payload["meterStart"]
        csms.behaviour.answer_delay_s = 0.0
        mark = len(csms.received)
        station.start()  # the next boot has nothing left to say about that transaction
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S * 3, after=mark)
        assert csms.messages("StopTransaction") == stops  # not resent: its answer was taken before exit
        assert not [r for r in csms.received if r.action == "StopTransaction" and r.payload["reason"] == "PowerLoss"]


async def test_a_csms_that_does_not_answer_the_stop_neither_blocks_the_exit_nor_loses_it(tmp_path, csms: Csms):
    async with charging_station(tmp_path, csms) as station:
        assert station.process is not None
        csms.behaviour.silent["StopTransaction"] = 1  # received, never answered
        began = time.monotonic()
        os.killpg(station.process.pid, signal.SIGINT)
        assert await exited(station, WAIT_S * 2) == 0, station.log()[-3000:]
        # the drain is bounded (shutdown_drain_s, 3 s), whatever the CSMS does; the rest is the stop itself
        assert time.monotonic() - began < 15.0
        first = await csms.wait_for("StopTransaction", timeout=WAIT_S)
        station.start()  # still queued: the next start sends it again, with the same unique id
        await csms.wait_until(lambda: len(csms.messages("StopTransaction")) == 2, WAIT_S * 3)
        stops = csms.messages("StopTransaction")
        assert {s.unique_id for s in stops} == {first.unique_id}
        assert [s.payload["reason"] for s in stops] == ["Reboot", "Reboot"]  # never PowerLoss
