"""Local Auth List Management profile: SendLocalList, GetLocalListVersion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from everpy.ocpp.rpc import Reply

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

LIST = "local"


class LocalAuth:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        cp.handle("SendLocalList", self.on_send_local_list)
        cp.handle("GetLocalListVersion", self.on_get_local_list_version)

    def info(self, id_tag: str) -> dict[str, Any] | None:
        return self.cp.store.id_tag_info(LIST, id_tag)

    def version(self) -> int:
        record = self.cp.store.records("local_list_version").get(0)
        return 0 if record is None else int(record["version"])

    async def on_get_local_list_version(self, payload: dict[str, Any]) -> Reply:
        if not self.cp.config.bool("LocalAuthListEnabled"):
            return Reply({"listVersion": -1})
        return Reply({"listVersion": self.version()})

    async def on_send_local_list(self, payload: dict[str, Any]) -> Reply:
        config = self.cp.config
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
        config, store = self.cp.config, self.cp.store
        with store.atomic():  # all or nothing: a list that would overflow leaves the old list in place
            if full:
                store.clear_id_tags(LIST)
            for entry in entries:
                if "idTagInfo" in entry:
                    store.put_id_tag(LIST, entry["idTag"], entry["idTagInfo"])
                else:
                    store.remove_id_tag(LIST, entry["idTag"])
            if store.id_tag_count(LIST) > config.int("LocalAuthListMaxLength"):
                raise _ListFull
            store.put_record("local_list_version", 0, {"version": version})


class _ListFull(Exception):
    pass
