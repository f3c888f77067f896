"""Persistent state of the OCPP service in one SQLite database (WAL, synchronous=FULL).

Everything that must survive a kill -9 or a power cut lives here: configuration keys changed by the
CSMS, the transaction message queue, the transactions still open, the authorisation cache, the local
authorisation list, charging profiles and reservations. Each change is one SQLite transaction, so a crash
leaves either the old or the new state, never half of each.

The store must never stop the charger, and it never trusts what it reads back:

* The schema is versioned (``PRAGMA user_version``) and migrated forward on open; the tables of each
  repository (see below) have a version of their own, migrated when the repository registers them. A file
  written by newer code is not downgraded: it is kept aside like a damaged one.
* A file that is not a database, fails ``PRAGMA quick_check`` or has an unexpected schema (found at open,
  or for a repository's tables when it registers them) is moved aside to ``<name>.damaged-<UTC time>``
  (kept for diagnostics) and a fresh store is started in its place.
* A reserve file ``<name>.reserve`` (``RESERVE_BYTES`` of real, fsynced bytes) is kept beside the store
  while the disk has room for it. When the disk fills, the reserve is released and the write retried on the
  file, so a full disk costs a warning (``nearly_full``, reported through ``on_degraded``), not the store.
  Released, it is truncated to zero bytes rather than deleted: the empty file tells a later start that the
  disk was full, and the reserve is written again at an open that finds room.
* When the file cannot be used at all (read-only, disk full, I/O errors), at open or later during a write,
  the store carries on in an in-memory SQLite database holding what could still be read (``degraded``). No
  storage error reaches the caller. After a read-only, full or I/O error, the store tries (at most once
  every ``WRITE_BACK_INTERVAL_S``, between transactions) to copy the memory onto the file again; when that
  works it persists again, ``degraded`` is cleared and ``on_recovered`` called. A file that cannot be
  trusted, was replaced or was written by someone else meanwhile is never overwritten: then the store stays
  in memory until a restart.
* A row that cannot be decoded is moved to the ``quarantine`` table and skipped, so one bad row does not
  take the whole service down; the station learns about it through ``new_quarantine_events()``.
* A sidecar file ``<name>.id`` remembers which store this was, so a store that vanished or was replaced is
  reported (``lost``) instead of being taken silently as a new charger.

Data of different OCPP versions sharing the file stays apart: configuration keys, records and queued
messages are read and written for the ``ocpp_version`` the store was opened with.

The store is the same for every OCPP version. What only one version has (the transactions and id tag
lists of 1.6, say) lives in tables of that version's *repository* (``everpy.ocpp.v16.repository``): the
repository declares its tables and their migrations (:class:`Tables`) to :meth:`OcppStore.register_tables`
when it is created, and reads and writes them through the store's methods for repositories (``read``,
``write``, ``quarantine_row``, ``move_to_quarantine``), so its rows get the same care as the store's own.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

# Space kept free for the store: released when the disk fills, so that the store goes on on the file.
RESERVE_BYTES = 256 * 1024
# How often, at most, a store running in memory after a storage fault tries to write itself back.
WRITE_BACK_INTERVAL_S = 30.0
# wal_autocheckpoint while the disk has no reserve: a WAL of at most this many pages is reset and reused
# instead of growing, so the space left lasts (the default lets the WAL grow to 1000 pages, 4 MiB).
_TIGHT_WAL_PAGES = 32
# An I/O error with less free space than this is taken for a full disk.
_FULL_BELOW_BYTES = 64 * 1024

# The version of the schema this code writes (PRAGMA user_version). Version 0 is the unversioned store of
# the releases before it: tables config, queue, transactions, id_tags, records.
SCHEMA_VERSION = 1

# A row of the quarantine table holds at most this much of the original data, and the table keeps only the
# newest rows: a stream of bad data must not fill the disk it is being rescued from.
_QUARANTINE_DATA_MAX = 16 * 1024
_QUARANTINE_ROWS_MAX = 200

# Primary SQLite result codes that mean "the file or the disk is unusable", as opposed to a mistake in
# the calling code (constraint violation, misuse) which must still raise.
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_PROTOCOL, _SQLITE_NOLFS, _SQLITE_NOTADB = 13, 14, 15, 22, 26
_STORAGE_FAULTS = {_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL,
                   _SQLITE_CANTOPEN, _SQLITE_PROTOCOL, _SQLITE_NOLFS, _SQLITE_NOTADB}
# Of those, the ones that say the content is broken: the file is kept aside rather than read.
_DAMAGE = {_SQLITE_CORRUPT, _SQLITE_NOTADB}
# The faults after which the file itself is fine and may take the store back once it can be written.
_WRITE_BACK_FAULTS = {_SQLITE_READONLY, _SQLITE_FULL, _SQLITE_IOERR}
_UNTIL_RESTART = "in-memory until restart"
_UNTIL_WRITABLE = "in-memory until the file can be written again"
# While opening, the statements are fixed, so a plain SQL error, a constraint or a type mismatch can only
# come from what is in the file (a schema nobody wrote): damage as well. Busy or locked is not: another
# process (the store of another OCPP version) holding the file a while is no reason to throw it away.
_SQLITE_ERROR, _SQLITE_CONSTRAINT, _SQLITE_MISMATCH = 1, 19, 20
_MISFIT = {_SQLITE_ERROR, _SQLITE_CONSTRAINT, _SQLITE_MISMATCH}
_DAMAGE_AT_OPEN = _DAMAGE | _MISFIT

# The tables and columns of SCHEMA_VERSION; a file claiming that version without them is not trusted. The
# tables of a repository are checked against its own Tables.columns.
_SCHEMA_COLUMNS: dict[str, set[str]] = {
    "meta": {"key", "value"},
    "config": {"version", "key", "value"},
    "queue": {"seq", "version", "action", "payload", "tx_key", "unique_id", "attempts"},
    "records": {"version", "kind", "id", "data"},
    "quarantine": {"id", "kind", "source", "data", "reason", "time"},
}

# A migration, of the store's own schema or of a repository's tables: run inside a transaction the store
# opened (it must not commit), it turns one version into the next.
Migration = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Tables:
    """The tables of one repository, as it declares them to OcppStore.register_tables().

    ``name`` is unique among the repositories of a store file; the version of these tables is kept under it
    in the meta table (``tables_version:<name>``), apart from the store's own schema version.
    ``columns`` names each table and the columns it must have once migrated: the schema check, which keeps
    a file whose tables do not fit aside as damaged. ``migrations[n]`` turns version ``n`` of the tables
    into ``n + 1`` (version 0: the repository never ran on this file), so ``len(migrations)`` is the version
    this code writes; a file with a newer one is not downgraded but kept aside.
    """

    name: str
    columns: Mapping[str, Set[str]]
    migrations: tuple[Migration, ...]


@dataclass(frozen=True)
class QueuedMessage:
    seq: int
    action: str
    payload: dict[str, Any]
    tx_key: str | None
    unique_id: str
    attempts: int


@dataclass(frozen=True)
class QuarantinedRow:
    """Data moved out of the way because it could not be used; kept for diagnostics."""
    id: int
    kind: str
    source: str
    data: str
    reason: str
    time: str


class _BadText(bytes):
    """A TEXT value that is not UTF-8. Returned instead of raising so that one such value does not make a
    whole SELECT fail; the row is then quarantined like any other undecodable one."""


def _text(raw: bytes) -> str | _BadText:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _BadText(raw)


class BadRow(ValueError):
    """A row read back from the file that cannot be used (the message says why). Raised by the checks below
    (json_object, json_objects, int_value, str_value), which repositories use on their rows too: the row is
    then moved to quarantine (OcppStore.move_to_quarantine) and skipped."""


class _Damaged(Exception):
    """The file is not a store this code can trust (the message says why)."""


def _code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # extended codes carry the primary one in the low byte


def _is_storage_fault(error: BaseException) -> bool:
    return _code(error) in _STORAGE_FAULTS


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(value: Any, what: str) -> Any:
    """A column holding JSON text, decoded; BadRow when it is not."""
    if not isinstance(value, str):
        raise BadRow(f"{what} is not text")
    try:
        return json.loads(value)
    except ValueError as error:
        raise BadRow(f"{what} is not valid JSON: {error}") from None


def json_object(value: Any, what: str) -> dict[str, Any]:
    """A column holding a JSON object, decoded; BadRow when it is not one."""
    decoded = _json(value, what)
    if not isinstance(decoded, dict):
        raise BadRow(f"{what} is not a JSON object")
    return decoded


def json_objects(value: Any, what: str) -> list[dict[str, Any]]:
    """A column holding a JSON list of objects, decoded; BadRow when it is not one."""
    decoded = _json(value, what)
    if not isinstance(decoded, list) or not all(isinstance(item, dict) for item in decoded):
        raise BadRow(f"{what} is not a JSON list of objects")
    return decoded


def int_value(value: Any, what: str) -> int:
    """A column holding an integer; BadRow when it holds anything else."""
    if not isinstance(value, int):
        raise BadRow(f"{what} is not an integer")
    return value


def str_value(value: Any, what: str) -> str:
    """A column holding (UTF-8) text; BadRow when it holds anything else."""
    if not isinstance(value, str):
        raise BadRow(f"{what} is not text")
    return value


def _describe(row: Sequence[Any]) -> str:
    """A row as text for the quarantine table, whatever its values are (undecodable text included)."""
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return {"bytes": value.hex()}
        return value
    text = json.dumps([plain(value) for value in row], default=repr)
    return text[:_QUARANTINE_DATA_MAX]


# -- schema migrations ---------------------------------------------------------------------------------
def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    # The one step of the store that knows an OCPP version: a version-0 store IS an OCPP 1.6 store (the
    # releases before it spoke nothing else), so this step gives its rows the version '1.6' and turns its
    # transactions and id_tags into the tables of the 1.6 repository (v16_transactions, v16_id_tags;
    # everpy.ocpp.v16.repository checks and migrates them from then on). A fresh file is an empty version-0
    # store and gets them too. Later versions of the store do not touch a repository's tables.
    #
    # Complete a version-0 store first (an empty file is a version-0 store without tables, and stores from
    # before StopTxn samples were persisted lack transactions.stop_samples), so the steps below always
    # start from the same schema.
    for statement in (
        "CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL,"
        " payload TEXT NOT NULL, tx_key TEXT, unique_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS transactions (tx_key TEXT PRIMARY KEY, connector INTEGER NOT NULL,"
        " id_tag TEXT NOT NULL, meter_start INTEGER NOT NULL, start_time TEXT NOT NULL, transaction_id INTEGER,"
        " last_meter_wh INTEGER NOT NULL, last_meter_time TEXT NOT NULL, open INTEGER NOT NULL DEFAULT 1,"
        " stop_samples TEXT NOT NULL DEFAULT '[]')",
        "CREATE TABLE IF NOT EXISTS id_tags (list TEXT NOT NULL, id_tag TEXT NOT NULL, info TEXT NOT NULL,"
        " PRIMARY KEY (list, id_tag))",
        "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id INTEGER NOT NULL, data TEXT NOT NULL,"
        " PRIMARY KEY (kind, id))",
    ):
        db.execute(statement)
    if "stop_samples" not in {row[1] for row in db.execute("PRAGMA table_info(transactions)")}:
        db.execute("ALTER TABLE transactions ADD COLUMN stop_samples TEXT NOT NULL DEFAULT '[]'")
    # Everything of version 0 was OCPP 1.6. Config keys and records get the version into their primary key,
    # which SQLite can only do by rebuilding the table.
    db.execute("CREATE TABLE config_v1 (version TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
               " PRIMARY KEY (version, key))")
    db.execute("INSERT INTO config_v1 SELECT '1.6', key, value FROM config")
    db.execute("DROP TABLE config")
    db.execute("ALTER TABLE config_v1 RENAME TO config")
    db.execute("CREATE TABLE records_v1 (version TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL,"
               " data TEXT NOT NULL, PRIMARY KEY (version, kind, id))")
    db.execute("INSERT INTO records_v1 SELECT '1.6', kind, id, data FROM records")
    db.execute("DROP TABLE records")
    db.execute("ALTER TABLE records_v1 RENAME TO records")
    # The queue keeps one sequence for all versions (ADD COLUMN keeps its AUTOINCREMENT counter), so the
    # order of messages survives; each row says which protocol it must be sent with.
    db.execute("ALTER TABLE queue ADD COLUMN version TEXT NOT NULL DEFAULT '1.6'")
    db.execute("CREATE INDEX queue_by_version ON queue (version, seq)")
    db.execute("ALTER TABLE transactions RENAME TO v16_transactions")
    db.execute("ALTER TABLE id_tags RENAME TO v16_id_tags")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
               " source TEXT NOT NULL, data TEXT NOT NULL, reason TEXT NOT NULL, time TEXT NOT NULL)")


# _MIGRATIONS[n] turns a store of version n into one of version n + 1.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1]
assert len(_MIGRATIONS) == SCHEMA_VERSION


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite3.Connection) -> bool:
    """Bring the schema to SCHEMA_VERSION, one transaction per step (a crash in between leaves a valid
    older version that the next start continues from). Returns whether anything was migrated."""
    version = _user_version(db)
    for step in range(version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: a process opening the same file may have migrated meanwhile.
            if _user_version(db) <= step:
                _MIGRATIONS[step](db)
                db.execute(f"PRAGMA user_version = {step + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return version < SCHEMA_VERSION


def _check_schema(db: sqlite3.Connection, tables: Mapping[str, Set[str]] = _SCHEMA_COLUMNS,
                  of: str = f"version {SCHEMA_VERSION}") -> None:
    for table, columns in tables.items():
        found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not columns <= found:
            raise _Damaged(f"table {table} does not have the columns of {of}")


def _tables_key(tables: Tables) -> str:
    return f"tables_version:{tables.name}"


def _tables_version(db: sqlite3.Connection, tables: Tables) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_tables_key(tables),)).fetchone()
    if row is None:
        return 0  # the repository never ran on this file
    value = row[0]
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise _Damaged(f"the version of its tables {tables.name} is {value!r}")
    return int(value)


def _apply_tables(db: sqlite3.Connection, tables: Tables) -> None:
    """Migrate a repository's tables to their version (one transaction per step, as _migrate) and check
    them. _Damaged when they are newer than this code or do not fit; storage faults are raised as they are."""
    try:
        version, target = _tables_version(db, tables), len(tables.migrations)
        if version > target:
            raise _Damaged(f"its tables {tables.name} are of version {version}, newer than this code knows"
                           f" ({target})")
        for step in range(version, target):
            db.execute("BEGIN IMMEDIATE")
            try:
                if _tables_version(db, tables) <= step:  # again under the write lock, as in _migrate
                    tables.migrations[step](db)
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_tables_key(tables), str(step + 1)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        _check_schema(db, tables.columns, f"tables {tables.name} version {target}")
    except sqlite3.DatabaseError as error:
        if _code(error) in _MISFIT:
            raise _Damaged(f"tables {tables.name}: {error}") from error
        raise


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
    db.text_factory = _text
    return db


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_state(path: Path) -> tuple[tuple[int, int] | None, ...]:
    """Size and modification time of the store and its -wal: whether anybody wrote them since."""
    states: list[tuple[int, int] | None] = []
    for name in (str(path), f"{path}-wal"):
        try:
            stat = os.stat(name)
        except OSError:
            states.append(None)
        else:
            states.append((stat.st_size, stat.st_mtime_ns))
    return tuple(states)


class OcppStore:
    def __init__(self, path: str | Path, ocpp_version: str = "1.6", log: logging.Logger | None = None, *,
                 on_degraded: Callable[[str], None] | None = None,
                 on_recovered: Callable[[], None] | None = None,
                 reserve_bytes: int = RESERVE_BYTES, clock: Callable[[], float] = time.monotonic,
                 write_back_interval_s: float = WRITE_BACK_INTERVAL_S) -> None:
        if not ocpp_version:
            raise ValueError("ocpp_version must name the OCPP version the store is opened for")
        self.path = Path(path)
        self.ocpp_version = ocpp_version
        self.log = log or logging.getLogger("everpy.ocpp.store")
        # Called with the reason when the store starts running in memory (once each time), and when the
        # reserve had to be released (the module raises an error on the bus with it). When passed here it is
        # also called for a store degraded (or nearly full) at startup.
        self.on_degraded: Callable[[str], None] | None = on_degraded
        # Called when a store running in memory has been written back to the file and persists again.
        self.on_recovered: Callable[[], None] | None = on_recovered
        # Monotonic seconds, for the pace of write-back attempts (replaceable in tests).
        self.clock = clock
        self.degraded: str | None = None
        # Set while the disk has no reserve left: the reserve was released (now, or before and no room to
        # write it again at open). The store still persists.
        self.nearly_full: str | None = None
        self._reserve_bytes = reserve_bytes
        self._write_back_interval = write_back_interval_s
        self._write_back_possible = False  # in memory, and the file may take the store back
        self._write_back_due = 0.0
        self._file_seen: tuple[tuple[int, int] | None, ...] = ()  # _file_state() when the store left the file
        self.kept_aside: Path | None = None
        self.lost: str | None = None
        self.store_id = ""
        self._kept_aside_reason: str | None = None
        self._degraded_reported = False
        self._memory = False
        self._depth = 0  # 1 inside a transaction (atomic() or an internal one)
        self._pending: list[tuple[str, tuple[Any, ...]]] = []  # writes of the open transaction, for replay
        self._quarantine_events: list[tuple[str, str]] = []
        self._tables: dict[str, Tables] = {}  # of the repositories, by name (register_tables)
        self._db = self._open()
        self._startup_problems = self._problems()
        if self.degraded is not None:
            self._report_degraded()
        elif self.nearly_full is not None:
            self._notify_degraded(self.nearly_full)

    def _problems(self) -> list[str]:
        return [reason for reason in (self.lost, self._kept_aside_reason, self.nearly_full, self.degraded)
                if reason is not None]

    # -- opening -------------------------------------------------------------------------------------
    @property
    def _sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".id")

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_or_replace()
        except Exception as error:  # anything unforeseen: still no exception out of the constructor
            self.log.exception("OCPP store %s: unexpected failure while opening", self.path)
            return self._open_memory(f"store {self.path} cannot be opened ({error!r})", carry_over=False)

    def _open_or_replace(self) -> sqlite3.Connection:
        sidecar = self._read_sidecar()
        try:
            had_content = self.path.stat().st_size > 0
        except OSError:
            had_content = False
        if sidecar is not None and not had_content:
            state = "missing" if not self.path.exists() else "empty"
            self.lost = (f"store {self.path} was {state} though it existed before (id {sidecar[0]}):"
                         " started empty")
            self.log.error("%s", self.lost)
        for attempt in (1, 2):
            try:
                db = self._open_file()
            except _Damaged as damage:
                return self._replace_damaged(str(damage))
            except (sqlite3.Error, OSError) as error:
                fault = self._fault(error)
                if attempt == 1 and fault == _SQLITE_FULL and self._release_reserve():
                    continue  # the reserve gave room: open again
                return self._open_memory(self._reason(error), carry_over=True,
                                         write_back=fault in _WRITE_BACK_FAULTS)
            self._adopt_identity(db, sidecar, had_content)
            self._keep_reserve(db)
            return db
        raise AssertionError("unreachable: the second attempt returns")

    def _check_file(self) -> None:
        """Raise _Damaged when the file is not a store this code may use. Done on a read-only connection: a
        read-write one would, on close, apply the -wal to the damaged file and delete it, and the -wal is
        part of what is kept aside for diagnostics."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return  # nothing to check; mode=ro cannot create the file
        db = _connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            version = _user_version(db)
            if version > SCHEMA_VERSION:
                raise _Damaged(f"its schema version {version} is newer than this code knows ({SCHEMA_VERSION})")
            if version < 0:
                raise _Damaged(f"its schema version {version} is invalid")
            # quick_check reads every page once (O(size), the store is small): a torn or truncated file is
            # found now, where it can be kept aside, not in the middle of a transaction.
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise _Damaged("quick_check: " + "; ".join(problems))
        except sqlite3.DatabaseError as error:
            if _code(error) in _DAMAGE_AT_OPEN:
                raise _Damaged(str(error)) from error
            raise
        finally:
            db.close()

    def _open_file(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_file()
        db = _connect(str(self.path))
        try:
            try:
                version = _user_version(db)
                # A migration that fails on a schema nobody of ours wrote is rolled back, leaving the file as
                # it was: another program's database is kept aside untouched.
                if _migrate(db):
                    self.log.info("OCPP store %s migrated from version %d to %d", self.path, version,
                                  SCHEMA_VERSION)
                _check_schema(db)
                self._apply_registered(db)
                # Only now that the file is known to be ours: WAL mode is recorded in the file's header.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                # A real write at every start: a read-only file or a full disk shows up now, reported as a
                # startup problem, rather than at the first transaction.
                db.execute("INSERT OR REPLACE INTO meta VALUES ('opened', ?)", (_utc_now(),))
            except sqlite3.DatabaseError as error:
                if _code(error) in _DAMAGE_AT_OPEN:
                    raise _Damaged(str(error)) from error
                raise
        except BaseException:
            db.close()
            raise
        return db

    def _replace_damaged(self, damage: str) -> sqlite3.Connection:
        self.log.error("OCPP store %s cannot be trusted (%s)", self.path, damage)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        count = 1
        while aside.exists():  # two damaged stores within a second: keep both
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}.{count}")
            count += 1
        try:
            # The -wal and -shm go along under matching names: left behind, SQLite would apply the old WAL
            # to the fresh file; moved along, the kept copy opens with its WAL for diagnostics.
            for suffix in ("-wal", "-shm"):
                companion = Path(f"{self.path}{suffix}")
                if companion.exists():
                    companion.rename(Path(f"{aside}{suffix}"))
            self.path.rename(aside)
        except OSError as error:
            return self._open_memory(f"store {self.path} is damaged ({damage}) and cannot be kept aside"
                                     f" ({error})", carry_over=False)
        self.kept_aside = aside
        self._kept_aside_reason = f"store {self.path} was damaged ({damage}): kept aside as {aside}, started empty"
        self.log.error("%s", self._kept_aside_reason)
        try:
            db = self._open_file()
        except (_Damaged, sqlite3.Error, OSError) as error:
            return self._open_memory(f"store {self.path} was damaged and a fresh one cannot be created"
                                     f" ({error})", carry_over=False)
        self._adopt_identity(db, None, False)
        self._keep_reserve(db)
        return db

    def _open_memory(self, reason: str, *, carry_over: bool, write_back: bool = False) -> sqlite3.Connection:
        """The last resort at open: a store in memory, holding what the file still gives when it is
        healthy but unwritable (read-only, full), nothing when it cannot be trusted. With write_back, the
        memory goes onto the file once it can be written, provided it holds all the file held."""
        self._memory = True
        db = self._copy_to_memory(None) if carry_over else None
        try:
            had_content = self.path.stat().st_size > 0
        except OSError:
            had_content = False
        self._write_back_possible = write_back and (db is not None or not had_content)
        self.degraded = f"{reason}: {_UNTIL_WRITABLE if self._write_back_possible else _UNTIL_RESTART}"
        self.log.error("%s", self.degraded)
        self._left_file()
        if db is None:
            db = self._empty_memory()
        self.store_id = self._identity(db) or ""
        if not self.store_id:
            with suppress(sqlite3.Error):
                self.store_id = uuid.uuid4().hex
                db.execute("INSERT OR REPLACE INTO meta VALUES ('store_id', ?)", (self.store_id,))
        sidecar = self._read_sidecar()
        if sidecar is not None and self.lost is None and self.store_id != sidecar[0] and carry_over:
            self.lost = (f"store {self.path} is not the one this charger had (id {sidecar[0]}, found"
                         f" {self.store_id})")
        return db

    def _empty_memory(self) -> sqlite3.Connection:
        db = _connect(":memory:")
        _migrate(db)
        self._apply_registered(db)
        return db

    def _apply_registered(self, db: sqlite3.Connection) -> None:
        """The tables of the registered repositories, in a database the store is about to use instead of
        the one they were registered on (a fresh file after damage, memory after a storage fault)."""
        for tables in self._tables.values():
            _apply_tables(db, tables)

    def _copy_to_memory(self, failing: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """The committed state of the store, copied into memory with the backup API: from the failing
        connection when it has no transaction open (it sees everything), else from a fresh read-only
        connection, else ignoring locks and the WAL (immutable: a read-only directory cannot even hold the
        -shm). None when nothing can be read or the copy is not usable."""
        sources: list[Callable[[], sqlite3.Connection]] = []
        if failing is not None and not failing.in_transaction:
            sources.append(lambda: failing)
        uri = self.path.absolute().as_uri()
        sources.append(lambda: _connect(f"{uri}?mode=ro", uri=True))
        sources.append(lambda: _connect(f"{uri}?mode=ro&immutable=1", uri=True))
        for source in sources:
            memory = _connect(":memory:")
            src: sqlite3.Connection | None = None
            try:
                src = source()
                src.backup(memory)
                version = _user_version(memory)
                if not 0 <= version <= SCHEMA_VERSION:
                    raise _Damaged(f"schema version {version}")
                if [row[0] for row in memory.execute("PRAGMA quick_check(1)")] != ["ok"]:
                    raise _Damaged("quick_check failed")
                _migrate(memory)
                _check_schema(memory)
                self._apply_registered(memory)
                return memory
            except (sqlite3.Error, OSError, _Damaged) as error:
                self.log.warning("OCPP store %s: copying to memory failed: %s", self.path, error)
                memory.close()
            finally:
                if src is not None and src is not failing:
                    src.close()
        return None

    def _fault(self, error: BaseException) -> int | None:
        """The SQLite result code an error amounts to (an OSError mapped to one)."""
        code = _code(error)
        if isinstance(error, OSError) and error.errno is not None:
            code = {errno.EROFS: _SQLITE_READONLY, errno.EACCES: _SQLITE_READONLY, errno.EPERM: _SQLITE_READONLY,
                    errno.ENOSPC: _SQLITE_FULL, errno.EDQUOT: _SQLITE_FULL, errno.EIO: _SQLITE_IOERR}.get(
                        error.errno, code)
        if code == _SQLITE_CANTOPEN and not os.access(self.path.parent, os.W_OK):
            code = _SQLITE_READONLY  # SQLite cannot create the file or its -wal in a read-only directory
        if code == _SQLITE_IOERR and (free := self._free_bytes()) is not None and free < _FULL_BELOW_BYTES:
            code = _SQLITE_FULL  # e.g. no room to create the -shm: SQLite says I/O error, the disk is full
        return code

    def _free_bytes(self) -> int | None:
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return None
        return stats.f_bavail * stats.f_frsize

    def _reason(self, error: BaseException) -> str:
        """What went wrong, for the log and the bus (the caller says how the store goes on)."""
        code = self._fault(error)
        if code == _SQLITE_READONLY:
            return f"store {self.path} is read-only ({error})"
        if code == _SQLITE_FULL:
            return f"store {self.path}: disk is full ({error})"
        if code == _SQLITE_IOERR:
            return f"store {self.path}: I/O error ({error})"
        return f"store {self.path} cannot be used ({error})"

    # -- reserve -------------------------------------------------------------------------------------------
    @property
    def _reserve(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    def _keep_reserve(self, db: sqlite3.Connection) -> None:
        """With the file open: write the reserve when it is missing or was released and the disk has room
        for it (twice its size: the reserve must not be what fills the disk). Without one, the WAL is kept
        small, and a reserve released before that cannot be written again means the disk is still nearly
        full. A disk too small for a reserve from the start only gets a log line."""
        if self._reserve_bytes <= 0:
            return
        reserve = self._reserve
        try:
            size: int | None = reserve.stat().st_size
        except FileNotFoundError:
            size = None
        except OSError as error:
            self.log.warning("OCPP store reserve %s: %s", reserve, error)
            return
        if size is not None and size >= self._reserve_bytes:
            return
        free = self._free_bytes()
        if free is not None and free >= 2 * self._reserve_bytes and self._write_reserve():
            if self.nearly_full is not None:
                self.log.warning("OCPP store %s: reserve written again, the disk has room", self.path)
            self.nearly_full = None
            return
        if size:
            return  # a smaller reserve than asked for (an older setting) is still one
        self._tight_wal(db)
        if size is None:
            self.log.warning("OCPP store %s: no room for a reserve of %d bytes (%s bytes free)", self.path,
                             self._reserve_bytes, free)
        elif self.nearly_full is None:
            self.nearly_full = (f"store {self.path}: disk nearly full: the reserve released earlier cannot be"
                                f" written again ({free} bytes free)")
            self.log.error("%s", self.nearly_full)

    def _write_reserve(self) -> bool:
        reserve = self._reserve
        tmp = reserve.with_name(f"{reserve.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as file:
                # Random bytes, written and fsynced: a sparse file, or one a compressing file system shrinks,
                # would reserve nothing.
                file.write(os.urandom(self._reserve_bytes))
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, reserve)
            _fsync_directory(reserve.parent)
        except OSError as error:
            self.log.warning("OCPP store reserve %s not written: %s", reserve, error)
            with suppress(OSError):
                tmp.unlink()
            return False
        return True

    def _release_reserve(self) -> bool:
        """Free the reserve after the disk filled; False when there is none. It is truncated rather than
        deleted: the space is freed all the same, and the empty file tells the next open the disk was full."""
        reserve = self._reserve
        try:
            size = reserve.stat().st_size
            if size == 0:
                return False
            os.truncate(reserve, 0)
        except OSError as error:
            if not isinstance(error, FileNotFoundError):
                self.log.error("OCPP store reserve %s cannot be released: %s", reserve, error)
            return False
        self.nearly_full = f"store {self.path}: disk nearly full: reserve released ({size} bytes), still persisting"
        self.log.error("%s", self.nearly_full)
        return True

    def _tight_wal(self, db: sqlite3.Connection) -> None:
        with suppress(sqlite3.Error):  # a WAL that grows is the worst that can come of a failure
            db.execute(f"PRAGMA wal_autocheckpoint={_TIGHT_WAL_PAGES}")

    # -- identity (sidecar) --------------------------------------------------------------------------------
    def _read_sidecar(self) -> tuple[str, int] | None:
        try:
            content = json.loads(self._sidecar.read_text())
            store_id, version = content["store_id"], content["user_version"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            self.log.warning("OCPP store sidecar %s unreadable (%s): ignored", self._sidecar, error)
            return None
        if not isinstance(store_id, str) or not isinstance(version, int):
            self.log.warning("OCPP store sidecar %s malformed: ignored", self._sidecar)
            return None
        return store_id, version

    def _write_sidecar(self) -> None:
        """Written atomically (temporary file, fsync, rename, fsync of the directory): after a power cut the
        sidecar is the old or the new one, never empty, else an empty sidecar would hide a lost store."""
        tmp = self._sidecar.with_name(self._sidecar.name + ".tmp")
        try:
            with open(tmp, "w") as file:
                json.dump({"store_id": self.store_id, "user_version": SCHEMA_VERSION}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self._sidecar)
            _fsync_directory(self._sidecar.parent)
        except OSError as error:
            self.log.warning("OCPP store sidecar %s not written: %s", self._sidecar, error)
            with suppress(OSError):
                tmp.unlink()

    @staticmethod
    def _identity(db: sqlite3.Connection) -> str | None:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row is not None and isinstance(row[0], str) and row[0] else None

    def _adopt_identity(self, db: sqlite3.Connection, sidecar: tuple[str, int] | None, had_content: bool) -> None:
        """Give the store an id (kept in meta and in the sidecar) and report a file that is not the store
        the sidecar remembers. Such a file is a valid store and is used; the report is made once, since the
        sidecar then takes the new id."""
        existing = found = self._identity(db)
        if found is None:
            found = uuid.uuid4().hex
            try:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('store_id', ?)", (found,))
            except sqlite3.Error as error:  # checked writable just before; a failure here is only logged
                self.log.error("OCPP store %s: id not stored: %s", self.path, error)
        self.store_id = found
        if sidecar is not None and had_content and sidecar[0] != found:
            self.lost = (f"store {self.path} is not the one this charger had (id {sidecar[0]}, found"
                         f" {existing or 'none'}): using its contents")
            self.log.error("%s", self.lost)
        if sidecar != (found, SCHEMA_VERSION):
            self._write_sidecar()

    # -- degraded mode -------------------------------------------------------------------------------------
    def _notify_degraded(self, reason: str) -> None:
        if self.on_degraded is not None:
            try:
                self.on_degraded(reason)
            except Exception:  # the report must not turn into the failure it reports
                self.log.exception("OCPP store: on_degraded callback failed")

    def _report_degraded(self) -> None:
        if self._degraded_reported or self.degraded is None:
            return
        self._degraded_reported = True
        self._notify_degraded(self.degraded)

    def _left_file(self) -> None:
        """The store has just gone to memory: remember the file as it was left (a write-back must not
        overwrite what somebody else wrote since) and when to try the first write-back."""
        self._file_seen = _file_state(self.path)
        self._write_back_due = self.clock() + self._write_back_interval

    def _recover(self, error: sqlite3.DatabaseError) -> bool:
        """After a statement failed with a storage fault: release the reserve and go on on the file, else
        go to memory. True when the caller retries the statement; False when the error is not a storage
        fault (a bug of the caller) or the store is in memory already, then the caller re-raises."""
        if self._memory or not _is_storage_fault(error):
            return False
        if self._fault(error) == _SQLITE_FULL and self._release_reserve():
            self._tight_wal(self._db)
            self._notify_degraded(self.nearly_full or "disk nearly full: reserve released")
            try:
                self._resume_on_file()
            except sqlite3.DatabaseError as again:
                return self._degrade(again)
            return True
        return self._degrade(error)

    def _resume_on_file(self) -> None:
        """Go on on the file after the reserve was released. SQLite may have rolled back the open
        transaction with the error: then it is begun again and its writes so far are replayed."""
        if self._depth and not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            for sql, params in self._pending:
                self._db.execute(sql, params)

    def _degrade(self, error: sqlite3.Error) -> bool:
        """Switch to memory after a storage fault of the file; False when the error is not one (a bug of the
        caller) or the store is in memory already, then the caller re-raises."""
        if self._memory or not _is_storage_fault(error):
            return False
        failing = self._db
        self._memory = True
        if failing.in_transaction:  # SQLite may or may not have rolled back after FULL/IOERR already
            with suppress(sqlite3.Error):
                failing.execute("ROLLBACK")
        memory = self._copy_to_memory(failing)
        self._write_back_possible = memory is not None and self._fault(error) in _WRITE_BACK_FAULTS
        self.degraded = f"{self._reason(error)}: {_UNTIL_WRITABLE if self._write_back_possible else _UNTIL_RESTART}"
        self.log.error("OCPP store: %s; %s", self.degraded,
                       "written back when possible" if self._write_back_possible
                       else "changes from now on are lost at restart")
        if memory is None:
            self.log.error("OCPP store %s unreadable: continuing with an empty store in memory", self.path)
            memory = self._empty_memory()
        with suppress(sqlite3.Error):
            failing.close()
        self._left_file()
        self._db = memory
        if self._depth:
            # The open transaction is redone in memory: the writes made so far, then the one that failed
            # (retried by the caller), then the rest of the block; the block commits there as a whole.
            memory.execute("BEGIN IMMEDIATE")
            for sql, params in self._pending:
                memory.execute(sql, params)
        self._report_degraded()
        return True

    def _maybe_write_back(self) -> None:
        """Between transactions, at most once per interval: try to put the store back on the file."""
        if not self._memory or not self._write_back_possible or self._depth or self._db.in_transaction:
            return
        now = self.clock()
        if now < self._write_back_due:
            return
        self._write_back_due = now + self._write_back_interval
        try:
            self._write_back()
        except Exception:  # like every storage problem: logged, never the caller's
            self.log.exception("OCPP store %s: write-back failed", self.path)

    def _give_up_write_back(self, why: str) -> None:
        self._write_back_possible = False
        self.log.error("OCPP store %s: %s: not written back, %s", self.path, why, _UNTIL_RESTART)

    def _write_back(self) -> None:
        """Copy the memory onto the file (one transaction of the backup API: all or nothing) and persist
        there from now on. Only onto the file as the store left it (the memory holds all of it): one that
        was replaced, or written by another process (the store of another OCPP version) meanwhile, is not
        overwritten."""
        if _file_state(self.path) != self._file_seen:
            self._give_up_write_back("the file was changed by someone else meanwhile")
            return
        memory = self._db
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(str(self.path))
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            memory.backup(db)
        except (sqlite3.Error, OSError) as error:
            if db is not None:
                with suppress(sqlite3.Error):
                    db.close()
            self.log.info("OCPP store %s: not written back yet: %s", self.path, error)
            self._file_seen = _file_state(self.path)  # what this attempt left (a -wal, a new file) is ours
            return
        was = self.degraded
        self._db, self._memory, self._write_back_possible = db, False, False
        self.degraded, self._degraded_reported = None, False
        with suppress(sqlite3.Error):
            memory.close()
        self.log.warning("OCPP store %s: written back from memory, persisting again (was: %s)", self.path, was)
        if self._read_sidecar() != (self.store_id, SCHEMA_VERSION):
            self._write_sidecar()
        self._keep_reserve(db)
        if self.on_recovered is not None:
            try:
                self.on_recovered()
            except Exception:
                self.log.exception("OCPP store: on_recovered callback failed")
        if self.nearly_full is not None:
            self._notify_degraded(self.nearly_full)

    # -- statements ----------------------------------------------------------------------------------------
    def _guarded(self, run: Callable[[], _T], again: Callable[[], _T] | None = None) -> _T:
        """run(), and after a storage fault the same again (again() if given) on the file with the reserve
        released, else in memory."""
        try:
            return run()
        except sqlite3.DatabaseError as error:
            if not self._recover(error):
                raise
        retry = again or run
        try:
            return retry()
        except sqlite3.DatabaseError as error:
            # Still failing on the file, the reserve used up: memory (which a second fault there re-raises).
            if not self._degrade(error):
                raise
        return retry()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        cursor = self._guarded(lambda: self._db.execute(sql, params))
        if self._depth:
            self._pending.append((sql, params))
        else:
            self._maybe_write_back()  # committed: a boundary between transactions
        return cursor

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # fetchall inside the guard: a bad page shows up while stepping through rows, not at execute
        return self._guarded(lambda: self._db.execute(sql, params).fetchall())

    def _control(self, sql: str) -> None:
        """BEGIN/COMMIT: guarded like a write but not replayed (the replay opens its own transaction)."""
        def run() -> None:
            self._db.execute(sql)

        def again() -> None:  # a replay has begun the transaction already
            if sql != "BEGIN IMMEDIATE" or not self._db.in_transaction:
                self._db.execute(sql)

        self._guarded(run, again)

    def _rollback(self) -> None:
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.DatabaseError as error:
            # Nothing to replay (the block is abandoned): memory gets the committed state.
            if not self._degrade(error):
                raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One SQLite transaction, or part of the caller's when one is open (internal multi-step changes
        such as moving a row to quarantine)."""
        if self._depth:
            yield
            return
        self._control("BEGIN IMMEDIATE")
        self._depth, self._pending = 1, []
        try:
            yield
        except BaseException:
            self._depth, self._pending = 0, []
            self._rollback()
            raise
        try:
            self._control("COMMIT")
        except BaseException:
            # Not a storage fault (those were handled by going to memory): do not leave the transaction
            # open, or every later BEGIN would fail too.
            self._depth, self._pending = 0, []
            with suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise
        self._depth, self._pending = 0, []
        self._maybe_write_back()

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as error:  # closing is best effort: everything committed is on disk already
            self.log.warning("OCPP store %s: close failed: %s", self.path, error)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Group several changes into one SQLite transaction (nesting is not supported)."""
        if self._depth:
            raise RuntimeError("OcppStore.atomic() does not nest: group the changes in one atomic() block")
        with self._transaction():
            yield

    # -- reporting -------------------------------------------------------------------------------------
    def startup_problems(self) -> list[str]:
        """What went wrong while opening (lost, kept aside, in memory), or while registering the tables of
        a repository right after, for the station to report."""
        return list(self._startup_problems)

    def quarantine(self, kind: str, source: str, data: str, reason: str) -> None:
        """Keep data that cannot be used out of the way (in the quarantine table), log it, and remember it
        for new_quarantine_events()."""
        text = data if isinstance(data, str) else repr(data)  # whatever the caller found, it gets kept
        with self._transaction():
            self._write("INSERT INTO quarantine (kind, source, data, reason, time) VALUES (?, ?, ?, ?, ?)",
                        (kind, source, text[:_QUARANTINE_DATA_MAX], reason, _utc_now()))
            self._write("DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?",
                        (_QUARANTINE_ROWS_MAX,))
        self.log.error("OCPP store: %s from %s quarantined: %s", kind, source, reason)
        self._quarantine_events.append((kind, reason))

    def drop_record(self, kind: str, record_id: int, data: Any, reason: str) -> None:
        """A record read back that cannot be used: kept in quarantine and removed, in one transaction, so it
        is neither trusted nor read again (and never lost to a crash between the two)."""
        with self._transaction():
            self.quarantine("record", f"{kind}/{record_id}", repr(data), reason)
            self.remove_record(kind, record_id)

    def quarantined(self) -> list[QuarantinedRow]:
        rows = self._read("SELECT id, kind, source, data, reason, time FROM quarantine ORDER BY id")
        def text(value: Any) -> str:
            return value if isinstance(value, str) else repr(value)
        return [QuarantinedRow(int(row[0]), text(row[1]), text(row[2]), text(row[3]), text(row[4]), text(row[5]))
                for row in rows]

    def new_quarantine_events(self) -> list[tuple[str, str]]:
        """(kind, reason) of each quarantine since the last call, for a security or diagnostics event."""
        events, self._quarantine_events = self._quarantine_events, []
        return events

    # -- for repositories ----------------------------------------------------------------------------
    # A repository (everpy.ocpp.v16.repository.Repository16, ...) keeps the tables of one OCPP version in
    # this store. It declares them with register_tables() and reads and writes them only through the methods
    # of this section, which take the same care as the store's own methods: a storage fault releases the
    # reserve or moves the store to memory (and later back onto the file) and never reaches the repository;
    # a mistake of the caller (bad SQL, a constraint) still raises. Writes join an open atomic() block.
    def register_tables(self, tables: Tables) -> None:
        """Keep a repository's tables in this store: migrate them to their version and check their columns
        now, and in every database the store takes from now on (a fresh file, memory). Called by the
        repository when it is created, right after the store was opened and before it is used: tables that
        do not fit the file (or are newer than this code) are damage, as found at open, so the file is kept
        aside and the store starts empty (reported in startup_problems()). Registering the same tables again
        changes nothing."""
        known = self._tables.get(tables.name)
        if known is not None:
            if known != tables:
                raise ValueError(f"other tables are registered as {tables.name!r} already")
            return
        taken = set(_SCHEMA_COLUMNS).union(*(other.columns for other in self._tables.values()))
        if clash := taken & set(tables.columns):
            raise ValueError(f"tables {tables.name} would take tables the store has already: {sorted(clash)}")
        if self._depth:
            raise RuntimeError("OcppStore.register_tables() inside atomic(): register before using the store")
        self._tables[tables.name] = tables  # first: a database taken after a fault below gets them too
        try:
            self._guarded(lambda: _apply_tables(self._db, tables))
        except _Damaged as damage:
            self._damaged_in_use(str(damage))
        self._maybe_write_back()

    def _damaged_in_use(self, damage: str) -> None:
        """Registered tables do not fit: the file is kept aside and a fresh store started, as at open; a
        store in memory starts an empty memory (it cannot go back onto that file)."""
        before = self._problems()
        with suppress(sqlite3.Error):
            self._db.close()
        if self._memory:
            self._db = self._empty_memory()
            self._write_back_possible = False
            self.degraded = f"store {self.path} cannot be trusted ({damage}): {_UNTIL_RESTART}"
            self._degraded_reported = False
            self.log.error("%s", self.degraded)
        else:
            self._db = self._replace_damaged(damage)
        self._startup_problems += [problem for problem in self._problems() if problem not in before]
        self._report_degraded()

    def write(self, sql: str, params: tuple[Any, ...] = (), *, durable: bool = True) -> None:
        """One statement that changes the store, committed at once or with the open atomic() block.

        durable=False is for a frequent write whose last few may be lost at a power cut (a meter reading
        every second): it survives a crash of the process (WAL commit) without an fsync each time
        (synchronous=NORMAL for this write only), which spares the flash of small boards. Inside an
        atomic() block the setting would not apply to this write alone, and in memory it means nothing:
        there the write is an ordinary one."""
        relaxed = not durable and not self._memory and not self._depth
        if relaxed:
            with suppress(sqlite3.Error):  # a failed PRAGMA costs one fsync, nothing else
                self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._write(sql, params)
        finally:
            if relaxed and not self._memory:  # a write that moved the store to memory left the file behind
                with suppress(sqlite3.Error):
                    self._db.execute("PRAGMA synchronous=FULL")

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of a query. Text that is not UTF-8 comes back as bytes (not str), so that one such value
        does not fail the whole query: the checks (str_value, ...) then raise BadRow for that row alone."""
        return self._read(sql, params)

    def quarantine_row(self, kind: str, source: str, row: Sequence[Any], reason: str) -> None:
        """Keep the values of a row that cannot be used (whatever their types) in quarantine; the row itself
        stays where it is."""
        self.quarantine(kind, source, _describe(row), reason)

    def move_to_quarantine(self, kind: str, source: str, row: Sequence[Any], reason: str, table: str,
                           rowid: int) -> None:
        """quarantine_row(), and the row (``rowid`` of ``table``) deleted in the same transaction: a bad row
        is skipped once and never read again."""
        with self._transaction():
            self.quarantine_row(kind, source, row, reason)
            self._write(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))

    # -- configuration -----------------------------------------------------------------------------
    def config_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for row in self._read("SELECT rowid, key, value FROM config WHERE version = ?", (self.ocpp_version,)):
            try:
                values[str_value(row[1], "key")] = str_value(row[2], "value")
            except BadRow as bad:
                self.move_to_quarantine("config", f"{self.ocpp_version} config", row[1:],
                                        f"configuration key {bad}", "config", row[0])
        return values

    def set_config(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO config VALUES (?, ?, ?)", (self.ocpp_version, key, value))

    # -- transaction message queue -------------------------------------------------------------------
    def enqueue(self, action: str, payload: dict[str, Any], unique_id: str, tx_key: str | None = None) -> int:
        cursor = self._write(
            "INSERT INTO queue (version, action, payload, tx_key, unique_id) VALUES (?, ?, ?, ?, ?)",
            (self.ocpp_version, action, json.dumps(payload), tx_key, unique_id),
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def _queued(row: Sequence[Any]) -> QueuedMessage:
        seq, action, payload, tx_key, unique_id, attempts = row
        if not isinstance(action, str) or not action:
            raise BadRow("action is not text")
        if tx_key is not None and not isinstance(tx_key, str):
            raise BadRow("tx_key is not text")
        return QueuedMessage(int_value(seq, "seq"), action, json_object(payload, "payload"), tx_key,
                             str_value(unique_id, "unique_id"), int_value(attempts, "attempts"))

    def _quarantine_queue_row(self, row: Sequence[Any], reason: str) -> None:
        self.move_to_quarantine("queue", f"{self.ocpp_version} queue seq {row[0]} {row[1]!r}", row, reason,
                                "queue", row[0])

    def queue_head(self) -> QueuedMessage | None:
        after = -1  # rows looked at are passed even if their removal did not stick: no endless loop
        while True:
            rows = self._read("SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue"
                              " WHERE version = ? AND seq > ? ORDER BY seq LIMIT 1", (self.ocpp_version, after))
            if not rows:
                return None
            try:
                return self._queued(rows[0])
            except BadRow as bad:
                self._quarantine_queue_row(rows[0], str(bad))
                after = rows[0][0]

    def queue_length(self) -> int:
        """Rows queued for this version; a bad row counts until queue_head() comes to it."""
        return int(self._read("SELECT COUNT(*) FROM queue WHERE version = ?", (self.ocpp_version,))[0][0])

    def queued_elsewhere(self) -> dict[str, int]:
        """Messages queued under other OCPP versions (never sent by this one): version -> count."""
        return {str(row[0]): int(row[1]) for row in self._read(
            "SELECT version, COUNT(*) FROM queue WHERE version != ? GROUP BY version", (self.ocpp_version,))}

    def queued_actions(self) -> list[str]:
        actions: list[str] = []
        for row in self._read("SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue"
                              " WHERE version = ? ORDER BY seq", (self.ocpp_version,)):
            try:
                actions.append(self._queued(row).action)
            except BadRow as bad:
                self._quarantine_queue_row(row, str(bad))
        return actions

    def count_attempt(self, seq: int) -> None:
        self._write("UPDATE queue SET attempts = attempts + 1 WHERE seq = ? AND version = ?",
                    (seq, self.ocpp_version))

    def dequeue(self, seq: int) -> None:
        self._write("DELETE FROM queue WHERE seq = ? AND version = ?", (seq, self.ocpp_version))

    def quarantine_queued(self, seq: int, reason: str) -> bool:
        """Move a message the station can never send (unknown action, ...) out of the queue into quarantine.
        Returns whether there was such a message."""
        rows = self._read("SELECT seq, action, payload, tx_key, unique_id, attempts FROM queue"
                          " WHERE seq = ? AND version = ?", (seq, self.ocpp_version))
        if not rows:
            return False
        self._quarantine_queue_row(rows[0], reason)
        return True

    # -- records (charging profiles, reservations) ---------------------------------------------------
    def put_record(self, kind: str, record_id: int, data: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                    (self.ocpp_version, kind, record_id, json.dumps(data)))

    def remove_record(self, kind: str, record_id: int) -> None:
        self._write("DELETE FROM records WHERE version = ? AND kind = ? AND id = ?",
                    (self.ocpp_version, kind, record_id))

    def records(self, kind: str) -> dict[int, dict[str, Any]]:
        result: dict[int, dict[str, Any]] = {}
        for row in self._read("SELECT rowid, id, data FROM records WHERE version = ? AND kind = ? ORDER BY id",
                              (self.ocpp_version, kind)):
            try:
                result[int_value(row[1], "id")] = json_object(row[2], "data")
            except BadRow as bad:
                self.move_to_quarantine("record", f"{self.ocpp_version} record {kind!r}", row[1:], str(bad),
                                        "records", row[0])
        return result
