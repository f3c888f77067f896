"""A damaged OCPP store never stops the charger: the whole SIL charger with OCPP, started on a garbage,
truncated, foreign, emptied or full database, still charges a car and talks to the CSMS, and OCPP says
what happened (a bus error, the damaged file kept aside, the unusable row quarantined).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from everpy.csms import Csms
from everpy.ocpp.store import WRITE_BACK_INTERVAL_S, OcppStore

from .crash import check_transaction, energy_payload
from .station import WAIT_S, Station, sil_station


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ocpp.db"


def error_types(station: Station) -> set[str]:
    """The errors the OCPP module holds raised on its ocpp interface."""
    return {error["type"] for error in station.ocpp.active_errors("main")}


def kept_aside(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.glob("ocpp.db.damaged-*") if not p.name.endswith(("-wal", "-shm")))


async def charges_and_reports(station: Station, csms: Csms) -> int:
    """A car charges (the EVSE says ChargingStarted on the bus) and the CSMS has boot and transaction;
    returns the transaction id."""
    mark = len(csms.received)
    transaction_id = await station.charging()
    await station.wait_event("ChargingStarted")
    assert csms.messages("BootNotification")
    start = await csms.wait_for("StartTransaction", timeout=WAIT_S, after=mark)
    assert start.payload["connectorId"] == 1
    return transaction_id


async def first_run(tmp_path: Path, csms: Csms) -> None:
    """A real store with content: boot, a local list, a finished transaction."""
    async with sil_station(tmp_path, csms) as station:
        entries = [{"idTag": f"TAG{n:04d}", "idTagInfo": {"status": "Accepted"}} for n in range(100)]
        assert (await station.call("SendLocalList", listVersion=1, updateType="Full",
                                   localAuthorizationList=entries))["status"] == "Accepted"
        await station.charging()
        mark = len(csms.received)
        await station.unplug()
        await csms.wait_for("StopTransaction", timeout=WAIT_S, after=mark)


# -- (a) and (b): damaged before start ---------------------------------------------------------------------
def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3000) + b"\x00garbage" * 500)


def sqlite_header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))


def newer_schema(path: Path) -> None:
    store = OcppStore(path)
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()


def foreign_database(path: Path) -> None:
    """A valid SQLite file of someone else, with a table of our name and other columns."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE config (name TEXT, enabled INTEGER)")
    db.execute("INSERT INTO config VALUES ('x', 1)")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [garbage, sqlite_header_then_garbage, newer_schema, foreign_database],
                         ids=lambda f: f.__name__)
async def test_damaged_store_before_start_is_kept_aside_and_the_car_charges(
        tmp_path, csms: Csms, damage: Callable[[Path], None]):
    damage(db_path(tmp_path))
    original = db_path(tmp_path).read_bytes()
    async with sil_station(tmp_path, csms) as station:
        aside = kept_aside(tmp_path)
        assert aside or "ocpp/StoreDegraded" in error_types(station)
        assert len(aside) == 1
        # kept for diagnostics, untouched: another program's database too (not even switched to WAL mode)
        assert aside[0].read_bytes() == original
        if damage is foreign_database:
            assert not Path(f"{aside[0]}-wal").exists()
        await charges_and_reports(station, csms)
    # the fresh store is healthy: the next start keeps nothing more aside and raises nothing
    async with sil_station(tmp_path, csms, wait_boot=False) as station:
        await csms.wait_until(lambda: len(csms.messages("BootNotification")) >= 2, WAIT_S)
        assert len(kept_aside(tmp_path)) == 1
        assert error_types(station) == set()


async def test_truncated_store_is_kept_aside_and_the_car_charges(tmp_path, csms: Csms):
    await first_run(tmp_path, csms)
    path = db_path(tmp_path)
    size = path.stat().st_size
    assert size >= 8 * 4096, "the first run left too small a store to cut"
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False) as station:
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        assert kept_aside(tmp_path) or "ocpp/StoreDegraded" in error_types(station)
        await charges_and_reports(station, csms)


# -- (c): emptied after a first run ------------------------------------------------------------------------
async def test_store_replaced_by_an_empty_file_is_reported_lost_and_the_car_charges(tmp_path, csms: Csms):
    await first_run(tmp_path, csms)
    path = db_path(tmp_path)
    assert Path(f"{path}.id").exists()
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):  # a new file: no WAL of the old one
        companion.unlink(missing_ok=True)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    os.replace(empty, path)
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False) as station:
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        lost = [e for e in station.ocpp.active_errors("main") if e["type"] == "ocpp/StoreLost"]
        assert lost and "empty" in lost[0]["message"], station.ocpp.active_errors("main")
        # it started empty: the local list of the first run is gone, and the CSMS can tell
        assert (await station.call("GetLocalListVersion"))["listVersion"] == 0
        await charges_and_reports(station, csms)
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False) as station:  # reported once, not at every start
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        assert "ocpp/StoreLost" not in error_types(station)


# -- (d): disk full while charging ---------------------------------------------------------------------
def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the database (unmounted lazily afterwards: a failed test may hold files open)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    point = tmp_path / "small"
    point.mkdir()
    result = run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield point
    finally:
        run("umount", "-l", str(point))


def fill(point: Path) -> None:
    """Write a file until the file system is full."""
    chunk = b"\xff" * 65536
    with open(point / "filler", "wb", buffering=0) as file:
        while True:
            try:
                file.write(chunk)
            except OSError:
                break
        while True:  # the last partial block too
            try:
                file.write(b"\xff" * 512)
            except OSError:
                break


KEYS = {"MeterValueSampleInterval": "1"}


def on_small_disk(small_disk: Path) -> dict[str, Any]:
    return {"keys": KEYS, "ocpp": {"database_path": str(small_disk / "ocpp.db")}}


async def charge_through_a_full_disk(tmp_path: Path, csms: Csms, small_disk: Path) -> int:
    """A session during which the disk fills: OCPP says so (bus error: the reserve released, or in memory),
    charging and meter values go on, the stop reaches the CSMS. Returns the transaction id."""
    async with sil_station(tmp_path, csms, **on_small_disk(small_disk)) as station:
        errors = station.system.watch_errors("ocpp", "main")
        await station.system.flush()
        transaction_id = await charges_and_reports(station, csms)
        await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == transaction_id, WAIT_S)
        fill(small_disk)
        raised: dict[str, Any] = await errors.wait_for(
            lambda e: e["type"] == "ocpp/StoreDegraded" and e["state"] == "Active", WAIT_S)
        assert "full" in raised["message"]
        # OCPP carries on in memory: meter values of the same transaction keep coming, energy rising
        mark = len(csms.received)
        first = await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == transaction_id, WAIT_S,
                                    after=mark)
        await csms.wait_for("MeterValues", lambda p: p.get("transactionId") == transaction_id
                            and energy_payload(p) > energy_payload(first.payload), WAIT_S,
                            after=csms.received.index(first) + 1)
        events = [e["event"] for e in station.evse_events.values]
        assert "TransactionFinished" not in events  # charging continued
        assert (await station.system.call("evse", "evse", "get_session"))["transaction"]
        # and the stop still reaches the CSMS, on the same connection
        mark = len(csms.received)
        await station.unplug()
        stop = await csms.wait_for("StopTransaction", timeout=WAIT_S, after=mark)
        assert stop.payload["transactionId"] == transaction_id
        assert csms.connections == 1
    return transaction_id


async def test_disk_full_while_charging_degrades_ocpp_and_meter_values_keep_flowing(
        tmp_path, csms: Csms, small_disk: Path):
    await charge_through_a_full_disk(tmp_path, csms, small_disk)
    # the next start, the disk still full: degraded from the start (the reserve released in the first session
    # cannot be written again, or the store runs in memory), and a car charges
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False, **on_small_disk(small_disk)) as station:
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        assert "ocpp/StoreDegraded" in error_types(station)
        await charges_and_reports(station, csms)


async def test_after_a_disk_full_session_the_next_start_does_not_stop_the_transaction_again(
        tmp_path, csms: Csms, small_disk: Path):
    transaction_id = await charge_through_a_full_disk(tmp_path, csms, small_disk)
    (small_disk / "filler").unlink()  # space again, as after a log rotation
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False, **on_small_disk(small_disk)):
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        # the connector's status is sent after what was queued before it: a stop from the start is in by now
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        check_transaction(csms, transaction_id)  # one start, one stop


async def test_store_in_memory_after_a_full_disk_is_written_back_once_there_is_room(
        tmp_path, csms: Csms, small_disk: Path):
    fill(small_disk)  # full before the start: no room for the store, nor for a reserve
    async with sil_station(tmp_path, csms, **on_small_disk(small_disk)) as station:
        store = station.ocpp.store
        assert store.degraded is not None and "full" in store.degraded
        assert "ocpp/StoreDegraded" in error_types(station)
        errors = station.system.watch_errors("ocpp", "main")
        await station.system.flush()
        (small_disk / "filler").unlink()  # space again, as after a log rotation
        store.clock = lambda: time.monotonic() + WRITE_BACK_INTERVAL_S  # the interval is over
        transaction_id = await charges_and_reports(station, csms)
        await errors.wait_for(lambda e: e["type"] == "ocpp/StoreDegraded" and e["state"] != "Active", WAIT_S)
        assert store.degraded is None and "ocpp/StoreDegraded" not in error_types(station)
        mark = len(csms.received)
        await station.unplug()
        await csms.wait_for("StopTransaction", timeout=WAIT_S, after=mark)
    # persisted from the write-back on: the next start is healthy and does not stop the transaction again
    mark = len(csms.received)
    async with sil_station(tmp_path, csms, wait_boot=False, **on_small_disk(small_disk)) as station:
        await csms.wait_for("BootNotification", timeout=WAIT_S, after=mark)
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S, after=mark)
        assert error_types(station) == set()
        assert station.ocpp.store.startup_problems() == []
        check_transaction(csms, transaction_id)


# -- (e): a queued message of an unknown action ----------------------------------------------------------
def queue_rows(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """(action, payload text, unique id) appended to the store's queue with plain sqlite3."""
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO queue (version, action, payload, tx_key, unique_id) VALUES ('1.6', ?, ?, NULL, ?)",
                   rows)
    db.commit()
    db.close()


def meter_values(value: str) -> str:
    return json.dumps({"connectorId": 1, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": value}]}]})


async def test_queued_message_of_an_unknown_action_is_quarantined_and_the_rest_delivered(tmp_path, csms: Csms):
    path = db_path(tmp_path)
    OcppStore(path).close()
    queue_rows(path, [
        ("FlyToTheMoon", "{}", "unknown-action"),
        ("MeterValues", meter_values("1"), "after-1"),
        ("MeterValues", "{not json", "bad-payload"),
        ("MeterValues", "{}", "not-a-meter-value"),  # fails the schema: can never be sent
        ("SecurityEventNotification", json.dumps({"type": "X", "timestamp": "2026-01-01T00:00:00Z"}), "after-2"),
        ("MeterValues", meter_values("2"), "after-3"),
    ])
    async with sil_station(tmp_path, csms) as station:
        await csms.wait_until(lambda: {"after-1", "after-2", "after-3"} <= {r.unique_id for r in csms.received},
                              WAIT_S)
        ours = {"unknown-action", "after-1", "bad-payload", "not-a-meter-value", "after-2", "after-3"}
        assert [r.unique_id for r in csms.received if r.unique_id in ours] == ["after-1", "after-2", "after-3"]
        rows = station.ocpp.store.quarantined()
        assert sorted(next(uid for uid in ours if uid in row.data) for row in rows) == [
            "bad-payload", "not-a-meter-value", "unknown-action"], rows
        assert any("FlyToTheMoon" in row.reason for row in rows), rows
        assert station.ocpp.store.queue_length() == 0
        await charges_and_reports(station, csms)
