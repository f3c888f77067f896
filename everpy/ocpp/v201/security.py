"""Functional blocks A (security) and M (certificate management) of OCPP 2.0.1.

STUB: the skeleton of this block (its constructor and the methods other blocks call); being filled in.
"""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.v201.device_model import DeviceModel

Ctx = BlockContext[DeviceModel]


class SecurityEvents:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        self.ctx.log.warning("security event %s %s", kind, info)


class Certificates:
    def __init__(self, ctx: Ctx, events: SecurityEvents, certificate_store: Any, common_name: str) -> None:
        self.ctx, self.events, self.certificate_store, self.common_name = ctx, events, certificate_store, common_name

    async def trigger_sign_certificate(self, use: str) -> str:
        """TriggerMessage SignChargingStationCertificate / SignV2GCertificate: Accepted or Rejected."""
        return "Rejected"
