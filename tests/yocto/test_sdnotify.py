"""sd_notify protocol against a real AF_UNIX datagram socket playing systemd."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import uuid
from pathlib import Path

import pytest

from everpy.core import sdnotify

from .fake_systemd import FakeSystemd

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_systemd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in sdnotify.SYSTEMD_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def unique_abstract_name() -> str:
    return f"everpy-test-notify-{uuid.uuid4().hex}"


def test_notify_is_a_noop_outside_systemd() -> None:
    assert sdnotify.notify("READY=1") is False


async def test_ready_and_status_arrive_in_one_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeSystemd.at_path(tmp_path / "notify") as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
        assert sdnotify.notify("READY=1", "STATUS=running 3 modules") is True
        note = await systemd.next()
    assert note.states == ("READY=1", "STATUS=running 3 modules")
    assert note.sender_pid == os.getpid()


async def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeSystemd.abstract(unique_abstract_name()) as systemd:
        assert systemd.notify_socket.startswith("@")
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
        assert sdnotify.notify("STOPPING=1") is True
        assert (await systemd.next()).states == ("STOPPING=1",)


def test_unreachable_socket_returns_false_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens-here"))
    assert sdnotify.notify("READY=1") is False
    assert "sd_notify" in caplog.text and "nobody-listens-here" in caplog.text


def test_unsupported_socket_kind_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.notify("READY=1") is False


@pytest.mark.parametrize("bad_state", ["READY", "STATUS=two\nlines"])
def test_malformed_state_is_a_programming_error(bad_state: str) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        sdnotify.notify(bad_state)


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("2500000", None, 2.5),
        ("2500000", "own", 2.5),
        ("2500000", "other", None),  # inherited from a parent: the watchdog is not ours
        ("0", None, None),
        ("soon", None, None),
        ("2500000", "me", None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        pid_value = {"own": str(os.getpid()), "other": str(os.getppid())}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", pid_value)
    assert sdnotify.watchdog_interval() == expected


def test_watchdog_from_environment_without_watchdog_is_none() -> None:
    assert sdnotify.Watchdog.from_environment(lambda: True) is None


async def test_watchdog_pings_at_half_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    interval = 0.4
    async with FakeSystemd.abstract(unique_abstract_name()) as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
        monkeypatch.setenv("WATCHDOG_USEC", str(int(interval * 1_000_000)))
        watchdog = sdnotify.Watchdog.from_environment(lambda: True)
        assert watchdog is not None and watchdog.ping_period == pytest.approx(interval / 2)
        watchdog.start()
        try:
            pings = [await systemd.next() for _ in range(6)]
        finally:
            await watchdog.stop()
    assert all(p.states == ("WATCHDOG=1",) for p in pings)
    gaps = [b.received_at - a.received_at for a, b in zip(pings, pings[1:], strict=False)]
    # Loose upper bound: other test processes share the 2 cores. Anything near the full interval
    # would risk a restart by systemd.
    assert interval * 0.4 <= statistics.median(gaps) <= interval * 0.75, gaps


async def test_watchdog_withholds_pings_while_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    healthy = True
    checks = 0
    checked = asyncio.Event()

    async def is_healthy() -> bool:  # async health checks are supported, too
        nonlocal checks
        checks += 1
        checked.set()
        return healthy

    async def wait_checks(count: int) -> None:
        target = checks + count
        while checks < target:
            checked.clear()
            await asyncio.wait_for(checked.wait(), 10)

    async with FakeSystemd.abstract(unique_abstract_name()) as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
        watchdog = sdnotify.Watchdog(0.1, is_healthy)
        watchdog.start()
        try:
            await systemd.wait_for_state("WATCHDOG=1")
            healthy = False
            await wait_checks(1)  # the check that saw False
            pings_before = len(systemd.received)
            await wait_checks(3)
            await asyncio.sleep(0)  # let the reader callback drain anything already queued
            assert len(systemd.received) == pings_before, "pinged while unhealthy"
            healthy = True
            await systemd.wait_for_state("WATCHDOG=1")
        finally:
            await watchdog.stop()


async def test_failing_health_check_counts_as_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = asyncio.Event()

    def broken_check() -> bool:
        calls.set()
        raise RuntimeError("sensor bus gone")

    async with FakeSystemd.abstract(unique_abstract_name()) as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
        watchdog = sdnotify.Watchdog(0.1, broken_check)
        watchdog.start()
        try:
            await asyncio.wait_for(calls.wait(), 10)
            calls.clear()
            await asyncio.wait_for(calls.wait(), 10)  # still running after the fault
        finally:
            await watchdog.stop()
    assert systemd.received == []


async def test_service_process_lifecycle(tmp_path: Path) -> None:
    """A separate process notifies READY=1, pings the watchdog, and says STOPPING=1 on SIGTERM."""
    async with FakeSystemd.at_path(tmp_path / "notify") as systemd:
        env = {k: v for k, v in os.environ.items() if k not in sdnotify.SYSTEMD_ENVIRONMENT}
        env.update(
            NOTIFY_SOCKET=systemd.notify_socket,
            WATCHDOG_USEC="300000",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        service = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("notify_service.py")), env=env
        )
        try:
            ready = await systemd.wait_for_state("READY=1", timeout=20)
            assert ready.sender_pid == service.pid  # NotifyAccess=main would accept it
            assert "STATUS=running" in ready.states
            for _ in range(3):
                ping = await systemd.wait_for_state("WATCHDOG=1")
                assert ping.sender_pid == service.pid
            service.send_signal(signal.SIGTERM)
            stopping = await systemd.wait_for_state("STOPPING=1")
            assert stopping.sender_pid == service.pid
            assert await asyncio.wait_for(service.wait(), 10) == 0
        finally:
            if service.returncode is None:
                service.kill()
                await service.wait()


async def test_everpy_run_notifies_systemd(tmp_path: Path) -> None:
    """`everpy run` as everpy.service starts it: READY=1 at global ready, watchdog pings, STOPPING=1."""
    config = tmp_path / "config.yaml"
    config.write_text("active_modules:\n  counter:\n    module: Example\n")
    async with FakeSystemd.at_path(tmp_path / "notify") as systemd:
        env = {k: v for k, v in os.environ.items() if k not in sdnotify.SYSTEMD_ENVIRONMENT}
        env.update(NOTIFY_SOCKET=systemd.notify_socket, WATCHDOG_USEC="1000000", XDG_RUNTIME_DIR=str(tmp_path))
        log = (tmp_path / "everpy.log").open("wb")  # a file, not a pipe nobody drains
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "everpy.cli", "run", str(config), env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            ready = await systemd.wait_for_state("READY=1", timeout=30)
            assert ready.sender_pid == service.pid  # the main process, as NotifyAccess=main requires
            assert "STATUS=running 1 modules" in ready.states
            first = await systemd.wait_for_state("WATCHDOG=1")
            second = await systemd.wait_for_state("WATCHDOG=1")
            assert 0.25 <= second.received_at - first.received_at <= 0.9  # WatchdogSec/2 = 0.5 s
            service.send_signal(signal.SIGTERM)
            await systemd.wait_for_state("STOPPING=1")
            assert await asyncio.wait_for(service.wait(), 20) == 0
        finally:
            if service.returncode is None:
                service.kill()
                await service.wait()
            log.close()
    assert all(note.sender_pid == service.pid for note in systemd.received), (tmp_path / "everpy.log").read_text()
