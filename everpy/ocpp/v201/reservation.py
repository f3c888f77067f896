"""Functional block H (reservation) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class Reservations:
    def __init__(self, ctx: Ctx, evses: Evses, status: Any) -> None:
        self.ctx, self.evses, self.status = ctx, evses, status

    async def restore(self) -> None: ...

    async def resync(self, evse_id: int) -> None: ...

    def used_by(self, evse_id: int, id_token: dict[str, Any]) -> int | None:
        """The reservation a transaction started with this token on this EVSE takes up, if any."""
        return None

    def ended(self, evse_id: int, reservation_id: int | None) -> None: ...
