"""Functional block B (provisioning) of OCPP 2.0.1: Get/SetVariables, reports, Reset.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class Provisioning:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: Any) -> None:
        self.ctx, self.evses, self.transactions = ctx, evses, transactions

    def boot_reason(self) -> str:
        """BootReasonEnumType of the next BootNotification (PowerUp, RemoteReset, ...)."""
        return "PowerUp"

    def boot_accepted(self) -> None: ...

    def readable(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        return [], list(keys)

    def change(self, key: str, value: str) -> str:
        return "NotSupported"

    def local_get(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []

    def local_set(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        return []
