"""Functional blocks C (authorization) and D (local authorization list) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses

Ctx = BlockContext[DeviceModel]


class Authorization:
    def __init__(self, ctx: Ctx, evses: Evses) -> None:
        self.ctx, self.evses = ctx, evses

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        """auth_token_validator.validate_token: an authorization ValidationResult."""
        return {"authorization_status": "Invalid"}

    def token_info(self, id_token: dict[str, Any], info: dict[str, Any]) -> None:
        """An idTokenInfo the CSMS sent outside Authorize (TransactionEvent answer): updates the cache."""

    def forget(self, id_token: dict[str, Any]) -> bool:
        """CustomerInformation clear: remove the token from the cache; True if it was there."""
        return False
