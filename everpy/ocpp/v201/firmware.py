"""Functional block L (firmware management) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class Firmware:
    def __init__(self, ctx: Ctx, evses: Evses, events: Any) -> None:
        self.ctx, self.evses, self.events = ctx, evses, events

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None: ...

    def transaction_ended(self, evse_id: int) -> None: ...

    async def trigger_status(self) -> str:
        return "Rejected"
