"""The SIL charger of config/sil-ocpp201.yaml as its own process, connected to a development CSMS
(everpy/csms/v201.py): the set-up the end-to-end 2.0.1 tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from everpy.csms import v201
from tests.ocpp.sil import SIL_OCPP201, StationProcess, sil_ocpp_config

STATION = "CP1"
FAST_RECONNECT = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}


@asynccontextmanager
async def station_at(tmp_path: Path, csms: v201.Csms, variables: dict[str, str] | None = None,
                     **config: Any) -> AsyncIterator[StationProcess]:
    """The station started, connected and its first StatusNotification received; stopped on the way out
    (its log stays readable)."""
    station = StationProcess(sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, test_keys={},
                                             keys=FAST_RECONNECT | (variables or {}), **config), tmp_path)
    station.start()
    try:
        await csms.wait_for("StatusNotification")
        yield station
    finally:
        station.stop()
