"""kill -9 of the whole station process group while the queue drains: the CSMS ends with exactly the right
transaction messages."""

from __future__ import annotations

import asyncio

import pytest

from everpy.csms import Behaviour, Csms

from .crash import (
    check_transaction,
    last_transaction_message,
    queued_at_least,
    resends_are_same_message,
    wait_station_log,
)
from .sil import CHARGE_FOREVER, StationProcess, sil_ocpp_config

pytestmark = pytest.mark.slow

async def test_kill_while_the_queue_drains_loses_nothing(tmp_path):
    behaviour = Behaviour()
    async with Csms(behaviour=behaviour) as first:
        port = first.port
        config = sil_ocpp_config(tmp_path, first.url, car_script=CHARGE_FOREVER,
                                 keys={"MeterValueSampleInterval": "1"})
        station = StationProcess(config, tmp_path)
        station.start()
        try:
            await first.wait_for("StartTransaction", timeout=30)
            # a meter value with the transaction id proves StartTransaction.conf arrived
            await first.wait_for("MeterValues", lambda p: p.get("transactionId") == 1, timeout=20)
            await first.stop()  # the CSMS goes away; meter values pile up in the queue
            await asyncio.sleep(0)  # let the close propagate before counting
            second = Csms(port=port, behaviour=behaviour)
            second._transaction_ids = first._transaction_ids  # one CSMS database across its restart
            await wait_station_log(station, "cannot connect", 20)
            # ~6 queued meter values; then the CSMS answers slowly so the station dies mid-drain
            await asyncio.wait_for(queued_at_least(tmp_path, 6), 30)
            behaviour.answer_delay_s = 0.3
            async with second:
                await second.wait_for("MeterValues", timeout=20)
                await second.wait_for("MeterValues", after=len(second.received), timeout=20)
                station.kill()
                received_before_kill = list(second.received)
                behaviour.answer_delay_s = 0.0
                station.start()
                stop = await second.wait_for("StopTransaction", timeout=40)
                await asyncio.wait_for(queued_at_least(tmp_path, 0, exact=True), 20)
        finally:
            station.stop()
        assert stop.payload["reason"] == "PowerLoss"
        combined = Csms()
        combined.received = first.received + second.received
        combined._answers = {**first._answers, **second._answers}
        check_transaction(combined, 1)
        resends_are_same_message(combined)
        # only a message in flight when the link died (CSMS stop, kill -9) may arrive twice, and then with
        # the same unique id, so the CSMS recognises it; an acknowledged message is never sent again
        in_flight = {last_transaction_message(first.received), last_transaction_message(received_before_kill)}
        assert {r.unique_id for r in combined.duplicates()} <= in_flight
