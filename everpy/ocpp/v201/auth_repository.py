"""The OCPP 2.0.1 tables of functional blocks C and D: the authorization cache and the local authorization
list, with the list's version.

:class:`AuthRepository` keeps them in an :class:`~everpy.ocpp.store.OcppStore` opened for 2.0.1, through the
store's methods for repositories (see ``everpy/ocpp/v16/repository.py``): registered when the repository is
created, written through the store's fault handling, every row checked when read back and moved to
quarantine when it no longer fits (an entry that cannot be trusted is no entry: the token is then
authorized the normal way). Id tokens are compared case-insensitively (OCPP 2.0.1 IdTokenType) together
with their type.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from everpy.ocpp.store import BadRow, OcppStore, Tables, int_value, json_object, str_value

VERSION = "2.0.1"
ID_TOKEN_MAX = 36
ID_TOKEN_TYPES = frozenset({"Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
                            "NoAuthorization"})
AUTHORIZATION_STATUSES = frozenset({"Accepted", "Blocked", "ConcurrentTx", "Expired", "Invalid", "NoCredit",
                                    "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime", "Unknown"})
LIST_VERSION_MAX = 2**31 - 1
CHARGING_PRIORITY = range(-9, 10)  # IdTokenInfoType.chargingPriority, 2.0.1 Part 2 §2.29
CACHE_TABLE, LIST_TABLE, VERSION_TABLE = "v201_auth_cache", "v201_local_list", "v201_local_list_version"


def _create_tables(db: sqlite3.Connection) -> None:
    # used_seq orders the cache by last use (the LRU policy), used_at is when (AuthCacheCtrlr.LifeTime)
    db.execute(f"CREATE TABLE IF NOT EXISTS {CACHE_TABLE} (id_token TEXT NOT NULL COLLATE NOCASE, type TEXT NOT NULL,"
               " info TEXT NOT NULL, used_at REAL NOT NULL, used_seq INTEGER NOT NULL, PRIMARY KEY (id_token, type))")
    db.execute(f"CREATE TABLE IF NOT EXISTS {LIST_TABLE} (id_token TEXT NOT NULL COLLATE NOCASE, type TEXT NOT NULL,"
               " info TEXT NOT NULL, PRIMARY KEY (id_token, type))")
    db.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")


TABLES = Tables(
    name="v201_auth",
    columns={
        CACHE_TABLE: frozenset({"id_token", "type", "info", "used_at", "used_seq"}),
        LIST_TABLE: frozenset({"id_token", "type", "info"}),
        VERSION_TABLE: frozenset({"id", "version"}),
    },
    migrations=(_create_tables,),
)


def time_problem(value: Any) -> str | None:
    """Why a value is not an RFC 3339 date-time with an offset (None if it is)."""
    if not isinstance(value, str):
        return "not text"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "not an RFC 3339 date-time"
    return None if parsed.tzinfo is not None else "a date-time without an offset"


def id_token_problem(token: Any) -> str | None:
    """Why a value is not an IdTokenType {idToken, type} (None if it is)."""
    if not isinstance(token, dict):
        return "idToken is not an object"
    value, kind = token.get("idToken"), token.get("type")
    if not isinstance(value, str) or len(value) > ID_TOKEN_MAX:
        return f"idToken is not text of at most {ID_TOKEN_MAX} characters"
    if kind not in ID_TOKEN_TYPES:
        return f"idToken type {kind!r} is not an IdTokenEnumType"
    return None


def id_token_info_problem(info: Any) -> str | None:
    """Why a value is not a usable IdTokenInfoType (None if it is): the schema's rules plus the ranges it
    leaves open (EVSE ids from 1, chargingPriority -9..9)."""
    if not isinstance(info, dict):
        return "idTokenInfo is not an object"
    if info.get("status") not in AUTHORIZATION_STATUSES:
        return f"status {info.get('status')!r} is not an AuthorizationStatusEnumType"
    if "cacheExpiryDateTime" in info and (reason := time_problem(info["cacheExpiryDateTime"])) is not None:
        return f"cacheExpiryDateTime is {reason}"
    evse_ids = info.get("evseId", [])
    if not isinstance(evse_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1
                                                 for i in evse_ids):
        return "evseId is not a list of EVSE ids (1 and up)"
    priority = info.get("chargingPriority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority not in CHARGING_PRIORITY:
        return "chargingPriority is not an integer from -9 to 9"
    if "groupIdToken" in info and (reason := id_token_problem(info["groupIdToken"])) is not None:
        return f"groupIdToken: {reason}"
    return None


@dataclass(frozen=True)
class CacheEntry:
    info: dict[str, Any]
    used_at: float  # epoch seconds of the last use


class AuthRepository:
    """The authorization cache and the local authorization list of OCPP 2.0.1, in the store."""

    def __init__(self, store: OcppStore) -> None:
        if store.ocpp_version != VERSION:
            raise ValueError(f"AuthRepository needs a store opened for OCPP {VERSION}, not {store.ocpp_version}")
        store.register_tables(TABLES)
        self.store = store

    def _quarantine(self, table: str, row: Sequence[Any], reason: str) -> None:
        """row[0] is the rowid; the rest is what is kept for diagnostics."""
        self.store.move_to_quarantine("id_token", f"{VERSION} {table}", row[1:], reason, table, row[0])

    def _checked_info(self, table: str, row: Sequence[Any]) -> dict[str, Any] | None:
        """The idTokenInfo of a row (rowid, id_token, type, info, ...), or None (quarantined) if it no longer
        fits."""
        try:
            token = {"idToken": str_value(row[1], "id_token"), "type": str_value(row[2], "type")}
            if (reason := id_token_problem(token)) is not None:
                raise BadRow(reason)
            info = json_object(row[3], "info")
            if (reason := id_token_info_problem(info)) is not None:
                raise BadRow(reason)
        except BadRow as bad:
            self._quarantine(table, row, str(bad))
            return None
        return info

    # -- authorization cache -------------------------------------------------------------------------
    def cache_entry(self, value: str, kind: str) -> CacheEntry | None:
        rows = self.store.read(f"SELECT rowid, id_token, type, info, used_at FROM {CACHE_TABLE}"
                               " WHERE id_token = ? AND type = ?", (value, kind))
        if not rows:
            return None
        row = rows[0]
        used_at = row[4]
        if not isinstance(used_at, (int, float)) or isinstance(used_at, bool) or not math.isfinite(used_at):
            self._quarantine(CACHE_TABLE, row, "used_at is not a time")
            return None
        info = self._checked_info(CACHE_TABLE, row)
        return None if info is None else CacheEntry(info, float(used_at))

    def _next_use(self) -> int:
        rows = self.store.read(f"SELECT MAX(used_seq) FROM {CACHE_TABLE}")
        last = rows[0][0] if rows else None
        return (last if isinstance(last, int) else 0) + 1

    def put_cache(self, value: str, kind: str, info: dict[str, Any], now: float) -> None:
        self.store.write(f"INSERT OR REPLACE INTO {CACHE_TABLE} VALUES (?, ?, ?, ?, ?)",
                         (value, kind, json.dumps(info), now, self._next_use()))

    def touch_cache(self, value: str, kind: str, now: float) -> None:
        self.store.write(f"UPDATE {CACHE_TABLE} SET used_at = ?, used_seq = ? WHERE id_token = ? AND type = ?",
                         (now, self._next_use(), value, kind))

    def remove_cache(self, value: str, kind: str) -> bool:
        found = bool(self.store.read(f"SELECT 1 FROM {CACHE_TABLE} WHERE id_token = ? AND type = ?", (value, kind)))
        self.store.write(f"DELETE FROM {CACHE_TABLE} WHERE id_token = ? AND type = ?", (value, kind))
        return found

    def clear_cache(self) -> None:
        self.store.write(f"DELETE FROM {CACHE_TABLE}")

    def cache_count(self) -> int:
        return int(self.store.read(f"SELECT COUNT(*) FROM {CACHE_TABLE}")[0][0])

    def drop_unused_since(self, oldest_use: float) -> None:
        """Entries last used before oldest_use (AuthCacheCtrlr.LifeTime passed)."""
        self.store.write(f"DELETE FROM {CACHE_TABLE} WHERE used_at < ?", (oldest_use,))

    def drop_least_recently_used(self, keep: int) -> None:
        """All but the `keep` most recently used entries (the LRU policy)."""
        self.store.write(f"DELETE FROM {CACHE_TABLE} WHERE rowid NOT IN"
                         f" (SELECT rowid FROM {CACHE_TABLE} ORDER BY used_seq DESC LIMIT ?)", (max(0, keep),))

    # -- local authorization list ------------------------------------------------------------------------
    def list_info(self, value: str, kind: str) -> dict[str, Any] | None:
        rows = self.store.read(f"SELECT rowid, id_token, type, info FROM {LIST_TABLE} WHERE id_token = ? AND type = ?",
                               (value, kind))
        return self._checked_info(LIST_TABLE, rows[0]) if rows else None

    def put_list(self, value: str, kind: str, info: dict[str, Any]) -> None:
        self.store.write(f"INSERT OR REPLACE INTO {LIST_TABLE} VALUES (?, ?, ?)", (value, kind, json.dumps(info)))

    def remove_list(self, value: str, kind: str) -> None:
        self.store.write(f"DELETE FROM {LIST_TABLE} WHERE id_token = ? AND type = ?", (value, kind))

    def clear_list(self) -> None:
        self.store.write(f"DELETE FROM {LIST_TABLE}")

    def list_count(self) -> int:
        return int(self.store.read(f"SELECT COUNT(*) FROM {LIST_TABLE}")[0][0])

    def check_list(self) -> None:
        """Read every entry of the list once, so those that no longer fit go to quarantine now (at start-up)
        and the count of entries is that of usable ones."""
        for row in self.store.read(f"SELECT rowid, id_token, type, info FROM {LIST_TABLE}"):
            self._checked_info(LIST_TABLE, row)

    def list_version(self) -> int:
        """The version the CSMS gave the list (0: none was ever installed)."""
        rows = self.store.read(f"SELECT rowid, version FROM {VERSION_TABLE} WHERE id = 0")
        if not rows:
            return 0
        try:
            version = int_value(rows[0][1], "version")
            if not 0 <= version <= LIST_VERSION_MAX:
                raise BadRow(f"version {version} is outside 0..{LIST_VERSION_MAX}")
        except BadRow as bad:
            self.store.move_to_quarantine("record", f"{VERSION} {VERSION_TABLE}", rows[0][1:], str(bad),
                                          VERSION_TABLE, rows[0][0])
            return 0
        return version

    def set_list_version(self, version: int) -> None:
        self.store.write(f"INSERT OR REPLACE INTO {VERSION_TABLE} VALUES (0, ?)", (version,))
