"""Functional block G (availability) of OCPP 2.0.1 and the StatusNotifications.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class StatusNotifications:
    def __init__(self, ctx: Ctx, evses: Evses, pacing: Any) -> None:
        self.ctx, self.evses, self.pacing = ctx, evses, pacing

    async def send(self, evse_id: int) -> None: ...

    async def after_connect(self) -> None: ...

    async def trigger(self, evse_id: int | None, connector_id: int | None) -> str:
        return "Rejected"

    def cancel_timers(self) -> None: ...


class Availability:
    def __init__(self, ctx: Ctx, evses: Evses, status: StatusNotifications) -> None:
        self.ctx, self.evses, self.status = ctx, evses, status

    async def restore(self) -> None: ...

    async def resync(self, evse_id: int) -> None: ...

    def transaction_ended(self, evse_id: int) -> None: ...

    async def change(self, evse_id: int, connector_id: int | None, operative: bool) -> str:
        return "Rejected"
