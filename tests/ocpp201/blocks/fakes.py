"""A fake context for testing one OCPP 2.0.1 functional block alone (no bus, no websocket).

The store is a real OcppStore opened for 2.0.1 on a temporary file, the device model the station's real
one (every definition), the Station and sender the fakes of the 1.6 block tests (they are version-neutral)
and time a FakeClock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from everpy.core.clock import FakeClock
from everpy.ocpp.blocks import BlockContext, Jobs
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables import DEFINITIONS
from tests.ocpp.blocks.fakes import LOG, FakeSender, FakeStation

__all__ = ["Fixture", "FakeSender", "FakeStation", "block_context"]


@dataclass
class Fixture:
    ctx: BlockContext[DeviceModel]
    station: FakeStation
    sender: FakeSender
    clock: FakeClock
    evses: Evses
    store: OcppStore
    model: DeviceModel


def block_context(tmp_path: Path, evse_ids: list[int] | None = None, variables: dict[str, str] | None = None,
                  store: OcppStore | None = None) -> Fixture:
    """``variables``: initial device model values as ``Component.Variable[instance]`` -> value. Pass the
    ``store`` of an earlier fixture to test what a restart keeps."""
    store = store or OcppStore(tmp_path / "ocpp201.db", ocpp_version="2.0.1", log=LOG)
    station = FakeStation(evse_ids)
    evses = Evses(station.evse_ids())
    sender = FakeSender(store)
    clock = FakeClock()
    model = DeviceModel(store, DEFINITIONS, evses.connectors(), variables or {}, LOG)
    ctx = BlockContext(sender, model, store, station, clock, LOG, Jobs(LOG))
    return Fixture(ctx, station, sender, clock, evses, store, model)
