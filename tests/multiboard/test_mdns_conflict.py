"""Two satellites with one serial on one network: the second finds the mDNS name taken, advertises under
another name with a warning naming the conflict, and runs (its EVSE charges as the first one's does)."""

from __future__ import annotations

import logging

import pytest
from everpy_modules.SatelliteAgent.agent import SatelliteAgent

from everpy.testing import run_system

from .boards import satellite_config


async def test_a_duplicate_serial_is_renamed_and_stops_nothing(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="everpy.rpc")
    async with run_system(satellite_config("SAT-TWIN1")) as first, \
            run_system(satellite_config("SAT-TWIN1")) as second:
        names = [system.instance("agent", SatelliteAgent).advertiser for system in (first, second)]
        assert all(names), "both satellites advertise"
        assert names[0]._info.name.startswith("SAT-TWIN1._everpy-sat")  # type: ignore[union-attr]
        assert names[1]._info.name.startswith("SAT-TWIN1-2._everpy-sat")  # type: ignore[union-attr]
        assert second.runtime.global_ready and first.runtime.global_ready
    warnings = [r.getMessage() for r in caplog.records if "is taken by another responder" in r.getMessage()]
    assert len(warnings) == 1 and "SAT-TWIN1" in warnings[0] and "own serial" in warnings[0]
