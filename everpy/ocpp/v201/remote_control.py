"""Functional block F (remote control) of OCPP 2.0.1: remote start/stop, unlock, TriggerMessage.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class RemoteControl:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: Any, authorization: Any, smart_charging: Any) -> None:
        self.ctx, self.evses = ctx, evses
        self.transactions, self.authorization, self.smart_charging = transactions, authorization, smart_charging


class Trigger:
    def __init__(self, ctx: Ctx, evses: Evses, status: Any, transactions: Any, firmware: Any, diagnostics: Any,
                 certificates: Any, boot_payload: Any) -> None:
        self.ctx, self.evses, self.status, self.transactions = ctx, evses, status, transactions
        self.firmware, self.diagnostics, self.certificates, self.boot_payload = (firmware, diagnostics,
                                                                                 certificates, boot_payload)
