"""OcppStore on real SQLite files: migration of the store of the previous release, OCPP versions kept
apart, the tables of repositories (Repository16's and others), quarantine of rows that cannot be decoded,
stores that vanished or were replaced, atomic()."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from everpy.ocpp.store import RESERVE_BYTES, SCHEMA_VERSION, OcppStore, QueuedMessage, Tables
from everpy.ocpp.v16.repository import OpenTransaction, Repository16

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ocpp" / "store-v0.db"

START = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 1000, "timestamp": "2024-01-02T03:04:05Z"}
METER = {"connectorId": 1, "meterValue": [{"timestamp": "2024-01-02T03:14:05Z", "sampledValue": [{"value": "1500"}]}]}
SAMPLES = [{"timestamp": "2024-01-02T03:04:05Z", "sampledValue": [{"value": "1000", "context": "Transaction.Begin"}]}]
PROFILE = {"connectorId": 1, "profile": {
    "chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute", "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}}
RESERVATION = {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "TAG-3"}


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection beside the store, to look at the file or damage it as only a bug or a bad disk
    would."""
    return sqlite3.connect(path, isolation_level=None)


def sidecar(path: Path) -> dict:
    return json.loads(Path(f"{path}.id").read_text())


def assert_v0_content(store: OcppStore) -> None:
    assert store.config_values() == {"HeartbeatInterval": "120"}
    assert store.queued_actions() == ["StartTransaction", "MeterValues"]
    assert store.queue_length() == 2
    assert store.queue_head() == QueuedMessage(1, "StartTransaction", START, "tx-1", "uid-start", 0)
    v16 = Repository16(store)
    assert v16.open_transactions() == [OpenTransaction("tx-1", 1, "TAG-1", 1000, "2024-01-02T03:04:05Z", 42,
                                                       1500, "2024-01-02T03:14:05Z", SAMPLES)]
    assert v16.transaction_id("tx-1") == 42
    assert v16.id_tag_info("cache", "TAG-1") == {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"}
    assert v16.id_tag_info("local", "tag-2") == {"status": "Blocked"}  # still case-insensitive
    assert v16.id_tag_count("cache") == 1 and v16.id_tag_count("local") == 1
    assert store.records("local_list_version") == {0: {"version": 3}}
    assert store.records("charging_profile") == {7: PROFILE}
    assert store.records("reservation") == {5: RESERVATION}


def test_store_of_the_previous_release_is_migrated_with_every_value(tmp_path: Path) -> None:
    fixture_hash = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    path = tmp_path / "ocpp.db"
    shutil.copy(FIXTURE, path)
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0

    store = OcppStore(path)
    assert store.startup_problems() == []
    assert (store.degraded, store.kept_aside, store.lost) == (None, None, None)
    assert_v0_content(store)
    second = store.queue_head()
    assert second is not None and second.seq == 1
    store.dequeue(1)
    head = store.queue_head()
    assert head == QueuedMessage(2, "MeterValues", METER, "tx-1", "uid-meter", 0)
    assert store.enqueue("StopTransaction", {"meterStop": 1600}, "uid-stop", "tx-1") == 3  # sequence kept
    store_id = store.store_id
    store.close()

    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "config", "queue", "v16_transactions", "v16_id_tags", "records", "quarantine"} <= tables
    assert not {"transactions", "id_tags"} & tables  # renamed by the migration, not copied
    assert db.execute("SELECT DISTINCT version FROM queue").fetchall() == [("1.6",)]
    assert db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0] == store_id
    assert db.execute("SELECT value FROM meta WHERE key = 'tables_version:v16'").fetchone()[0] == "1"
    db.close()
    assert sidecar(path) == {"store_id": store_id, "user_version": SCHEMA_VERSION}

    again = OcppStore(path)  # a second start is no migration and no problem
    assert again.startup_problems() == [] and again.store_id == store_id
    assert again.queued_actions() == ["MeterValues", "StopTransaction"]
    assert again.records("reservation") == {5: RESERVATION}
    again.close()
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == fixture_hash  # the fixture itself is untouched


def test_store_from_before_stop_samples_were_persisted_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    with raw(path) as db:  # the oldest schema: transactions without stop_samples
        db.execute("CREATE TABLE transactions (tx_key TEXT PRIMARY KEY, connector INTEGER NOT NULL,"
                   " id_tag TEXT NOT NULL, meter_start INTEGER NOT NULL, start_time TEXT NOT NULL,"
                   " transaction_id INTEGER, last_meter_wh INTEGER NOT NULL, last_meter_time TEXT NOT NULL,"
                   " open INTEGER NOT NULL DEFAULT 1)")
        db.execute("INSERT INTO transactions VALUES ('tx-9', 2, 'T', 5, 't0', NULL, 7, 't1', 1)")
    db.close()
    store = OcppStore(path)
    v16 = Repository16(store)
    assert v16.open_transactions() == [OpenTransaction("tx-9", 2, "T", 5, "t0", None, 7, "t1", [])]
    v16.add_stop_samples("tx-9", SAMPLES)
    assert v16.open_transactions()[0].stop_samples == SAMPLES
    assert store.config_values() == {} and store.queue_head() is None  # the missing tables were created
    store.close()


def test_new_store_gets_an_id_and_a_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ocpp.db"
    store = OcppStore(path)
    assert store.startup_problems() == [] and store.degraded is None
    assert len(store.store_id) == 32
    assert sidecar(path) == {"store_id": store.store_id, "user_version": SCHEMA_VERSION}
    assert not Path(f"{path}.id.tmp").exists()
    store.set_config("K", "v")
    store.close()
    assert OcppStore(path).config_values() == {"K": "v"}


def test_new_store_is_in_wal_mode_with_a_reserve_of_real_bytes_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path).close()
    with raw(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    reserve = Path(f"{path}.reserve")
    stat = reserve.stat()
    assert stat.st_size == RESERVE_BYTES
    assert stat.st_blocks * 512 >= RESERVE_BYTES  # allocated, not sparse
    assert len(set(reserve.read_bytes())) > 16  # not a run of zeros a file system could leave out
    assert [p.name for p in tmp_path.iterdir() if ".reserve." in p.name] == []  # no temporary file left
    OcppStore(path).close()  # the next open keeps it as it is
    assert reserve.stat().st_ino == stat.st_ino and reserve.stat().st_mtime_ns == stat.st_mtime_ns


def test_no_reserve_when_switched_off(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path, reserve_bytes=0).close()
    assert not Path(f"{path}.reserve").exists()


def test_released_reserve_is_written_again_at_an_open_with_room(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path).close()
    reserve = Path(f"{path}.reserve")
    reserve.write_bytes(b"")  # as released on a full disk
    store = OcppStore(path)
    assert store.startup_problems() == [] and store.nearly_full is None
    assert reserve.stat().st_size == RESERVE_BYTES
    store.close()


def test_foreign_database_is_kept_aside_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    with raw(path) as db:  # another program's database, with a table of our name and other columns
        db.execute("CREATE TABLE config (name TEXT, enabled INTEGER)")
        db.execute("INSERT INTO config VALUES ('x', 1)")
    db.close()
    original = path.read_bytes()
    store = OcppStore(path)
    assert store.kept_aside is not None and "damaged" in store.startup_problems()[0]
    assert store.kept_aside.read_bytes() == original  # not even switched to WAL mode
    assert not Path(f"{store.kept_aside}-wal").exists() and not Path(f"{store.kept_aside}-journal").exists()
    store.close()


def test_ocpp_versions_sharing_the_file_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    v16 = OcppStore(path)
    v201 = OcppStore(path, ocpp_version="2.0.1")
    v16.set_config("HeartbeatInterval", "60")
    v201.set_config("HeartbeatInterval", "300")
    v16.put_record("charging_profile", 1, {"v": 16})
    v201.put_record("charging_profile", 1, {"v": 201})
    seq16 = v16.enqueue("StartTransaction", {"a": 1}, "u16", "tx")
    seq201 = v201.enqueue("TransactionEvent", {"b": 2}, "u201", "tx")

    assert v16.config_values() == {"HeartbeatInterval": "60"}
    assert v201.config_values() == {"HeartbeatInterval": "300"}
    assert v16.records("charging_profile") == {1: {"v": 16}}
    assert v201.records("charging_profile") == {1: {"v": 201}}
    assert v16.queued_actions() == ["StartTransaction"] and v201.queued_actions() == ["TransactionEvent"]
    v16.dequeue(seq201)  # a 1.6 station cannot drop a 2.0.1 message by its number
    v16.count_attempt(seq201)
    head = v201.queue_head()
    assert head is not None and head.seq == seq201 and head.attempts == 0
    v16.remove_record("charging_profile", 1)
    assert v201.records("charging_profile") == {1: {"v": 201}}
    v16.dequeue(seq16)
    assert v16.queue_length() == 0 and v201.queue_length() == 1
    with pytest.raises(ValueError, match="OCPP 1.6"):  # the 1.6 tables are 1.6's: not for a 2.0.1 store
        Repository16(v201)
    v16.close()
    v201.close()


# -- the tables of repositories -------------------------------------------------------------------------
def other_tables(steps: list[str]) -> Tables:
    """The tables of a repository of another version: one table, made in two migrations (recorded in steps)."""
    def create(db: sqlite3.Connection) -> None:
        steps.append("create")
        db.execute("CREATE TABLE x_things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")

    def add_column(db: sqlite3.Connection) -> None:
        steps.append("add_column")
        db.execute("ALTER TABLE x_things ADD COLUMN size INTEGER NOT NULL DEFAULT 0")

    return Tables("x", {"x_things": {"id", "name", "size"}}, (create, add_column))


def test_tables_of_a_repository_are_migrated_once_and_used_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    steps: list[str] = []
    store = OcppStore(path, ocpp_version="x")
    tables = other_tables(steps)
    store.register_tables(tables)
    store.register_tables(tables)  # again (a second repository on the store): nothing
    assert steps == ["create", "add_column"]
    store.write("INSERT INTO x_things (id, name, size) VALUES (?, ?, ?)", (1, "one", 5))
    with store.atomic():  # the writes of a repository join the block
        store.write("INSERT INTO x_things (id, name) VALUES (?, ?)", (2, "two"))
        store.enqueue("Thing", {}, "u", None)
    assert store.read("SELECT id, name, size FROM x_things ORDER BY id") == [(1, "one", 5), (2, "two", 0)]
    with pytest.raises(ValueError, match="registered"):  # other tables under a taken name are a bug
        store.register_tables(Tables("x", {"x_other": {"id"}}, ()))
    with pytest.raises(ValueError, match="queue"):  # and so are tables the store has already
        store.register_tables(Tables("y", {"queue": {"seq"}}, ()))
    store.close()
    with raw(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'tables_version:x'").fetchone() == ("2",)
    db.close()

    again = OcppStore(path, ocpp_version="x")
    again.register_tables(other_tables(steps))
    assert steps == ["create", "add_column"]  # migrated already
    assert again.startup_problems() == [] and again.kept_aside is None
    assert len(again.read("SELECT * FROM x_things")) == 2
    again.close()


def test_bad_rows_of_a_repository_are_moved_to_quarantine(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db", ocpp_version="x")
    store.register_tables(other_tables([]))
    store.write("INSERT INTO x_things (id, name) VALUES (1, CAST(x'ff' AS TEXT))")
    [row] = store.read("SELECT rowid, id, name FROM x_things")
    assert isinstance(row[2], bytes)  # undecodable text does not fail the query
    store.move_to_quarantine("thing", "x things", row[1:], "name is not text", "x_things", row[0])
    assert store.read("SELECT * FROM x_things") == []
    [kept] = store.quarantined()
    assert (kept.kind, kept.source, kept.reason) == ("thing", "x things", "name is not text") and "ff" in kept.data
    store.quarantine_row("thing", "x things", ("any", b"\x00"), "only kept")  # the row itself stays
    assert [reason for _, reason in store.new_quarantine_events()] == ["name is not text", "only kept"]
    store.close()


def test_tables_of_a_repository_are_there_in_a_store_in_memory(tmp_path: Path) -> None:
    (tmp_path / "ocpp.db").mkdir()  # cannot be opened: in memory from the start
    store = OcppStore(tmp_path / "ocpp.db", ocpp_version="x")
    assert store.degraded is not None
    store.register_tables(other_tables([]))
    store.write("INSERT INTO x_things (id, name) VALUES (1, 'one')", durable=False)  # in memory: a plain write
    assert store.read("SELECT id, name FROM x_things") == [(1, "one")]
    store.close()


def test_store_whose_1_6_tables_do_not_fit_is_kept_aside_when_the_repository_comes(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path).close()  # a current store, its 1.6 tables made by the store's migration
    with raw(path) as db:  # then a column goes missing, as only a bug or a hand edit would do
        db.execute("ALTER TABLE v16_id_tags DROP COLUMN info")
    db.close()
    store = OcppStore(path)
    store.set_config("Before", "1")
    assert store.startup_problems() == []  # the store's own tables are fine
    v16 = Repository16(store)
    assert store.kept_aside is not None and store.degraded is None
    [problem] = store.startup_problems()
    assert "v16_id_tags" in problem and "columns" in problem and str(store.kept_aside) in problem
    assert store.config_values() == {}  # started empty, like a damaged file found at open
    v16.put_id_tag("cache", "T", {"status": "Accepted"})
    assert v16.id_tag_info("cache", "t") == {"status": "Accepted"}
    store.close()
    again = OcppStore(path)
    assert Repository16(again).id_tag_count("cache") == 1 and again.startup_problems() == []
    again.close()


def test_store_whose_1_6_tables_are_newer_is_kept_aside_never_downgraded(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    Repository16(store).put_id_tag("cache", "T", {"status": "Accepted"})
    store.close()
    with raw(path) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'tables_version:v16'")
    db.close()
    store = OcppStore(path)
    v16 = Repository16(store)
    assert store.kept_aside is not None and "newer" in store.startup_problems()[0]
    with raw(store.kept_aside) as db:  # untouched, for the newer code or a human
        assert db.execute("SELECT value FROM meta WHERE key = 'tables_version:v16'").fetchone() == ("2",)
        assert db.execute("SELECT COUNT(*) FROM v16_id_tags").fetchone() == (1,)
    db.close()
    assert v16.id_tag_count("cache") == 0
    store.close()


def insert_raw_queue_row(path: Path, payload: object, action: object = "MeterValues") -> None:
    with raw(path) as db:
        db.execute("INSERT INTO queue (version, action, payload, tx_key, unique_id) VALUES ('1.6', ?, ?, NULL, 'u')",
                   (action, payload))
    db.close()


def test_queued_row_with_a_corrupt_payload_is_quarantined_and_the_next_message_returned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    insert_raw_queue_row(path, '{"connectorId": 1, "meterVal')   # cut JSON
    insert_raw_queue_row(path, "[1, 2]")                         # JSON, but not an object
    with raw(path) as db:                                        # not even UTF-8
        db.execute("INSERT INTO queue (version, action, payload, tx_key, unique_id)"
                   " VALUES ('1.6', 'MeterValues', CAST(x'7bff22' AS TEXT), NULL, 'u')")
    insert_raw_queue_row(path, "{}", action=b"\x00Meter")  # a BLOB as action
    seq = store.enqueue("StopTransaction", {"meterStop": 5}, "uid-good", "tx-1")
    assert store.queue_length() == 5

    with caplog.at_level(logging.ERROR, logger="everpy.ocpp.store"):
        head = store.queue_head()
    assert head == QueuedMessage(seq, "StopTransaction", {"meterStop": 5}, "tx-1", "uid-good", 0)
    assert store.queue_length() == 1  # the bad rows left the queue
    quarantined = store.quarantined()
    assert [row.kind for row in quarantined] == ["queue"] * 4
    assert "not valid JSON" in quarantined[0].reason and '"meterVal' in quarantined[0].data
    assert "not a JSON object" in quarantined[1].reason
    assert "not text" in quarantined[2].reason and "7bff22" in quarantined[2].data  # kept byte for byte
    assert "action is not text" in quarantined[3].reason
    assert all(row.time.endswith("Z") for row in quarantined)
    assert [kind for kind, _ in store.new_quarantine_events()] == ["queue"] * 4
    assert store.new_quarantine_events() == []  # returned once
    assert sum("quarantined" in record.getMessage() for record in caplog.records) == 4
    store.close()
    reopened = OcppStore(path)  # quarantine is persistent and the bad rows do not come back
    assert len(reopened.quarantined()) == 4 and reopened.queued_actions() == ["StopTransaction"]
    reopened.close()


@pytest.fixture
def damaged_rows(tmp_path: Path) -> OcppStore:
    """A store with one good and one undecodable row in every table the store reads JSON or text from."""
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    store.set_config("Good", "1")
    store.put_record("reservation", 1, {"ok": True})
    v16 = Repository16(store)
    v16.put_id_tag("cache", "GOOD", {"status": "Accepted"})
    v16.open_transaction("tx-good", 1, "T", 0, "t0")
    with raw(path) as db:
        db.execute("INSERT INTO config VALUES ('1.6', 'Bad', CAST(x'ff' AS TEXT))")
        db.execute("INSERT INTO records VALUES ('1.6', 'reservation', 2, 'not json')")
        db.execute("INSERT INTO records VALUES ('1.6', 'reservation', 3, '\"a string\"')")
        db.execute("INSERT INTO v16_id_tags VALUES ('cache', 'BAD', '{broken')")
        db.execute("INSERT INTO v16_transactions (tx_key, connector, id_tag, meter_start, start_time,"
                   " last_meter_wh, last_meter_time, stop_samples) VALUES ('tx-bad', 2, 'T', 0, 't0', 0, 't0', '{')")
        db.execute("INSERT INTO v16_transactions (tx_key, connector, id_tag, meter_start, start_time,"
                   " last_meter_wh, last_meter_time, transaction_id) VALUES ('tx-id', 3, 'T', 0, 't0', 0, 't0', 'x')")
    db.close()
    return store


def test_undecodable_rows_are_skipped_and_quarantined(damaged_rows: OcppStore) -> None:
    store = damaged_rows
    v16 = Repository16(store)
    assert store.config_values() == {"Good": "1"}
    assert store.records("reservation") == {1: {"ok": True}}
    assert v16.id_tag_info("cache", "BAD") is None  # an unusable entry is no entry
    assert v16.id_tag_info("cache", "GOOD") == {"status": "Accepted"}
    assert [tx.tx_key for tx in v16.open_transactions()] == ["tx-good"]
    assert v16.transaction_id("tx-id") is None  # quarantined with the transaction above already
    events = store.new_quarantine_events()
    assert sorted(kind for kind, _ in events) == ["config", "id_tag", "record", "record", "transaction",
                                                  "transaction"]
    # the second read finds nothing left to quarantine, and the good rows are unchanged
    assert store.config_values() == {"Good": "1"} and store.records("reservation") == {1: {"ok": True}}
    assert v16.id_tag_count("cache") == 1
    assert store.new_quarantine_events() == []
    assert len(store.quarantined()) == 6
    store.close()


def test_stop_samples_that_cannot_be_read_are_replaced_by_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    v16 = Repository16(store)
    v16.open_transaction("tx", 1, "T", 0, "t0")
    with raw(path) as db:
        db.execute("UPDATE v16_transactions SET stop_samples = '[1, 2' WHERE tx_key = 'tx'")
    db.close()
    v16.add_stop_samples("tx", SAMPLES)
    assert v16.open_transactions()[0].stop_samples == SAMPLES
    assert store.new_quarantine_events() == [("transaction", "stop_samples is not valid JSON: "
                                              "Expecting ',' delimiter: line 1 column 6 (char 5)")]
    store.close()


def test_station_moves_a_message_it_cannot_send_to_quarantine(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db")
    seq = store.enqueue("NoSuchAction", {"x": 1}, "uid-x")
    later = store.enqueue("MeterValues", {"y": 2}, "uid-y")
    assert store.quarantine_queued(seq, "unknown action NoSuchAction") is True
    assert store.quarantine_queued(seq, "again") is False
    head = store.queue_head()
    assert head is not None and head.seq == later
    [row] = store.quarantined()
    assert (row.kind, row.reason) == ("queue", "unknown action NoSuchAction") and "NoSuchAction" in row.data
    assert store.new_quarantine_events() == [("queue", "unknown action NoSuchAction")]
    store.close()


def test_quarantine_keeps_only_the_newest_rows(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db")
    for n in range(210):
        store.quarantine("test", "here", "x" * 100_000, f"bad {n}")
    rows = store.quarantined()
    assert len(rows) == 200 and rows[0].reason == "bad 10" and rows[-1].reason == "bad 209"
    assert len(rows[0].data) == 16 * 1024  # bounded too
    store.close()


def test_store_missing_though_it_existed_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    old_id = store.store_id
    store.set_config("K", "v")
    store.close()
    path.unlink()  # the sidecar stays: the store shrank to nothing

    store = OcppStore(path)
    assert store.lost is not None and "missing" in store.lost and old_id in store.lost
    assert store.startup_problems() == [store.lost]
    assert store.config_values() == {}  # started empty, but it said so
    assert store.degraded is None
    store.set_config("K", "new")
    new_id = store.store_id
    assert new_id != old_id and sidecar(path)["store_id"] == new_id
    store.close()
    store = OcppStore(path)  # reported once: the new store is the known one now
    assert store.startup_problems() == [] and store.config_values() == {"K": "new"}
    store.close()


def test_store_emptied_to_zero_bytes_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path).close()
    path.write_bytes(b"")
    store = OcppStore(path)
    assert store.lost is not None and "empty" in store.lost
    assert store.startup_problems() == [store.lost]
    store.put_record("reservation", 1, {})
    assert store.records("reservation") == {1: {}}
    store.close()


def test_store_replaced_by_another_one_is_reported(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours" / "ocpp.db", tmp_path / "theirs" / "ocpp.db"
    OcppStore(ours).close()
    other = OcppStore(theirs)
    other.set_config("From", "theirs")
    other_id = other.store_id
    other.close()
    shutil.copy(theirs, ours)

    store = OcppStore(ours)
    assert store.lost is not None and "not the one" in store.lost and other_id in store.lost
    assert store.config_values() == {"From": "theirs"}  # a valid store: used, but reported
    assert sidecar(ours)["store_id"] == other_id
    store.close()
    assert OcppStore(ours).startup_problems() == []


def test_sidecar_that_cannot_be_read_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    OcppStore(path).close()
    Path(f"{path}.id").write_text("{not json")
    store = OcppStore(path)
    assert store.startup_problems() == [] and sidecar(path)["store_id"] == store.store_id
    store.close()


def test_atomic_does_not_nest_and_says_so(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db")
    with pytest.raises(RuntimeError, match="does not nest"):
        with store.atomic():
            store.set_config("Outer", "1")
            with store.atomic():
                store.set_config("Inner", "1")
    assert store.config_values() == {}  # the outer block was rolled back as a whole
    with store.atomic():  # and the store is usable afterwards
        store.set_config("After", "1")
        store.enqueue("A", {}, "u")
    assert store.config_values() == {"After": "1"} and store.queued_actions() == ["A"]
    store.close()


def test_atomic_rolls_back_when_the_block_raises(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db")
    v16 = Repository16(store)
    with pytest.raises(ValueError), store.atomic():
        v16.open_transaction("tx", 1, "T", 0, "t0")
        store.enqueue("StartTransaction", {}, "u", "tx")
        raise ValueError("no")
    assert v16.open_transactions() == [] and store.queue_length() == 0
    store.close()


def test_mistakes_of_the_caller_still_raise(tmp_path: Path) -> None:
    # Only storage faults are absorbed: a duplicate transaction is a bug to see, not a reason for memory mode.
    store = OcppStore(tmp_path / "ocpp.db")
    v16 = Repository16(store)
    v16.open_transaction("tx", 1, "T", 0, "t0")
    with pytest.raises(sqlite3.IntegrityError):
        v16.open_transaction("tx", 1, "T", 0, "t0")
    assert store.degraded is None
    store.close()


def test_record_meter_relaxes_synchronous_for_its_own_write_only(tmp_path: Path) -> None:
    store = OcppStore(tmp_path / "ocpp.db")
    v16 = Repository16(store)
    v16.open_transaction("tx", 1, "T", 0, "t0")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # white box: what SQLite is asked to do
    v16.record_meter("tx", 42, "t1")
    store._db.set_trace_callback(None)
    assert statements[0] == "PRAGMA synchronous=NORMAL" and statements[-1] == "PRAGMA synchronous=FULL"
    assert any(s.startswith("UPDATE v16_transactions SET last_meter_wh") for s in statements[1:-1])
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    assert v16.open_transactions()[0].last_meter_wh == 42
    store.close()
