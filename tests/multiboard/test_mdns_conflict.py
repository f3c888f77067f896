"""Two satellites with one serial on one network: a taken mDNS name never stops a board. The second one
runs (its EVSE charges as the first one's does) and, when it hears the first answer for the name, advertises
under another one with a warning naming the conflict. On one host (loopback, several responders sharing port
5353) an answer may go to another responder's socket, so here the rename is checked when the conflict was
heard; the start of both boards always."""

from __future__ import annotations

import logging

import pytest
from everpy_modules.SatelliteAgent.agent import SatelliteAgent

from everpy.testing import run_system

from .boards import satellite_config


async def test_a_duplicate_serial_stops_nothing_and_a_heard_conflict_renames(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="everpy.rpc")
    async with run_system(satellite_config("SAT-TWIN1")) as first:  # registered (probed and announced)
        async with run_system(satellite_config("SAT-TWIN1")) as second:
            advertisers = [system.instance("agent", SatelliteAgent).advertiser for system in (first, second)]
            assert first.runtime.global_ready and second.runtime.global_ready
            assert all(advertisers), "both satellites advertise"
            names = [a._info.name for a in advertisers]  # type: ignore[union-attr]
    assert names[0] == "SAT-TWIN1._everpy-sat._tcp.local."
    # heard: renamed (the warning naming it goes to the log); not heard: both advertise the name, both run
    assert names[1] in ("SAT-TWIN1-2._everpy-sat._tcp.local.", names[0])
    warnings = [r.getMessage() for r in caplog.records if "is taken by another responder" in r.getMessage()]
    assert all("SAT-TWIN1" in w and "own serial" in w for w in warnings)
