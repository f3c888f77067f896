"""Functional blocks E (transactions) and J (meter values) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, Signal
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class Transactions:
    def __init__(self, ctx: Ctx, evses: Evses, authorization: Any) -> None:
        self.ctx, self.evses, self.authorization = ctx, evses, authorization
        self.started: Signal[int] = Signal()  # EVSE id
        self.ended: Signal[int] = Signal()  # EVSE id

    async def recover(self) -> None: ...

    async def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None: ...

    def on_powermeter(self, evse_id: int, reading: dict[str, Any]) -> None: ...

    def on_limits(self, evse_id: int, limits: dict[str, Any]) -> None: ...

    def resync(self, evse_id: int, info: dict[str, Any]) -> None: ...

    async def stop(self, evse_id: int, reason: str) -> bool:
        return await self.ctx.station.stop_transaction(evse_id, reason)

    def expect_remote_start(self, evse_id: int | None, remote_start_id: int) -> None:
        """The next transaction (on evse_id, or any) started from RequestStartTransaction(remoteStartId)."""

    async def trigger_transaction_event(self, evse_id: int | None) -> str:
        return "Rejected"

    async def trigger_meter_values(self, evse_id: int | None) -> str:
        return "Rejected"

    def cancel_timers(self) -> None: ...


class TransactionQueue:
    """The session's MessagePolicy for 2.0.1 (TransactionEvent and the other queued messages)."""

    def __init__(self, ctx: Ctx, transactions: Transactions) -> None:
        self.ctx, self.transactions = ctx, transactions

    def knows(self, action: str) -> bool:
        return action in ("TransactionEvent", "SecurityEventNotification", "StatusNotification")

    def prepare(self, message: Any) -> dict[str, Any]:
        return dict(message.payload)

    def delivered(self, message: Any, result: dict[str, Any]) -> None: ...

    def dropped(self, message: Any) -> None: ...

    def attempts(self) -> int:
        return 3

    def retry_interval(self) -> float:
        return 60.0
