"""Functional block K (smart charging) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class SmartCharging:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: Any) -> None:
        self.ctx, self.evses, self.transactions = ctx, evses, transactions

    async def apply(self) -> None: ...

    def accept_remote_start_profile(self, evse_id: int | None, profile: dict[str, Any]) -> str | None:
        """A RequestStartTransaction's chargingProfile (TxProfile): None if installed, else the reason."""
        return "smart charging not available"

    def cancel_timers(self) -> None: ...
