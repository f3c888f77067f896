"""Persistent state of the OCPP service in one SQLite database (WAL, synchronous=FULL).

Everything that must survive a kill -9 or a power cut lives here: configuration keys changed by the
CSMS, the transaction message queue, the transactions still open, the authorisation cache, the local
authorisation list, charging profiles and reservations. Each change is one SQLite transaction, so a crash
leaves either the old or the new state, never half of each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    tx_key TEXT,
    unique_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transactions (
    tx_key TEXT PRIMARY KEY,
    connector INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    meter_start INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    transaction_id INTEGER,
    last_meter_wh INTEGER NOT NULL,
    last_meter_time TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    stop_samples TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS id_tags (
    list TEXT NOT NULL,
    id_tag TEXT NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (list, id_tag)
);
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, id));
"""


@dataclass(frozen=True)
class QueuedMessage:
    seq: int
    action: str
    payload: dict[str, Any]
    tx_key: str | None
    unique_id: str
    attempts: int


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


class OcppStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(transactions)")}
        if "stop_samples" not in columns:  # a database from before StopTxn samples were persisted
            self._db.execute("ALTER TABLE transactions ADD COLUMN stop_samples TEXT NOT NULL DEFAULT '[]'")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Group several changes into one SQLite transaction (nesting is not supported)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- configuration -----------------------------------------------------------------------------
    def config_values(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM config"))

    def set_config(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO config VALUES (?, ?)", (key, value))

    # -- transaction message queue -------------------------------------------------------------------
    def enqueue(self, action: str, payload: dict[str, Any], unique_id: str, tx_key: str | None = None) -> int:
        cursor = self._db.execute(
            "INSERT INTO queue (action, payload, tx_key, unique_id) VALUES (?, ?, ?, ?)",
            (action, json.dumps(payload), tx_key, unique_id),
        )
        return int(cursor.lastrowid or 0)

    def queue_head(self) -> QueuedMessage | None:
        row = self._db.execute(
            "SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue ORDER BY seq LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return QueuedMessage(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5])

    def queue_length(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def queued_actions(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT action FROM queue ORDER BY seq")]

    def count_attempt(self, seq: int) -> None:
        self._db.execute("UPDATE queue SET attempts = attempts + 1 WHERE seq = ?", (seq,))

    def dequeue(self, seq: int) -> None:
        self._db.execute("DELETE FROM queue WHERE seq = ?", (seq,))

    # -- transactions ------------------------------------------------------------------------------
    def open_transaction(self, tx_key: str, connector: int, id_tag: str, meter_start: int, start_time: str) -> None:
        self._db.execute(
            "INSERT INTO transactions (tx_key, connector, id_tag, meter_start, start_time, last_meter_wh,"
            " last_meter_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tx_key, connector, id_tag, meter_start, start_time, meter_start, start_time),
        )

    def set_transaction_id(self, tx_key: str, transaction_id: int) -> None:
        self._db.execute("UPDATE transactions SET transaction_id = ? WHERE tx_key = ?", (transaction_id, tx_key))

    def transaction_id(self, tx_key: str) -> int | None:
        row = self._db.execute("SELECT transaction_id FROM transactions WHERE tx_key = ?", (tx_key,)).fetchone()
        return None if row is None else row[0]

    def record_meter(self, tx_key: str, energy_wh: int, timestamp: str) -> None:
        """The latest reading of an open transaction, written about once a second. It survives a process
        crash (WAL commit) without an fsync each time (synchronous=NORMAL for this write only), which
        spares the flash of small boards; a power cut may lose the last few readings, never a queued
        message."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute(
                "UPDATE transactions SET last_meter_wh = ?, last_meter_time = ? WHERE tx_key = ? AND open = 1",
                (energy_wh, timestamp, tx_key),
            )
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def add_stop_samples(self, tx_key: str, samples: list[dict[str, Any]]) -> None:
        """Meter values for StopTransaction.transactionData, kept so a crash does not lose them."""
        row = self._db.execute("SELECT stop_samples FROM transactions WHERE tx_key = ?", (tx_key,)).fetchone()
        if row is not None and samples:
            self._db.execute("UPDATE transactions SET stop_samples = ? WHERE tx_key = ?",
                             (json.dumps(json.loads(row[0]) + samples), tx_key))

    def close_transaction(self, tx_key: str) -> None:
        self._db.execute("UPDATE transactions SET open = 0 WHERE tx_key = ?", (tx_key,))

    def forget_transaction(self, tx_key: str) -> None:
        self._db.execute("DELETE FROM transactions WHERE tx_key = ?", (tx_key,))

    def open_transactions(self) -> list[OpenTransaction]:
        rows = self._db.execute(
            "SELECT tx_key, connector, id_tag, meter_start, start_time, transaction_id, last_meter_wh,"
            " last_meter_time, stop_samples FROM transactions WHERE open = 1 ORDER BY rowid"
        )
        return [OpenTransaction(*row[:8], json.loads(row[8])) for row in rows]

    # -- id tag lists (authorisation cache, local authorisation list) -------------------------------
    def id_tag_info(self, list_name: str, id_tag: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT info FROM id_tags WHERE list = ? AND id_tag = ? COLLATE NOCASE", (list_name, id_tag)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put_id_tag(self, list_name: str, id_tag: str, info: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO id_tags VALUES (?, ?, ?)", (list_name, id_tag, json.dumps(info)))

    def remove_id_tag(self, list_name: str, id_tag: str) -> None:
        self._db.execute("DELETE FROM id_tags WHERE list = ? AND id_tag = ? COLLATE NOCASE", (list_name, id_tag))

    def clear_id_tags(self, list_name: str) -> None:
        self._db.execute("DELETE FROM id_tags WHERE list = ?", (list_name,))

    def id_tag_count(self, list_name: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM id_tags WHERE list = ?", (list_name,)).fetchone()[0])

    # -- records (charging profiles, reservations) ---------------------------------------------------
    def put_record(self, kind: str, record_id: int, data: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (kind, record_id, json.dumps(data)))

    def remove_record(self, kind: str, record_id: int) -> None:
        self._db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, record_id))

    def records(self, kind: str) -> dict[int, dict[str, Any]]:
        rows = self._db.execute("SELECT id, data FROM records WHERE kind = ? ORDER BY id", (kind,))
        return {row[0]: json.loads(row[1]) for row in rows}
