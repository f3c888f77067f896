"""StatusNotifications of a flapping connector on the fakes (real store, FakeSender, FakeClock): paced per
connector, the latest status delivered, TriggerMessage never held back."""

from __future__ import annotations

from types import SimpleNamespace

from everpy.ocpp.pacing import PacingSettings
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.status import StatusNotifications
from everpy.ocpp.v16.trigger import Trigger
from everpy.ocpp.values import rfc3339

from .fakes import block_context

FAULT = {"type": "evse_board_support/MREC17EVSEContactorFault", "sub_type": "", "message": "relay"}


def status_block(tmp_path, ids=None, burst=3, interval_s=10.0):
    ctx, station, sender, clock, _ = block_context(tmp_path, ids)
    connectors = Connectors(station.evse_ids())
    return StatusNotifications(ctx, connectors, 5.0, PacingSettings(burst, interval_s)), connectors, sender, clock


def sent(sender, connector_id=1):
    return [(p["status"], p["timestamp"]) for p in sender.of("StatusNotification") if p["connectorId"] == connector_id]


async def test_a_flapping_connector_is_paced_and_its_last_status_arrives(tmp_path):
    status, connectors, sender, clock = status_block(tmp_path, [1, 2])
    c = connectors[1]
    c.session_status = "SuspendedEVSE"
    for n in range(3000):  # 50 changes a second for a minute
        c.errors = {("x", ""): FAULT} if n % 2 == 0 else {}
        await status.send(1)
        await clock.advance(0.02)
    c.errors = {("x", ""): FAULT}
    await status.send(1)
    await clock.advance(30)
    statuses = [s for s, _ in sent(sender)]
    assert len(statuses) <= 3 + 90 / 10 + 1
    assert statuses[-1] == "Faulted"
    await status.send(2)  # the other connector is not held back by the flapping one
    assert [s for s, _ in sent(sender, 2)] == ["Available"]


async def test_a_held_status_keeps_the_time_it_began(tmp_path):
    status, connectors, sender, clock = status_block(tmp_path, burst=1)
    connectors[1].session_status = "Preparing"
    await status.send(1)
    await clock.advance(2)
    connectors[1].session_status = "Charging"
    await status.send(1)  # held: the one slot went to Preparing
    began = clock.time()
    await clock.advance(10)
    assert sent(sender)[-1][0] == "Charging"
    assert sent(sender)[-1][1] == rfc3339(began)


async def test_trigger_message_status_is_never_held_back(tmp_path):
    status, connectors, sender, clock = status_block(tmp_path, burst=1)
    ctx = status.ctx
    unused = SimpleNamespace(send_firmware_status=None, send_diagnostics_status=None)  # not triggered here
    trigger = Trigger(ctx, connectors, status, unused, unused, dict)  # type: ignore[arg-type]
    await status.send(1)
    for _ in range(3):
        reply = await trigger.on_trigger_message({"requestedMessage": "StatusNotification", "connectorId": 1})
        assert reply.after is not None
        await reply.after()
    assert [s for s, _ in sent(sender)] == ["Available"] * 4
