"""Authorisation: Authorize, the authorisation cache (ClearCache) and the offline rules
(LocalPreAuthorize, LocalAuthorizeOffline, AllowOfflineTxForUnknownId)."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import CallTimeout, InvalidResponse, OcppCallError, Reply
from everpy.ocpp.session import NotOnline
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.local_auth import LocalAuth
from everpy.ocpp.v16.repository import Repository16
from everpy.ocpp.v16.reservation import Reservations
from everpy.ocpp.v16.transactions import ID_TAG_MAX, StartAnswered
from everpy.ocpp.values import parse_time

AUTH_STATUSES = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}
CACHE = "cache"


class Authorization:
    def __init__(self, ctx: BlockContext[Configuration], repository: Repository16, local_auth: LocalAuth,
                 reservations: Reservations) -> None:
        self.ctx = ctx
        self.repository = repository
        self.local_auth = local_auth
        self.reservations = reservations

    def cache(self, id_tag: str, id_tag_info: dict[str, Any] | None) -> None:
        if id_tag_info is None or not self.ctx.config.bool("AuthorizationCacheEnabled"):
            return
        self.repository.put_id_tag(CACHE, id_tag, id_tag_info)

    def start_answered(self, answer: StartAnswered) -> None:
        """StartTransaction.conf: cache the verdict; a refused id tag stops (or pauses) the transaction."""
        self.cache(answer.id_tag, answer.id_tag_info)
        if answer.connector_id is None:
            return
        parent = answer.id_tag_info.get("parentIdTag")
        if answer.id_tag_info["status"] == "Accepted":
            if parent:  # Auth learns the group of the running transaction (stop by parentIdTag, TC_069)
                self.ctx.station.validation_changed(answer.connector_id, {
                    "authorization_status": "Accepted", "parent_id_token": {"value": parent, "type": "Central"}})
            return
        station, connector_id = self.ctx.station, answer.connector_id
        if self.ctx.config.bool("StopTransactionOnInvalidId"):
            self.ctx.jobs.spawn(station.stop_transaction(connector_id, "DeAuthorized"))
        else:
            self.ctx.jobs.spawn(station.pause_charging(connector_id))

    def _locally_valid(self, id_tag: str) -> dict[str, Any] | None:
        """idTagInfo from the local list (first) or the cache if it says Accepted and has not expired."""
        config = self.ctx.config
        sources = []
        if config.bool("LocalAuthListEnabled"):
            sources.append(self.local_auth.info(id_tag))
        if config.bool("AuthorizationCacheEnabled"):
            sources.append(self.repository.id_tag_info(CACHE, id_tag))
        for info in sources:
            if info is None:
                continue
            expiry = info.get("expiryDate")
            expired = expiry is not None and parse_time(expiry) <= self.ctx.clock.time()
            if info.get("status") == "Accepted" and not expired:
                return info
            return {**info, "status": "Expired" if expired else info.get("status", "Invalid")}
        return None

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        """idTagInfo for an id tag, following LocalPreAuthorize / LocalAuthorizeOffline /
        AllowOfflineTxForUnknownId."""
        config, sender = self.ctx.config, self.ctx.sender
        local = self._locally_valid(id_tag)
        if sender.online:
            if local is not None and local["status"] == "Accepted" and config.bool("LocalPreAuthorize"):
                return local
            try:
                result = await sender.call("Authorize", {"idTag": id_tag[:ID_TAG_MAX]})
            except (NotOnline, CallTimeout):
                pass
            except (OcppCallError, InvalidResponse) as error:
                self.ctx.log.warning("Authorize failed: %s", error)
                return {"status": "Invalid"}
            else:
                self.cache(id_tag, result["idTagInfo"])
                return dict(result["idTagInfo"])
        if local is not None:
            if config.bool("LocalAuthorizeOffline") or local["status"] != "Accepted":
                return local
            return {"status": "Invalid"}
        if config.bool("AllowOfflineTxForUnknownId"):
            return {"status": "Accepted"}
        return {"status": "Invalid"}

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        """auth_token_validator.validate_token: an authorization ValidationResult."""
        id_tag = provided_token["id_token"]["value"]
        info = await self.authorize(id_tag)
        result: dict[str, Any] = {"authorization_status": info["status"] if info["status"] in AUTH_STATUSES
                                  else "Invalid"}
        if "expiryDate" in info:
            result["expiry_time"] = info["expiryDate"]
        parent = info.get("parentIdTag")
        if parent:
            result["parent_id_token"] = {"value": parent, "type": "Central"}
        return self.reservations.restrict(result, id_tag, parent)

    @handles("ClearCache")
    async def on_clear_cache(self, payload: dict[str, Any]) -> Reply:
        self.repository.clear_id_tags(CACHE)
        return Reply({"status": "Accepted"})
