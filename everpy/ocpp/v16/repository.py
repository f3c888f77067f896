"""The OCPP 1.6 tables of the store: the transactions still open and the id tag lists (authorisation cache,
local authorisation list).

:class:`Repository16` is built on an :class:`~everpy.ocpp.store.OcppStore` opened for OCPP 1.6 and keeps
its tables there through the store's methods for repositories: registered (migrated and checked) when the
repository is created, written through the store's fault handling (a full disk or a read-only file never
raises here), each row checked when read back and moved to quarantine when it cannot be used. Writes join
the store's open ``atomic()`` block, so a transaction row and its queued message still commit together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from everpy.ocpp.store import BadRow, OcppStore, Tables, int_value, json_object, json_objects, str_value

VERSION = "1.6"


def _create_tables(db: sqlite3.Connection) -> None:
    # Version 1 of these tables is what the store's own migration 0 -> 1 leaves (a version-0 store was a 1.6
    # store, and its transactions and id_tags tables became these), so on every store written so far this
    # step finds them and only records the version; a later 1.6 migration starts from here.
    db.execute(
        "CREATE TABLE IF NOT EXISTS v16_transactions (tx_key TEXT PRIMARY KEY, connector INTEGER NOT NULL,"
        " id_tag TEXT NOT NULL, meter_start INTEGER NOT NULL, start_time TEXT NOT NULL, transaction_id INTEGER,"
        " last_meter_wh INTEGER NOT NULL, last_meter_time TEXT NOT NULL, open INTEGER NOT NULL DEFAULT 1,"
        " stop_samples TEXT NOT NULL DEFAULT '[]')")
    db.execute("CREATE TABLE IF NOT EXISTS v16_id_tags (list TEXT NOT NULL, id_tag TEXT NOT NULL, info TEXT NOT NULL,"
               " PRIMARY KEY (list, id_tag))")


TABLES = Tables(
    name="v16",
    columns={
        "v16_transactions": frozenset({"tx_key", "connector", "id_tag", "meter_start", "start_time",
                                       "transaction_id", "last_meter_wh", "last_meter_time", "open",
                                       "stop_samples"}),
        "v16_id_tags": frozenset({"list", "id_tag", "info"}),
    },
    migrations=(_create_tables,),
)


@dataclass(frozen=True)
class OpenTransaction:
    tx_key: str
    connector: int
    id_tag: str
    meter_start: int
    start_time: str
    transaction_id: int | None
    last_meter_wh: int
    last_meter_time: str
    stop_samples: list[dict[str, Any]]


class Repository16:
    """Transactions and id tag lists of OCPP 1.6, in the store."""

    def __init__(self, store: OcppStore) -> None:
        if store.ocpp_version != VERSION:
            # the tables hold no version column: another version's store would mix its rows with ours
            raise ValueError(f"Repository16 needs a store opened for OCPP {VERSION}, not {store.ocpp_version}")
        store.register_tables(TABLES)
        self.store = store

    # -- transactions ------------------------------------------------------------------------------
    def _quarantine_transaction(self, row: Sequence[Any], reason: str) -> None:
        self.store.move_to_quarantine("transaction", f"{VERSION} transaction {row[1]!r}", row[1:], reason,
                                      "v16_transactions", row[0])

    def open_transaction(self, tx_key: str, connector: int, id_tag: str, meter_start: int, start_time: str) -> None:
        self.store.write(
            "INSERT INTO v16_transactions (tx_key, connector, id_tag, meter_start, start_time, last_meter_wh,"
            " last_meter_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tx_key, connector, id_tag, meter_start, start_time, meter_start, start_time),
        )

    def set_transaction_id(self, tx_key: str, transaction_id: int) -> None:
        self.store.write("UPDATE v16_transactions SET transaction_id = ? WHERE tx_key = ?", (transaction_id, tx_key))

    def transaction_id(self, tx_key: str) -> int | None:
        rows = self.store.read("SELECT rowid, tx_key, transaction_id FROM v16_transactions WHERE tx_key = ?",
                               (tx_key,))
        if not rows:
            return None
        value = rows[0][2]
        if value is not None and not isinstance(value, int):
            self._quarantine_transaction(rows[0], "transaction_id is not an integer")
            return None
        return value

    def record_meter(self, tx_key: str, energy_wh: int, timestamp: str) -> None:
        """The latest reading of an open transaction, written about once a second. It survives a process
        crash without an fsync each time (the store's durable=False write), which spares the flash of small
        boards; a power cut may lose the last few readings, never a queued message."""
        self.store.write(
            "UPDATE v16_transactions SET last_meter_wh = ?, last_meter_time = ? WHERE tx_key = ? AND open = 1",
            (energy_wh, timestamp, tx_key), durable=False,
        )

    def add_stop_samples(self, tx_key: str, samples: list[dict[str, Any]]) -> None:
        """Meter values for StopTransaction.transactionData, kept so a crash does not lose them."""
        rows = self.store.read("SELECT rowid, tx_key, stop_samples FROM v16_transactions WHERE tx_key = ?", (tx_key,))
        if not rows or not samples:
            return
        try:
            kept = json_objects(rows[0][2], "stop_samples")
        except BadRow as bad:
            # The transaction itself is still good: only the unusable samples go, the new ones are kept.
            self.store.quarantine_row("transaction", f"{VERSION} transaction {tx_key!r} stop_samples", rows[0][1:],
                                      str(bad))
            kept = []
        self.store.write("UPDATE v16_transactions SET stop_samples = ? WHERE tx_key = ?",
                         (json.dumps(kept + samples), tx_key))

    def close_transaction(self, tx_key: str) -> None:
        self.store.write("UPDATE v16_transactions SET open = 0 WHERE tx_key = ?", (tx_key,))

    def forget_transaction(self, tx_key: str) -> None:
        self.store.write("DELETE FROM v16_transactions WHERE tx_key = ?", (tx_key,))

    def open_transactions(self) -> list[OpenTransaction]:
        rows = self.store.read(
            "SELECT rowid, tx_key, connector, id_tag, meter_start, start_time, transaction_id, last_meter_wh,"
            " last_meter_time, stop_samples FROM v16_transactions WHERE open = 1 ORDER BY rowid"
        )
        transactions: list[OpenTransaction] = []
        for row in rows:
            try:
                transaction_id = row[6]
                if transaction_id is not None and not isinstance(transaction_id, int):
                    raise BadRow("transaction_id is not an integer")
                transactions.append(OpenTransaction(
                    str_value(row[1], "tx_key"), int_value(row[2], "connector"), str_value(row[3], "id_tag"),
                    int_value(row[4], "meter_start"), str_value(row[5], "start_time"), transaction_id,
                    int_value(row[7], "last_meter_wh"), str_value(row[8], "last_meter_time"),
                    json_objects(row[9], "stop_samples")))
            except BadRow as bad:
                self._quarantine_transaction(row, str(bad))
        return transactions

    # -- id tag lists (authorisation cache, local authorisation list) -------------------------------
    def id_tag_info(self, list_name: str, id_tag: str) -> dict[str, Any] | None:
        rows = self.store.read(
            "SELECT rowid, list, id_tag, info FROM v16_id_tags WHERE list = ? AND id_tag = ? COLLATE NOCASE",
            (list_name, id_tag))
        if not rows:
            return None
        try:
            return json_object(rows[0][3], "info")
        except BadRow as bad:
            # An unusable entry is no entry: the tag is then authorised the normal way.
            self.store.move_to_quarantine("id_tag", f"{VERSION} id tag list {list_name!r}", rows[0][1:], str(bad),
                                          "v16_id_tags", rows[0][0])
            return None

    def put_id_tag(self, list_name: str, id_tag: str, info: dict[str, Any]) -> None:
        self.store.write("INSERT OR REPLACE INTO v16_id_tags VALUES (?, ?, ?)", (list_name, id_tag, json.dumps(info)))

    def remove_id_tag(self, list_name: str, id_tag: str) -> None:
        self.store.write("DELETE FROM v16_id_tags WHERE list = ? AND id_tag = ? COLLATE NOCASE", (list_name, id_tag))

    def clear_id_tags(self, list_name: str) -> None:
        self.store.write("DELETE FROM v16_id_tags WHERE list = ?", (list_name,))

    def id_tag_count(self, list_name: str) -> int:
        return int(self.store.read("SELECT COUNT(*) FROM v16_id_tags WHERE list = ?", (list_name,))[0][0])
