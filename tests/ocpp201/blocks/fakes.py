"""A fake context for testing one OCPP 2.0.1 functional block alone (no bus, no websocket).

The store is a real OcppStore opened for 2.0.1 on a temporary file, the device model the station's real
one (every definition), the Station and sender the fakes of the 1.6 block tests (they are version-neutral)
and time a FakeClock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.ocpp.blocks import BlockContext, Jobs, handlers_of
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables import DEFINITIONS
from tests.ocpp.blocks.fakes import LOG, FakeSender, FakeStation

__all__ = ["Fixture", "FakeSender", "FakeStation", "block_context", "handle"]


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


async def handle(fixture: Fixture, action: str, payload: dict[str, Any], *blocks: object,
                 check_request: bool = True) -> dict[str, Any]:
    """A CSMS request as the session routes it: checked against the request schema (unless a test hands the
    block what the schema would stop, to test the block's own checks), given to the block that ``@handles``
    it, the answer checked against the response schema, its after-work run and the block's jobs finished.
    Returns the answer's payload."""
    if check_request:
        DIALECT.check(action, payload, response=False)
    reply = await handlers_of(*blocks)[action](payload)
    DIALECT.check(action, reply.payload, response=True)
    if reply.after is not None:
        await reply.after()
    await fixture.ctx.jobs.wait_idle()
    return reply.payload
