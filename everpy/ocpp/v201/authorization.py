"""Functional blocks C (authorization) and D (local authorization list) of OCPP 2.0.1.

C: the validator behind the charger's Auth module (auth_token_validator.validate_token): Authorize to the
CSMS, the authorization cache (AuthCacheCtrlr: Enabled, LifeTime, Storage with the LRU policy,
DisablePostAuthorize; C10/C11/C12), LocalPreAuthorize and LocalAuthorizeOffline, OfflineTxForUnknownIdEnabled,
DisableRemoteAuthorization, AuthCtrlr.Enabled, the group of a token (a token of the same group may stop a
transaction) and the master pass (MasterPassGroupId: may stop, never start), ClearCache, and forgetting a
token for CustomerInformation.

D: SendLocalList (Full / Differential, versionNumber, the per-message and storage limits),
GetLocalListVersion, LocalAuthListCtrlr.Entries.

Both lists live in the tables of :class:`everpy.ocpp.v201.auth_repository.AuthRepository`, so they survive a
restart; a row that no longer fits is quarantined there and the token is then authorized the normal way.
"""

from __future__ import annotations

import json
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import CallTimeout, Fault, InvalidResponse, OcppCallError, Reply
from everpy.ocpp.session import NotOnline
from everpy.ocpp.v201.auth_repository import AuthRepository, id_token_info_problem, id_token_problem
from everpy.ocpp.v201.device_model import DeviceModel, Ref
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.auth import (
    AUTH_ENABLED,
    CACHE_DISABLE_POST_AUTHORIZE,
    CACHE_ENABLED,
    CACHE_LIFETIME,
    CACHE_STORAGE,
    DISABLE_REMOTE_AUTHORIZATION,
    LOCAL_AUTHORIZE_OFFLINE,
    LOCAL_LIST_BYTES_PER_MESSAGE,
    LOCAL_LIST_DISABLE_POST_AUTHORIZE,
    LOCAL_LIST_ENABLED,
    LOCAL_LIST_ENTRIES,
    LOCAL_LIST_ITEMS_PER_MESSAGE,
    LOCAL_LIST_STORAGE,
    LOCAL_PRE_AUTHORIZE,
    MASTER_PASS_GROUP_ID,
    OFFLINE_TX_FOR_UNKNOWN_ID,
)
from everpy.ocpp.values import parse_time

Ctx = BlockContext[DeviceModel]
IdTokenInfo = dict[str, Any]
LIST, CACHE = "list", "cache"  # where a known token's idTokenInfo came from
# the DisablePostAuthorize variable of each source: a token it holds as not Accepted is refused at once
POST_AUTHORIZE_DISABLED: dict[str, Ref] = {LIST: LOCAL_LIST_DISABLE_POST_AUTHORIZE, CACHE: CACHE_DISABLE_POST_AUTHORIZE}
NOT_CACHED_TYPES = frozenset({"NoAuthorization"})  # nothing to remember about them


def _fold(value: str) -> str:
    """An id token as the tables compare it: case-insensitive for ASCII (SQLite's NOCASE)."""
    return "".join(c.lower() if c.isascii() else c for c in value)


class Authorization:
    def __init__(self, ctx: Ctx, evses: Evses) -> None:
        self.ctx, self.evses = ctx, evses
        self.repository = AuthRepository(ctx.store)
        self.repository.check_list()
        self._publish_entries()

    # -- C: validating a token -----------------------------------------------------------------------
    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        """auth_token_validator.validate_token: an authorization ValidationResult."""
        presented = provided_token.get("id_token") if isinstance(provided_token, dict) else None
        token = {"idToken": presented.get("value"), "type": presented.get("type")} \
            if isinstance(presented, dict) else None
        if (reason := id_token_problem(token)) is not None or token is None:
            self.ctx.log.error("validate_token: not a token (%s): %r", reason, provided_token)
            return {"authorization_status": "Invalid"}
        if not self.ctx.config.bool(AUTH_ENABLED) or token["type"] == "NoAuthorization":
            return {"authorization_status": "Accepted"}  # C01: no authorization asked of this station
        return self._validation_result(await self.authorize(token))

    async def authorize(self, token: dict[str, Any]) -> IdTokenInfo:
        """The idTokenInfo that decides for a token (IdTokenType), by the rules of C01, C10-C15: the local
        list first, then the cache; the CSMS unless they settle it; the offline rules when it cannot be
        asked."""
        model = self.ctx.config
        known, source = self._known(token)
        if self.ctx.sender.online and not model.bool(DISABLE_REMOTE_AUTHORIZATION):
            if known is not None and source is not None:
                if known["status"] == "Accepted" and model.bool(LOCAL_PRE_AUTHORIZE):
                    return self._used(token, known, source)  # C12 / C14: start at once
                if known["status"] != "Accepted" and model.bool(POST_AUTHORIZE_DISABLED[source]):
                    return known
            answer = await self._ask_csms(token)
            if answer is not None:
                return answer
            # no answer after all: the station is offline for this token
        elif self.ctx.sender.online:
            # DisableRemoteAuthorization: the cache and the local list alone decide
            if known is not None and source is not None:
                return self._used(token, known, source) if known["status"] == "Accepted" else known
            return {"status": "Unknown"}
        if known is not None and source is not None:
            if known["status"] != "Accepted":
                return known  # a token known to be refused is never let in offline (C15, errata)
            if model.bool(LOCAL_AUTHORIZE_OFFLINE):
                return self._used(token, known, source)
            return {"status": "Unknown"}
        if model.bool(OFFLINE_TX_FOR_UNKNOWN_ID):
            return {"status": "Accepted"}  # C15.FR.01
        return {"status": "Unknown"}

    def _known(self, token: dict[str, Any]) -> tuple[IdTokenInfo | None, str | None]:
        """What the local list (first) or the cache holds for the token, as of now."""
        model, repository = self.ctx.config, self.repository
        value, kind = token["idToken"], token["type"]
        if model.bool(LOCAL_LIST_ENABLED):
            info = repository.list_info(value, kind)
            if info is not None:
                return self._as_of_now(info), LIST
        if model.bool(CACHE_ENABLED):
            entry = repository.cache_entry(value, kind)
            if entry is not None:
                if entry.used_at + model.int(CACHE_LIFETIME) < self.ctx.clock.time():
                    repository.remove_cache(value, kind)  # AuthCacheCtrlr.LifeTime since its last use passed
                else:
                    return self._as_of_now(entry.info), CACHE
        return None, None

    def _as_of_now(self, info: IdTokenInfo) -> IdTokenInfo:
        """An entry whose cacheExpiryDateTime has passed counts as Expired (C10.FR.03)."""
        expiry = info.get("cacheExpiryDateTime")
        if expiry is not None and parse_time(expiry) <= self.ctx.clock.time():
            return {**info, "status": "Expired"}
        return info

    def _used(self, token: dict[str, Any], info: IdTokenInfo, source: str) -> IdTokenInfo:
        if source == CACHE:  # the LRU policy and LifeTime count from the last use
            self.repository.touch_cache(token["idToken"], token["type"], self.ctx.clock.time())
        return info

    async def _ask_csms(self, token: dict[str, Any]) -> IdTokenInfo | None:
        """The CSMS's idTokenInfo (cached), {"status": "Invalid"} if it refused the request or answered
        with something unusable, None if it could not be asked."""
        try:
            result = await self.ctx.sender.call("Authorize", {"idToken": token})
        except (NotOnline, CallTimeout):
            return None
        except (OcppCallError, InvalidResponse) as error:
            self.ctx.log.warning("Authorize failed: %s", error)
            return {"status": "Invalid"}
        info = result.get("idTokenInfo")
        if (reason := id_token_info_problem(info)) is not None:
            self.ctx.log.warning("Authorize answer not used (%s): %r", reason, info)
            return {"status": "Invalid"}
        assert isinstance(info, dict)
        self._cache(token, info)
        return dict(info)

    def _validation_result(self, info: IdTokenInfo) -> dict[str, Any]:
        result: dict[str, Any] = {"authorization_status": info["status"]}
        if "cacheExpiryDateTime" in info:
            result["expiry_time"] = info["cacheExpiryDateTime"]
        group = info.get("groupIdToken")
        if group is not None:  # Auth lets a token of the same group stop the transaction (C09)
            result["parent_id_token"] = {"value": group["idToken"], "type": group["type"]}
        if "evseId" in info:  # ids this station does not have are no EVSE the token may use
            result["evse_ids"] = [evse_id for evse_id in info["evseId"] if evse_id in self.evses]
        master = self.ctx.config.str(MASTER_PASS_GROUP_ID)
        if master and group is not None and _fold(group["idToken"]) == _fold(master):
            result["evse_ids"] = []  # C16.FR.02: a master pass may stop transactions, never start one
        return result

    # -- C10: the authorization cache ------------------------------------------------------------------
    def token_info(self, id_token: dict[str, Any], info: dict[str, Any]) -> None:
        """An idTokenInfo the CSMS sent outside Authorize (TransactionEvent answer): updates the cache."""
        if (reason := id_token_problem(id_token) or id_token_info_problem(info)) is not None:
            self.ctx.log.warning("idTokenInfo for %r not cached: %s", id_token, reason)
            return
        self._cache(id_token, info)

    def _cache(self, token: dict[str, Any], info: IdTokenInfo) -> None:
        model, repository = self.ctx.config, self.repository
        value, kind = token["idToken"], token["type"]
        if not model.bool(CACHE_ENABLED) or kind in NOT_CACHED_TYPES:
            return
        if model.bool(LOCAL_LIST_ENABLED) and repository.list_info(value, kind) is not None:
            return  # the local list decides for its tokens; a copy in the cache could only disagree
        now = self.ctx.clock.time()
        repository.drop_unused_since(now - model.int(CACHE_LIFETIME))
        repository.put_cache(value, kind, {key: info[key] for key in info if key != "customData"}, now)
        storage = model.int(CACHE_STORAGE)
        if repository.cache_count() > storage:
            repository.drop_least_recently_used(storage)

    def forget(self, id_token: dict[str, Any]) -> bool:
        """CustomerInformation clear: remove the token from the cache; True if it was there."""
        if id_token_problem(id_token) is not None:
            return False
        return self.repository.remove_cache(id_token["idToken"], id_token["type"])

    @handles("ClearCache")
    async def on_clear_cache(self, payload: dict[str, Any]) -> Reply:
        if not self.ctx.config.bool(CACHE_ENABLED):
            return Reply({"status": "Rejected"})  # C11.FR.04
        self.repository.clear_cache()
        return Reply({"status": "Accepted"})

    # -- D: the local authorization list ---------------------------------------------------------------
    def _publish_entries(self) -> None:
        self.ctx.config.set_internal(LOCAL_LIST_ENTRIES, str(self.repository.list_count()))

    @handles("GetLocalListVersion")
    async def on_get_local_list_version(self, payload: dict[str, Any]) -> Reply:
        if not self.ctx.config.bool(LOCAL_LIST_ENABLED):
            return Reply({"versionNumber": 0})  # D02: 0 is "no local list"
        return Reply({"versionNumber": self.repository.list_version()})

    @handles("SendLocalList")
    async def on_send_local_list(self, payload: dict[str, Any]) -> Reply:
        model = self.ctx.config
        entries: list[dict[str, Any]] = payload.get("localAuthorizationList") or []
        if len(entries) > model.int(LOCAL_LIST_ITEMS_PER_MESSAGE):
            raise OcppCallError(Fault.OCCURRENCE, f"more than LocalAuthListCtrlr.ItemsPerMessage"
                                f" ({model.int(LOCAL_LIST_ITEMS_PER_MESSAGE)}) entries")
        size = len(json.dumps(payload, separators=(",", ":")).encode())
        if size > model.int(LOCAL_LIST_BYTES_PER_MESSAGE):
            raise OcppCallError(Fault.FORMATION, f"{size} bytes, more than LocalAuthListCtrlr.BytesPerMessage"
                                f" ({model.int(LOCAL_LIST_BYTES_PER_MESSAGE)})")
        for index, entry in enumerate(entries):
            if "idTokenInfo" in entry and (reason := id_token_info_problem(entry["idTokenInfo"])) is not None:
                raise OcppCallError(Fault.PROPERTY, f"localAuthorizationList[{index}].idTokenInfo: {reason}")
        version, full = payload["versionNumber"], payload["updateType"] == "Full"
        keys = [(_fold(entry["idToken"]["idToken"]), entry["idToken"]["type"]) for entry in entries]
        if not model.bool(LOCAL_LIST_ENABLED) or version <= 0 or len(set(keys)) != len(keys):
            return Reply({"status": "Failed"})  # D01.FR.18 (versionNumber > 0), D01.FR.06 (unique tokens)
        if full and any("idTokenInfo" not in entry for entry in entries):
            return Reply({"status": "Failed"})
        if not full and version <= self.repository.list_version():
            return Reply({"status": "VersionMismatch"})  # D01.FR.19
        try:
            self._apply(entries, version, full)
        except _ListFull:
            return Reply({"status": "Failed"})
        finally:
            self._publish_entries()
        return Reply({"status": "Accepted"})

    def _apply(self, entries: list[dict[str, Any]], version: int, full: bool) -> None:
        repository = self.repository
        with self.ctx.store.atomic():  # all or nothing: a list that would not fit leaves the old one in place
            if full:
                repository.clear_list()
            for entry in entries:
                token = entry["idToken"]
                if "idTokenInfo" in entry:
                    info = {key: value for key, value in entry["idTokenInfo"].items() if key != "customData"}
                    repository.put_list(token["idToken"], token["type"], info)
                else:
                    repository.remove_list(token["idToken"], token["type"])
            if repository.list_count() > self.ctx.config.int(LOCAL_LIST_STORAGE):
                raise _ListFull
            repository.set_list_version(version)


class _ListFull(Exception):
    """The list would hold more entries than LocalAuthListCtrlr.Storage (rolls the update back)."""
