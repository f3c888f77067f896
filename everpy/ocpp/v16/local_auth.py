"""Local Auth List Management profile: SendLocalList, GetLocalListVersion."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.repository import Repository16

LIST = "local"


class LocalAuth:
    def __init__(self, ctx: BlockContext[Configuration], repository: Repository16) -> None:
        self.ctx = ctx
        self.repository = repository

    def info(self, id_tag: str) -> dict[str, Any] | None:
        return self.repository.id_tag_info(LIST, id_tag)

    def version(self) -> int:
        """The list's version; an empty list reads as 0 whatever version it was sent with (1.6 §5.10)."""
        store = self.ctx.store
        record = store.records("local_list_version").get(0)
        version = record.get("version") if isinstance(record, dict) else None
        if record is not None and not (isinstance(version, int) and 0 <= version <= 2**31 - 1):
            store.quarantine("record", "local_list_version", repr(record), "not a list version")
            store.remove_record("local_list_version", 0)
            version = None
        if version is None or self.repository.id_tag_count(LIST) == 0:
            return 0
        return version

    @handles("GetLocalListVersion")
    async def on_get_local_list_version(self, payload: dict[str, Any]) -> Reply:
        if not self.ctx.config.bool("LocalAuthListEnabled"):
            return Reply({"listVersion": -1})
        return Reply({"listVersion": self.version()})

    @handles("SendLocalList")
    async def on_send_local_list(self, payload: dict[str, Any]) -> Reply:
        config = self.ctx.config
        if not config.bool("LocalAuthListEnabled"):
            return Reply({"status": "NotSupported"})
        entries = payload.get("localAuthorizationList") or []
        version, full = payload["listVersion"], payload["updateType"] == "Full"
        if len(entries) > config.int("SendLocalListMaxLength"):
            return Reply({"status": "Failed"})
        if not full and version <= self.version():
            return Reply({"status": "VersionMismatch"})
        if full and any("idTagInfo" not in entry for entry in entries):
            return Reply({"status": "Failed"})
        try:
            self._apply(entries, version, full)
        except _ListFull:
            return Reply({"status": "Failed"})
        return Reply({"status": "Accepted"})

    def _apply(self, entries: list[dict[str, Any]], version: int, full: bool) -> None:
        config, store, tags = self.ctx.config, self.ctx.store, self.repository
        with store.atomic():  # all or nothing: a list that would overflow leaves the old list in place
            if full:
                tags.clear_id_tags(LIST)
            for entry in entries:
                if "idTagInfo" in entry:
                    tags.put_id_tag(LIST, entry["idTag"], entry["idTagInfo"])
                else:
                    tags.remove_id_tag(LIST, entry["idTag"])
            if tags.id_tag_count(LIST) > config.int("LocalAuthListMaxLength"):
                raise _ListFull
            store.put_record("local_list_version", 0, {"version": version})


class _ListFull(Exception):
    pass
