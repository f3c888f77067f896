"""The OCPP 2.0.1 tables of functional blocks E and J: the transactions the station runs or still reports.

:class:`TransactionRepository` keeps them in an :class:`~everpy.ocpp.store.OcppStore` opened for 2.0.1,
through the store's methods for repositories (see ``everpy/ocpp/v16/repository.py``): registered when the
repository is created, written through the store's fault handling, every row checked when read back and
moved to quarantine when it no longer fits. Writes join the store's open ``atomic()`` block, so the next
seqNo of a transaction commits together with the TransactionEvent queued with the one before it: a crash
can neither send a seqNo twice nor leave a gap.

A row lives from the transaction's start until its Ended event was delivered (or dropped); ``open`` is 0
once the Ended event is queued.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from everpy.ocpp.store import BadRow, OcppStore, Tables, int_value, json_object, json_objects, str_value
from everpy.ocpp.v201.auth_repository import id_token_problem, time_problem

VERSION = "2.0.1"
TABLE = "v201_transactions"
TRANSACTION_ID_MAX = 36
SEQ_NO_MAX = 2**31 - 1
CHARGING_STATES = frozenset({"Charging", "EVConnected", "SuspendedEV", "SuspendedEVSE", "Idle"})


def _create_tables(db: sqlite3.Connection) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (tx_id TEXT PRIMARY KEY, evse_id INTEGER NOT NULL,"
        " session_id TEXT NOT NULL, next_seq INTEGER NOT NULL, state TEXT NOT NULL,"
        " ended_samples TEXT NOT NULL DEFAULT '[]', last_reading TEXT, open INTEGER NOT NULL DEFAULT 1)")


TABLES = Tables(
    name="v201_tx",
    columns={TABLE: frozenset({"tx_id", "evse_id", "session_id", "next_seq", "state", "ended_samples",
                               "last_reading", "open"})},
    migrations=(_create_tables,),
)


@dataclass
class TxState:
    """What a transaction carries from event to event (the ``state`` column)."""

    start_time: str
    id_token: dict[str, Any] | None = None
    remote_start_id: int | None = None
    charging_state: str | None = None
    meter_start_wh: int | None = None
    # MaxEnergyOnInvalidId: the transaction is stopped once the meter reaches this (Wh)
    stop_at_wh: int | None = None

    def as_json(self) -> str:
        return json.dumps({"start_time": self.start_time, "id_token": self.id_token,
                           "remote_start_id": self.remote_start_id, "charging_state": self.charging_state,
                           "meter_start_wh": self.meter_start_wh, "stop_at_wh": self.stop_at_wh})

    @staticmethod
    def from_json(value: Any) -> TxState:
        data = json_object(value, "state")
        start_time = data.get("start_time")
        if time_problem(start_time) is not None:
            raise BadRow(f"state.start_time: {time_problem(start_time)}")
        token = data.get("id_token")
        if token is not None and (reason := id_token_problem(token)) is not None:
            raise BadRow(f"state.id_token: {reason}")
        charging_state = data.get("charging_state")
        if charging_state is not None and charging_state not in CHARGING_STATES:
            raise BadRow(f"state.charging_state {charging_state!r} is not a ChargingStateEnumType")
        numbers = {name: data.get(name) for name in ("remote_start_id", "meter_start_wh", "stop_at_wh")}
        for name, number in numbers.items():
            if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
                raise BadRow(f"state.{name} is not an integer")
        return TxState(str(start_time), token, numbers["remote_start_id"], charging_state,
                       numbers["meter_start_wh"], numbers["stop_at_wh"])


@dataclass
class StoredTransaction:
    tx_id: str
    evse_id: int
    session_id: str
    next_seq: int
    state: TxState
    ended_samples: list[dict[str, Any]] = field(default_factory=list)
    last_reading: dict[str, Any] | None = None
    open: bool = True


class TransactionRepository:
    """The 2.0.1 transactions, in the store."""

    def __init__(self, store: OcppStore) -> None:
        if store.ocpp_version != VERSION:
            raise ValueError(f"TransactionRepository needs a store opened for OCPP {VERSION}, not "
                             f"{store.ocpp_version}")
        store.register_tables(TABLES)
        self.store = store

    def _quarantine(self, row: Sequence[Any], reason: str) -> None:
        self.store.move_to_quarantine("transaction", f"{VERSION} transaction {row[1]!r}", row[1:], reason,
                                      TABLE, row[0])

    def add(self, tx: StoredTransaction) -> None:
        self.store.write(
            f"INSERT INTO {TABLE} (tx_id, evse_id, session_id, next_seq, state, ended_samples, last_reading, open)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tx.tx_id, tx.evse_id, tx.session_id, tx.next_seq, tx.state.as_json(), json.dumps(tx.ended_samples),
             None if tx.last_reading is None else json.dumps(tx.last_reading), int(tx.open)))

    def take_seq(self, tx_id: str, seq_no: int, state: TxState, *, closing: bool = False) -> None:
        """seq_no is being queued: the next event gets seq_no + 1 (with the state it was queued with)."""
        self.store.write(f"UPDATE {TABLE} SET next_seq = ?, state = ?, open = open AND ? WHERE tx_id = ?",
                         (seq_no + 1, state.as_json(), 0 if closing else 1, tx_id))

    def set_state(self, tx_id: str, state: TxState) -> None:
        self.store.write(f"UPDATE {TABLE} SET state = ? WHERE tx_id = ?", (state.as_json(), tx_id))

    def record_reading(self, tx_id: str, reading: dict[str, Any]) -> None:
        """The latest reading of an open transaction, about once a second: crash-safe without an fsync each
        time (a power cut may lose the last few readings, never a queued message)."""
        self.store.write(f"UPDATE {TABLE} SET last_reading = ? WHERE tx_id = ? AND open = 1",
                         (json.dumps(reading), tx_id), durable=False)

    def add_ended_samples(self, tx_id: str, samples: list[dict[str, Any]]) -> None:
        """Meter values for the Ended event (TxEndedInterval, AlignedDataCtrlr.TxEndedInterval)."""
        rows = self.store.read(f"SELECT rowid, tx_id, ended_samples FROM {TABLE} WHERE tx_id = ?", (tx_id,))
        if not rows or not samples:
            return
        try:
            kept = json_objects(rows[0][2], "ended_samples")
        except BadRow as bad:  # the transaction is still good: only the unusable samples go
            self.store.quarantine_row("transaction", f"{VERSION} transaction {tx_id!r} ended_samples",
                                      rows[0][1:], str(bad))
            kept = []
        self.store.write(f"UPDATE {TABLE} SET ended_samples = ? WHERE tx_id = ?",
                         (json.dumps(kept + samples), tx_id))

    def forget(self, tx_id: str) -> None:
        self.store.write(f"DELETE FROM {TABLE} WHERE tx_id = ?", (tx_id,))

    def get(self, tx_id: str) -> StoredTransaction | None:
        return next((tx for tx in self._rows("WHERE tx_id = ?", (tx_id,))), None)

    def open_transactions(self) -> list[StoredTransaction]:
        return self._rows("WHERE open = 1", ())

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[StoredTransaction]:
        rows = self.store.read(f"SELECT rowid, tx_id, evse_id, session_id, next_seq, state, ended_samples,"
                               f" last_reading, open FROM {TABLE} {where} ORDER BY rowid", params)
        found: list[StoredTransaction] = []
        for row in rows:
            try:
                found.append(_transaction(row))
            except BadRow as bad:
                self._quarantine(row, str(bad))
        return found

    def queued_for(self, tx_id: str | None) -> int:
        """TransactionEvents (of tx_id, or of any transaction) still in the session's queue. Read here from
        the store's queue table: it is the one truth about what has not been delivered, a crash included."""
        sql = "SELECT COUNT(*) FROM queue WHERE version = ? AND action = ?"
        params: tuple[Any, ...] = (VERSION, "TransactionEvent")
        if tx_id is not None:
            sql, params = f"{sql} AND tx_key = ?", (*params, tx_id)
        return int(self.store.read(sql, params)[0][0])


def _transaction(row: Sequence[Any]) -> StoredTransaction:
    tx_id = str_value(row[1], "tx_id")
    if not 1 <= len(tx_id) <= TRANSACTION_ID_MAX:
        raise BadRow(f"tx_id is not 1..{TRANSACTION_ID_MAX} characters")
    evse_id = int_value(row[2], "evse_id")
    if evse_id < 1:
        raise BadRow("evse_id is not an EVSE")
    next_seq = int_value(row[4], "next_seq")
    if not 0 <= next_seq <= SEQ_NO_MAX:
        raise BadRow("next_seq is out of range")
    open_flag = int_value(row[8], "open")
    if open_flag not in (0, 1):
        raise BadRow("open is not 0 or 1")
    reading = None if row[7] is None else json_object(row[7], "last_reading")
    return StoredTransaction(tx_id, evse_id, str_value(row[3], "session_id"), next_seq, TxState.from_json(row[5]),
                             json_objects(row[6], "ended_samples"), reading, bool(open_flag))
