"""Functional blocks N (diagnostics) and P (DataTransfer) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel

Ctx = BlockContext[DeviceModel]


class Diagnostics:
    def __init__(self, ctx: Ctx, events: Any, authorization: Any) -> None:
        self.ctx, self.events, self.authorization = ctx, events, authorization

    async def on_log_status(self, status: dict[str, Any]) -> None: ...

    async def trigger_status(self) -> str:
        return "Rejected"


class DataTransfers:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
