"""Helpers of the crash tests: what the CSMS must have received for one transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from everpy.csms import Csms, Received

from .sil import StationProcess


def energy(meter_values: Received) -> float:
    for value in meter_values.payload["meterValue"]:
        for sample in value["sampledValue"]:
            if sample.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                return float(sample["value"])
    raise AssertionError("no energy register in MeterValues")


def check_transaction(csms: Csms, transaction_id: int) -> tuple[Received, list[Received], Received]:
    """The distinct messages of one transaction: one start, meter values, one stop, in that order."""
    starts = [r for r in csms.distinct("StartTransaction")
              if csms._answers.get((r.station, r.unique_id), {}).get("transactionId") == transaction_id]
    assert len(starts) == 1, starts
    meter_values = [r for r in csms.distinct("MeterValues") if r.payload.get("transactionId") == transaction_id]
    stops = [r for r in csms.distinct("StopTransaction") if r.payload["transactionId"] == transaction_id]
    assert len(stops) == 1, stops
    order = [csms.received.index(r) for r in [starts[0], *meter_values, stops[0]]]
    assert order == sorted(order), "transaction messages out of order"
    energies = [energy(r) for r in meter_values]
    assert energies == sorted(energies)
    return starts[0], meter_values, stops[0]


def resends_are_same_message(csms: Csms) -> None:
    """A message resent after a crash carries the unique id (and content) of the first sending."""
    first: dict[str, Any] = {}
    for r in csms.received:
        if r.action in ("StartTransaction", "StopTransaction", "MeterValues"):
            assert first.setdefault(r.unique_id, r.payload) == r.payload



def energy_payload(payload: dict[str, Any]) -> float:
    return energy(Received("", "MeterValues", payload, ""))



def last_transaction_message(received: list[Received]) -> str:
    return [r for r in received if r.action in ("StartTransaction", "StopTransaction", "MeterValues")][-1].unique_id


async def wait_station_log(station: StationProcess, text: str, timeout: float) -> None:
    async def poll() -> None:
        while text not in station.log():
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


async def queued_at_least(tmp_path: Path, count: int, exact: bool = False) -> None:
    """Poll the station's queue length in its database (read-only, WAL allows a concurrent reader)."""
    while True:
        db = sqlite3.connect(f"file:{tmp_path / 'ocpp.db'}?mode=ro", uri=True)
        try:
            queued = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        finally:
            db.close()
        if (queued == count) if exact else (queued >= count):
            return
        await asyncio.sleep(0.1)
