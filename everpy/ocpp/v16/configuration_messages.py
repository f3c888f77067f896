"""GetConfiguration and ChangeConfiguration: the CSMS's view of the configuration keys."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Fault, OcppCallError, Reply
from everpy.ocpp.security import ConnectionSecurity
from everpy.ocpp.v16.config_keys import Access
from everpy.ocpp.v16.configuration import Configuration, lookup

RECONNECT_DELAY_S = 0.5  # after the answer is out


class ConfigurationMessages:
    def __init__(self, ctx: BlockContext[Configuration], security: ConnectionSecurity) -> None:
        self.ctx = ctx
        self.security = security

    @handles("GetConfiguration")
    async def on_get_configuration(self, payload: dict[str, Any]) -> Reply:
        keys = payload.get("key") or []
        if len(keys) > self.ctx.config.int("GetConfigurationMaxKeys"):
            raise OcppCallError(Fault.OCCURRENCE, "more keys than GetConfigurationMaxKeys")
        known, unknown = self.ctx.config.readable(keys)
        answer: dict[str, Any] = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return Reply(answer)

    @handles("ChangeConfiguration")
    async def on_change_configuration(self, payload: dict[str, Any]) -> Reply:
        return Reply({"status": self.change(payload["key"], payload["value"])})

    def change(self, name: str, value: str) -> str:
        key = lookup(name)
        if key is None:
            return "NotSupported"
        if key.access is Access.READ_ONLY or not key.validate(value):
            return "Rejected"
        clock, sender = self.ctx.clock, self.ctx.sender
        if key.name == "SecurityProfile":
            if not self.security.raise_profile(int(value)):
                return "Rejected"
            clock.call_later(RECONNECT_DELAY_S, sender.request_reconnect)
            return "Accepted"
        self.ctx.config.set(key.name, value)
        self.ctx.log.info("configuration %s changed",
                          key.name if key.access is Access.WRITE_ONLY else f"{key.name}={value}")
        if key.name == "AuthorizationKey" and self.security.settings.profile() in (1, 2):
            clock.call_later(RECONNECT_DELAY_S, sender.request_reconnect)  # the next connection uses the new key
        return "RebootRequired" if key.reboot_required else "Accepted"
