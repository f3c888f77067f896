"""OcppStore when the file or the disk fails: damaged, truncated, newer, read-only and full stores, the
reserve released on a full disk, and the store written back from memory once the file can be written.

Real failures only, no mocks of SQLite. The tests run as root, which file modes do not stop, so read-only
and full come from small tmpfs mounts (remounted read-only) and read-only bind mounts; those tests are
skipped when mounting is not permitted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from everpy.ocpp.store import RESERVE_BYTES, SCHEMA_VERSION, WRITE_BACK_INTERVAL_S, OcppStore
from everpy.ocpp.v16.repository import Repository16


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def user_version(path: Path) -> int:
    db = raw(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def filled_store(path: Path) -> str:
    """A closed store with a little of everything; returns its id."""
    store = OcppStore(path)
    v16 = Repository16(store)
    store.set_config("HeartbeatInterval", "120")
    store.enqueue("StartTransaction", {"connectorId": 1}, "uid-1", "tx-1")
    v16.open_transaction("tx-1", 1, "TAG", 10, "t0")
    v16.put_id_tag("local", "TAG", {"status": "Accepted"})
    store.put_record("reservation", 3, {"idTag": "TAG"})
    store_id = store.store_id
    store.close()
    return store_id


def assert_filled(store: OcppStore) -> None:
    v16 = Repository16(store)
    assert store.config_values() == {"HeartbeatInterval": "120"}
    assert store.queued_actions() == ["StartTransaction"]
    assert [tx.tx_key for tx in v16.open_transactions()] == ["tx-1"]
    assert v16.id_tag_info("local", "TAG") == {"status": "Accepted"}
    assert store.records("reservation") == {3: {"idTag": "TAG"}}


def assert_works(store: OcppStore) -> None:
    """Every kind of write goes through and reads back (persisted or in memory)."""
    v16 = Repository16(store)
    store.set_config("After", "1")
    with store.atomic():
        v16.open_transaction("tx-after", 2, "T", 0, "t0")
        seq = store.enqueue("StartTransaction", {"connectorId": 2}, "uid-after", "tx-after")
    v16.record_meter("tx-after", 5, "t1")
    store.put_record("charging_profile", 9, {"p": 1})
    assert store.config_values()["After"] == "1"
    assert any(tx.tx_key == "tx-after" and tx.last_meter_wh == 5 for tx in v16.open_transactions())
    assert store.records("charging_profile")[9] == {"p": 1}
    head = store.queue_head()
    assert head is not None
    store.dequeue(seq)


def kept_aside_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".damaged-" in p.name)


# -- damaged files -------------------------------------------------------------------------------------
def test_newer_store_is_kept_aside_never_downgraded(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    filled_store(path)
    with raw(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    store = OcppStore(path)
    assert store.kept_aside is not None and store.kept_aside.name.startswith("ocpp.db.damaged-")
    assert store.kept_aside.name.endswith("Z")
    assert user_version(store.kept_aside) == SCHEMA_VERSION + 1  # untouched, for the newer code or a human
    assert store.degraded is None and store.lost is None
    [problem] = store.startup_problems()
    assert "newer" in problem and str(store.kept_aside) in problem
    assert store.config_values() == {} and user_version(path) == SCHEMA_VERSION
    assert_works(store)
    store.close()
    again = OcppStore(path)  # the fresh store is persistent and now the known one
    assert again.startup_problems() == [] and again.config_values() == {"After": "1"}
    again.close()


def test_garbage_file_and_its_wal_are_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"stale wal" * 100)

    store = OcppStore(path)
    assert store.kept_aside is not None
    assert store.kept_aside.read_bytes() == garbage
    assert Path(f"{store.kept_aside}-wal").read_bytes() == b"stale wal" * 100  # moved along, not applied
    assert "not a database" in store.startup_problems()[0]
    assert store.degraded is None
    assert_works(store)
    store.close()


def test_truncated_store_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    store = OcppStore(path)
    for n in range(100):  # a few dozen pages, so half of the file cuts through table b-trees
        store.put_record("charging_profile", n, {"blob": "x" * 1000})
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size // 2)

    store = OcppStore(path)
    assert store.kept_aside is not None and store.kept_aside.stat().st_size == size // 2
    assert store.degraded is None and store.lost is None  # the sidecar matched a file that was there
    assert "damaged" in store.startup_problems()[0]
    assert store.records("charging_profile") == {}
    assert_works(store)
    store.close()


def test_store_without_the_tables_of_its_version_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    with raw(path) as db:  # claims to be current, but is not what this code wrote
        db.execute("CREATE TABLE something (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.close()
    store = OcppStore(path)
    assert store.kept_aside is not None and "columns" in store.startup_problems()[0]
    assert_works(store)
    store.close()


def test_two_damaged_stores_within_a_second_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    for _ in range(2):
        path.write_bytes(b"garbage" * 1000)
        OcppStore(path).close()
    assert len(kept_aside_files(tmp_path)) == 2


def test_path_that_is_a_directory_runs_in_memory(tmp_path: Path) -> None:
    (tmp_path / "ocpp.db").mkdir()  # e.g. a bad database_path: SQLite cannot open it at all
    store = OcppStore(tmp_path / "ocpp.db")
    assert store.degraded is not None and "in-memory until restart" in store.degraded
    assert store.startup_problems() == [store.degraded]
    assert_works(store)
    store.close()


# -- read-only and full --------------------------------------------------------------------------------
def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points made by a test, unmounted afterwards (lazily: a failed test may keep files open)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made: list[Path] = []
    yield made
    for point in reversed(made):
        run("umount", "-l", str(point))


@pytest.fixture
def small_fs(tmp_path: Path, mounts: list[Path]) -> Callable[[str], Path]:
    def mount(size: str) -> Path:
        point = tmp_path / f"fs{len(mounts)}"
        point.mkdir()
        result = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(point)
        return point
    return mount


def remount_read_only(point: Path) -> None:
    result = run("mount", "-o", "remount,ro", str(point))
    if result.returncode != 0:
        pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")


def remount_read_write(point: Path) -> None:
    result = run("mount", "-o", "remount,rw", str(point))
    assert result.returncode == 0, result.stderr


def fill(point: Path) -> None:
    """Write a file until the file system is full (unbuffered: the error comes at the write)."""
    with open(point / "filler", "wb", buffering=0) as file:
        for chunk in (b"\xff" * 65536, b"\xff" * 512):  # the last partial block too
            with suppress(OSError):
                while True:
                    file.write(chunk)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reserve_of(path: Path) -> Path:
    return Path(f"{path}.reserve")


def bind_read_only(file: Path, mounts: list[Path]) -> None:
    """Make one file read-only even for root, its directory staying writable."""
    result = run("mount", "--bind", str(file), str(file))
    if result.returncode != 0:
        pytest.skip(f"cannot bind mount: {result.stderr.strip()}")
    mounts.append(file)
    result = run("mount", "-o", "remount,ro,bind", str(file))
    if result.returncode != 0:
        pytest.skip(f"cannot remount a bind mount read-only: {result.stderr.strip()}")


def test_read_only_file_runs_in_memory_with_its_content(tmp_path: Path, mounts: list[Path]) -> None:
    path = tmp_path / "ocpp.db"
    filled_store(path)
    bind_read_only(path, mounts)
    with pytest.raises(OSError):  # the premise: not even root writes it
        path.open("r+b")

    calls: list[str] = []
    store = OcppStore(path, on_degraded=calls.append)
    assert store.degraded is not None and "read-only" in store.degraded and "in-memory" in store.degraded
    assert calls == [store.degraded]
    assert store.startup_problems() == [store.degraded]
    assert store.kept_aside is None and store.lost is None
    assert_filled(store)  # carried over into memory
    assert_works(store)
    store.close()
    db = raw(path)  # the file still holds exactly what it held
    assert db.execute("SELECT key FROM config").fetchall() == [("HeartbeatInterval",)]
    db.close()


def test_read_only_store_whose_1_6_tables_do_not_fit_goes_on_in_an_empty_memory(
        tmp_path: Path, mounts: list[Path]) -> None:
    path = tmp_path / "ocpp.db"
    filled_store(path)
    with raw(path) as db:
        db.execute("ALTER TABLE v16_transactions DROP COLUMN stop_samples")
    db.close()
    original = path.read_bytes()
    bind_read_only(path, mounts)

    calls: list[str] = []
    store = OcppStore(path, on_degraded=calls.append)
    assert store.degraded is not None and "read-only" in store.degraded
    assert store.config_values() == {"HeartbeatInterval": "120"}  # the store's own tables are fine
    v16 = Repository16(store)  # the 1.6 tables are not: nothing of the file is trusted any more
    assert "v16_transactions" in store.degraded and "in-memory until restart" in store.degraded
    assert calls == [calls[0], store.degraded] and store.startup_problems()[-1] == store.degraded
    assert store.config_values() == {} and v16.open_transactions() == []
    assert_works(store)
    store.close()
    assert path.read_bytes() == original  # never written back over


def test_read_only_directory_runs_in_memory_with_its_content(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    store_id = filled_store(path)
    remount_read_only(point)

    store = OcppStore(path)
    assert store.degraded is not None and "read-only" in store.degraded
    assert store.store_id == store_id and store.lost is None  # the same store, only not writable
    assert_filled(store)
    assert_works(store)
    store.close()


def test_missing_store_in_read_only_directory_is_lost_and_in_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    filled_store(path)
    path.unlink()
    remount_read_only(point)

    store = OcppStore(path)
    assert store.lost is not None and "missing" in store.lost
    assert store.degraded is not None and "read-only" in store.degraded
    assert store.startup_problems() == [store.lost, store.degraded]
    assert store.config_values() == {}
    assert_works(store)
    store.close()


def test_damaged_store_in_read_only_directory_cannot_be_kept_aside(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    path.write_bytes(b"garbage" * 1000)
    remount_read_only(point)

    store = OcppStore(path)
    assert store.kept_aside is None
    assert store.degraded is not None and "cannot be kept aside" in store.degraded
    assert path.read_bytes() == b"garbage" * 1000  # still there for diagnostics
    assert store.config_values() == {}  # nothing of a damaged file is trusted
    assert_works(store)
    store.close()


def test_full_disk_at_open_runs_in_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    fd = os.open(point / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):  # unbuffered: the error comes here, not at a later flush
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    store = OcppStore(point / "ocpp.db")
    assert store.degraded is not None and "full" in store.degraded
    assert_works(store)
    store.close()


def test_disk_full_during_writes_switches_to_memory_keeping_everything(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    path = point / "ocpp.db"
    calls: list[str] = []
    store = OcppStore(path)
    store.on_degraded = calls.append
    store.set_config("HeartbeatInterval", "120")
    written = 0
    while store.degraded is None:  # each record is bigger than a page: the disk fills within a few
        store.put_record("charging_profile", written, {"blob": "x" * 20_000})
        written += 1
        assert written < 100, "the tmpfs never filled"

    assert "disk is full" in store.degraded and calls == [store.degraded]
    assert set(store.records("charging_profile")) == set(range(written))  # the failed write was retried
    assert store.config_values() == {"HeartbeatInterval": "120"}  # what was on disk came along
    assert store.startup_problems() == []  # a runtime problem: reported by on_degraded
    store.put_record("charging_profile", 1000, {"blob": "y" * 20_000})  # memory has room
    assert_works(store)
    assert calls == [store.degraded]  # once
    store.close()

    again = OcppStore(path)  # next start: the committed part is still on the disk (which is still full)
    assert again.degraded is not None and "full" in again.degraded
    assert again.config_values() == {"HeartbeatInterval": "120"}
    assert set(again.records("charging_profile")) >= set(range(written - 1))
    again.close()


def test_disk_full_inside_atomic_redoes_the_block_in_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    store = OcppStore(point / "ocpp.db")
    v16 = Repository16(store)
    store.set_config("Before", "1")
    with store.atomic():
        v16.open_transaction("tx", 1, "T", 0, "t0")
        store.enqueue("StartTransaction", {"connectorId": 1}, "uid", "tx")
        # More than SQLite's page cache (2 MB) holds, so pages spill to the -wal before COMMIT: the block
        # fails part way and goes on in memory.
        for n in range(150):
            store.put_record("charging_profile", n, {"blob": "x" * 20_000})
        assert store.degraded is not None
        assert v16.id_tag_count("local") == 0  # reads inside the block see the block, in memory
        assert len(store.records("charging_profile")) == 150
    assert "full" in store.degraded
    assert set(store.records("charging_profile")) == set(range(150))
    assert [tx.tx_key for tx in v16.open_transactions()] == ["tx"]
    assert store.queued_actions() == ["StartTransaction"]
    assert store.config_values() == {"Before": "1"}

    with pytest.raises(ValueError), store.atomic():  # rollback works in memory too
        store.put_record("charging_profile", 999, {})
        raise ValueError("abandon")
    assert 999 not in store.records("charging_profile")
    store.close()


def test_commit_that_fails_for_lack_of_space_is_done_in_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    store = OcppStore(point / "ocpp.db")
    blob = "x" * 6_000  # small rows: the pages of the block stay in the page cache until COMMIT writes them
    with store.atomic():
        for n in range(40):
            store.put_record("reservation", n, {"blob": blob})
    assert store.degraded is not None and "full" in store.degraded
    assert set(store.records("reservation")) == set(range(40))
    store.close()


def test_failing_on_degraded_callback_does_not_reach_the_caller(
        small_fs: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    point = small_fs("256k")

    def broken(reason: str) -> None:
        raise RuntimeError("bus down")

    store = OcppStore(point / "ocpp.db", on_degraded=broken)
    for n in range(40):
        store.put_record("charging_profile", n, {"blob": "x" * 20_000})
    assert store.degraded is not None
    assert "on_degraded callback failed" in caplog.text
    store.close()


# -- the reserve -----------------------------------------------------------------------------------------
def test_disk_full_releases_the_reserve_and_the_store_goes_on_on_the_file(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    calls: list[str] = []
    store = OcppStore(path, on_degraded=calls.append)
    v16 = Repository16(store)
    reserve = reserve_of(path)
    assert reserve.stat().st_size == RESERVE_BYTES
    v16.open_transaction("tx-1", 1, "TAG", 10, "t0")
    fill(point)
    n = 0
    while store.nearly_full is None:  # the meter readings of a session, each growing the WAL
        v16.record_meter("tx-1", n, f"t{n}")
        n += 1
        assert n < 5000, "the tmpfs never filled"
    assert "disk nearly full: reserve released" in store.nearly_full
    assert calls == [store.nearly_full] and store.degraded is None
    assert reserve.exists() and reserve.stat().st_size == 0  # its space is free again
    # the session goes on for long on the space released (the WAL is kept small and reused), and ends
    for m in range(n, n + 1000):
        seq = store.enqueue("MeterValues", {"connectorId": 1, "n": m}, f"uid-{m}", "tx-1")
        v16.record_meter("tx-1", m, f"t{m}")
        store.dequeue(seq)
    v16.close_transaction("tx-1")
    assert store.degraded is None and calls == [store.nearly_full]
    store.close()
    db = raw(path)  # all of it on the file
    assert db.execute("SELECT open, last_meter_wh FROM v16_transactions").fetchall() == [(0, n + 999)]
    db.close()

    again = OcppStore(path, on_degraded=calls.append)  # the disk still full: no room for a new reserve
    assert again.degraded is None
    assert again.nearly_full is not None and "cannot be written again" in again.nearly_full
    assert again.startup_problems() == [again.nearly_full] and calls[-1] == again.nearly_full
    assert Repository16(again).open_transactions() == []
    again.close()
    (point / "filler").unlink()
    third = OcppStore(path)  # room again: the reserve is back
    assert third.startup_problems() == [] and third.nearly_full is None
    assert reserve.stat().st_size == RESERVE_BYTES and reserve.stat().st_blocks * 512 >= RESERVE_BYTES
    third.close()


def test_disk_full_at_open_releases_the_reserve(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    filled_store(path)
    assert reserve_of(path).stat().st_size == RESERVE_BYTES
    fill(point)  # not even room for the -wal and -shm of the next open

    calls: list[str] = []
    store = OcppStore(path, on_degraded=calls.append)
    assert store.degraded is None
    assert store.nearly_full is not None and "reserve released" in store.nearly_full
    assert store.startup_problems() == [store.nearly_full] and calls == [store.nearly_full]
    assert_filled(store)
    assert_works(store)
    store.close()


def test_disk_full_with_the_reserve_used_up_goes_to_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    calls: list[str] = []
    store = OcppStore(point / "ocpp.db", on_degraded=calls.append)
    fill(point)
    written = 0
    while store.degraded is None:
        store.put_record("charging_profile", written, {"blob": "x" * 20_000})
        written += 1
        assert written < 100, "the tmpfs never filled"
    assert store.nearly_full is not None and "disk is full" in store.degraded
    assert calls == [store.nearly_full, store.degraded]
    assert set(store.records("charging_profile")) == set(range(written))
    assert_works(store)
    store.close()


def test_write_bigger_than_the_reserve_is_done_in_memory(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    calls: list[str] = []
    store = OcppStore(point / "ocpp.db", on_degraded=calls.append)
    fill(point)
    store.put_record("charging_profile", 1, {"blob": "x" * 600_000})  # fails on the file twice
    assert store.nearly_full is not None and store.degraded is not None
    assert calls == [store.nearly_full, store.degraded]
    assert store.records("charging_profile") == {1: {"blob": "x" * 600_000}}
    store.close()


def test_disk_full_inside_atomic_after_the_reserve_was_released_redoes_the_block(
        small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    store = OcppStore(point / "ocpp.db")
    v16 = Repository16(store)
    fill(point)
    with store.atomic():
        v16.open_transaction("tx", 1, "T", 0, "t0")
        store.enqueue("StartTransaction", {"connectorId": 1}, "uid", "tx")
        for n in range(150):  # spills to the -wal: the reserve goes first, then the file, mid-block
            store.put_record("charging_profile", n, {"blob": "x" * 20_000})
    assert store.nearly_full is not None and store.degraded is not None
    assert set(store.records("charging_profile")) == set(range(150))
    assert [tx.tx_key for tx in v16.open_transactions()] == ["tx"]
    assert store.queued_actions() == ["StartTransaction"]
    store.close()


# -- written back from memory ----------------------------------------------------------------------------
def degrade_on_a_full_disk(store: OcppStore, point: Path) -> None:
    fill(point)
    n = 0
    while store.degraded is None:
        store.put_record("charging_profile", n, {"blob": "x" * 2_000})
        n += 1
        assert n < 1000, "the tmpfs never filled"


def test_store_in_memory_after_a_full_disk_is_written_back_once_there_is_room(
        small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")  # no room for a reserve: the full disk sends the store to memory at once
    path = point / "ocpp.db"
    clock = Clock()
    recovered: list[str | None] = []
    store = OcppStore(path, clock=clock, on_recovered=lambda: recovered.append(store.degraded))
    assert not reserve_of(path).exists()
    store_id = store.store_id
    v16 = Repository16(store)
    store.set_config("HeartbeatInterval", "120")
    v16.open_transaction("tx-1", 1, "TAG", 10, "t0")
    degrade_on_a_full_disk(store, point)
    assert store.degraded is not None and "until the file can be written again" in store.degraded
    profiles = set(store.records("charging_profile"))
    v16.close_transaction("tx-1")  # in memory only, for now: the file has the transaction open

    clock.now += WRITE_BACK_INTERVAL_S  # an attempt is due, but the disk is still full
    store.set_config("A", "1")
    assert store.degraded is not None and recovered == []
    (point / "filler").unlink()
    clock.now += WRITE_BACK_INTERVAL_S - 1  # room now, but the last attempt is not an interval ago
    store.set_config("B", "2")
    assert store.degraded is not None and recovered == []
    clock.now += 1
    store.set_config("C", "3")  # committed: the boundary where the store goes back
    assert store.degraded is None and recovered == [None]
    store.put_record("reservation", 1, {"idTag": "T"})  # persisted from now on
    store.close()

    again = OcppStore(path)
    assert again.startup_problems() == [] and again.store_id == store_id
    assert Repository16(again).open_transactions() == []  # the next start does not stop it again
    assert again.config_values() == {"HeartbeatInterval": "120", "A": "1", "B": "2", "C": "3"}
    assert set(again.records("charging_profile")) == profiles
    assert again.records("reservation") == {1: {"idTag": "T"}}
    again.close()


def test_write_back_waits_for_the_end_of_an_atomic_block(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    path = point / "ocpp.db"
    clock = Clock()
    store = OcppStore(path, clock=clock)
    v16 = Repository16(store)
    degrade_on_a_full_disk(store, point)
    (point / "filler").unlink()
    clock.now += WRITE_BACK_INTERVAL_S
    with store.atomic():
        v16.open_transaction("tx", 1, "T", 0, "t0")
        store.enqueue("StartTransaction", {"connectorId": 1}, "uid", "tx")
        assert store.degraded is not None  # never in the middle of a block
    assert store.degraded is None
    store.close()
    again = OcppStore(path)
    assert [tx.tx_key for tx in Repository16(again).open_transactions()] == ["tx"]
    assert again.queued_actions() == ["StartTransaction"]
    again.close()


def test_read_only_store_is_written_back_once_writable(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    store_id = filled_store(path)
    remount_read_only(point)
    clock = Clock()
    recovered: list[bool] = []
    store = OcppStore(path, clock=clock, on_recovered=lambda: recovered.append(True))
    assert store.degraded is not None and "read-only" in store.degraded
    was = store.degraded
    store.set_config("After", "1")
    remount_read_write(point)
    clock.now += WRITE_BACK_INTERVAL_S
    store.set_config("Later", "2")
    assert store.degraded is None and recovered == [True]
    assert store.startup_problems() == [was]  # what happened at the start stays said
    store.close()
    again = OcppStore(path)
    assert again.startup_problems() == [] and again.store_id == store_id
    assert again.config_values() == {"HeartbeatInterval": "120", "After": "1", "Later": "2"}
    again.close()


def test_store_missing_in_a_read_only_directory_is_created_by_the_write_back(
        small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    filled_store(path)
    path.unlink()
    remount_read_only(point)
    clock = Clock()
    store = OcppStore(path, clock=clock)
    assert store.lost is not None and store.degraded is not None
    store.set_config("New", "1")
    remount_read_write(point)
    clock.now += WRITE_BACK_INTERVAL_S
    store.put_record("reservation", 1, {})
    assert store.degraded is None
    store.close()
    assert json.loads(Path(f"{path}.id").read_text())["store_id"] == store.store_id  # the new one is known now
    again = OcppStore(path)
    assert again.startup_problems() == [] and again.config_values() == {"New": "1"}
    again.close()


def test_written_back_without_room_for_the_reserve_is_still_nearly_full(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    clock = Clock()
    calls: list[str] = []
    store = OcppStore(path, clock=clock, on_degraded=calls.append, on_recovered=lambda: calls.append("recovered"))
    degrade_on_a_full_disk(store, point)  # the reserve is released first, then the store goes to memory
    assert calls == [store.nearly_full, store.degraded]
    (point / "filler").unlink()
    stats = os.statvfs(point)
    with open(point / "filler", "wb") as file:  # room for the store, not for the reserve as well
        file.write(b"\xff" * (stats.f_bavail * stats.f_frsize - 3 * RESERVE_BYTES // 2))
    clock.now += WRITE_BACK_INTERVAL_S
    store.set_config("A", "1")
    assert store.degraded is None and store.nearly_full is not None
    assert calls[2:] == ["recovered", store.nearly_full]  # cleared, and said again: the disk is nearly full
    assert reserve_of(path).stat().st_size == 0
    store.close()


def test_failing_on_recovered_callback_does_not_reach_the_caller(
        small_fs: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    point = small_fs("256k")
    clock = Clock()

    def broken() -> None:
        raise RuntimeError("bus down")

    store = OcppStore(point / "ocpp.db", clock=clock, on_recovered=broken)
    degrade_on_a_full_disk(store, point)
    (point / "filler").unlink()
    clock.now += WRITE_BACK_INTERVAL_S
    store.set_config("A", "1")
    assert store.degraded is None
    assert "on_recovered callback failed" in caplog.text
    store.close()


def test_damaged_store_that_could_not_be_kept_aside_is_never_overwritten(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("1m")
    path = point / "ocpp.db"
    path.write_bytes(b"garbage" * 1000)
    remount_read_only(point)
    clock = Clock()
    store = OcppStore(path, clock=clock)
    assert store.degraded is not None and "until restart" in store.degraded
    remount_read_write(point)
    clock.now += WRITE_BACK_INTERVAL_S
    store.set_config("A", "1")
    assert store.degraded is not None
    assert path.read_bytes() == b"garbage" * 1000
    store.close()


def test_store_written_by_someone_else_meanwhile_is_not_overwritten(small_fs: Callable[[str], Path]) -> None:
    point = small_fs("256k")
    path = point / "ocpp.db"
    clock = Clock()
    store = OcppStore(path, clock=clock)
    degrade_on_a_full_disk(store, point)
    (point / "filler").unlink()
    db = raw(path)  # e.g. the store of another OCPP version in another process, the disk free again
    db.execute("INSERT INTO config VALUES ('2.0.1', 'Other', 'x')")
    db.close()
    clock.now += WRITE_BACK_INTERVAL_S
    store.set_config("A", "1")
    assert store.degraded is not None  # stays in memory rather than losing what the other one wrote
    db = raw(path)
    assert db.execute("SELECT key FROM config WHERE version = '2.0.1'").fetchall() == [("Other",)]
    db.close()
    store.close()
