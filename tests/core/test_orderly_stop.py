"""An orderly stop is orderly, and a killed runtime leaves nothing behind (issue #10).

Through the real `everpy run` in a process group of its own, as a terminal or systemd runs it, with its
private mosquitto and a `process: own` child.
"""

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from everpy.core.bus import BrokerAddress, Bus
from everpy.testing import Probe, run_system
from tests.core.conftest import FIXTURES

BOUND_S = 60.0  # generous: 2 cores shared by many test runs


def sentinels(record_dir: Path, **extra_settings: object) -> dict:
    return {
        "settings": {"ready_timeout_s": 30, "stop_timeout_s": 5, **extra_settings},
        "active_modules": {
            "inproc": {"module": "Sentinel", "config_module": {"record_dir": str(record_dir)},
                       "connections": {"peer": [{"module_id": "peer", "implementation_id": "main"}]}},
            "own": {"module": "Sentinel", "process": "own", "config_module": {"record_dir": str(record_dir)}},
            "peer": {"module": "Probe", "process": "own"},
        },
    }


async def _until(predicate: Callable[[], bool], timeout: float = BOUND_S) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _gone(pid: int) -> bool:
    """Exited; a zombie counts (in a container nobody may reap the orphans of a killed runtime)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class RunningEverpy:
    """`everpy run` started in a process group of its own; its broker and children found via /proc."""

    def __init__(self, process: asyncio.subprocess.Process, record: Path) -> None:
        self.process = process
        self.record = record

    @classmethod
    async def start(cls, tmp_path: Path, config: dict) -> "RunningEverpy":
        path = tmp_path / "system.yaml"
        path.write_text(yaml.safe_dump(config))
        log = (tmp_path / "run.log").open("w")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "everpy.cli", "run", str(path),
            "--modules-dir", str(FIXTURES / "modules"), "--definitions-dir", str(FIXTURES / "definitions"),
            env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        running = cls(process, tmp_path / f"everpy-{os.getuid()}" / "everest.json")
        await _until(lambda: running.record.exists() or process.returncode is not None)
        assert process.returncode is None, (tmp_path / "run.log").read_text()
        return running

    @property
    def broker(self) -> BrokerAddress:
        record = json.loads(self.record.read_text())  # with the operator's login to the private broker
        return BrokerAddress(record["host"], record["port"], username=record["user"], password=record["password"])

    def helper(self, is_it: Callable[[str], bool]) -> int:
        """Pid of the runtime's child process whose command line passes ``is_it``."""
        for pid in _children(self.process.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if is_it(cmdline):
                return pid
        raise AssertionError(f"no such child of the runtime (pid {self.process.pid})")

    def mosquitto(self) -> int:
        return self.helper(lambda cmdline: "mosquitto" in cmdline)

    def module_process(self, module_id: str) -> int:
        return self.helper(lambda cmdline: "everpy.core.child" in cmdline and f"--module {module_id} " in cmdline)

    async def kill(self) -> None:
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def test_ctrl_c_stops_in_order_and_exits_0(tmp_path):
    everpy = await RunningEverpy.start(tmp_path, sentinels(tmp_path))
    try:
        broker_pid = everpy.mosquitto()
        child_pid, peer_pid = everpy.module_process("own"), everpy.module_process("peer")
        assert os.getpgid(broker_pid) != everpy.process.pid and os.getpgid(child_pid) != everpy.process.pid
        bus = Bus(everpy.broker, "orderly-stop-test")
        await bus.connect()
        probe = Probe(bus)
        said = {mid: probe.watch(mid, "main", "stopping") for mid in ("inproc", "own")}
        await probe.flush()
        os.killpg(everpy.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        assert await asyncio.wait_for(everpy.process.wait(), BOUND_S) == 0, (tmp_path / "run.log").read_text()
        # stopping() of both ran while the bus was up, and what they published reached it
        assert await said["inproc"].next(timeout=1) == "inproc stopping bye"  # its peer process answered
        assert await said["own"].next(timeout=1) == "own stopping"
        await bus.close()
        for mid, pid in (("inproc", everpy.process.pid), ("own", child_pid)):
            assert (tmp_path / f"{mid}.stopping").read_text() == str(pid)
            assert (tmp_path / f"{mid}.shutdown").read_text() == str(pid)
        await _until(lambda: _gone(broker_pid) and _gone(child_pid) and _gone(peer_pid))
        assert not everpy.record.exists()
    finally:
        await everpy.kill()


async def test_kill_9_of_the_runtime_leaves_no_orphan(tmp_path):
    everpy = await RunningEverpy.start(tmp_path, sentinels(tmp_path, stop_timeout_s=1))
    broker_pid, child_pid = everpy.mosquitto(), everpy.module_process("own")
    try:
        os.kill(everpy.process.pid, signal.SIGKILL)  # the runtime only: its helpers are in other groups
        await everpy.process.wait()
        await _until(lambda: _gone(broker_pid) and _gone(child_pid))
    finally:
        for pid in (broker_pid, child_pid):  # never leave them running if the test fails
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("behaviour", ["hang", "fail"])
async def test_a_stopping_hook_that_hangs_or_fails_is_named_and_bounded(probe_dirs, caplog, behaviour):
    caplog.set_level(logging.INFO)
    config = {
        "settings": {"ready_timeout_s": 20, "stop_timeout_s": 0.5},
        "active_modules": {"bad": {"module": "Sentinel", "config_module": {"stopping": behaviour}},
                           "good": {"module": "Sentinel"}},
    }
    async with run_system(config, **probe_dirs) as system:
        runtime = system.runtime
        loop = asyncio.get_running_loop()
        started = loop.time()
    assert loop.time() - started < 10  # 0.5 s for the hooks, the rest is shutdown and the broker
    named = [r.getMessage() for r in caplog.records if r.name == "everpy.host" and "stopping()" in r.getMessage()]
    assert len(named) == 1 and named[0].startswith("module bad: stopping()")
    assert runtime.host is not None and runtime.host.slots["good"].state.value == "ready"


async def test_a_reader_that_went_away_does_not_kill_the_runtime(tmp_path):
    """`everpy run 2>&1 | something` and something exits: the charger goes on and still stops cleanly."""
    path = tmp_path / "system.yaml"
    path.write_text(yaml.safe_dump(sentinels(tmp_path)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "everpy.cli", "run", str(path),
        "--modules-dir", str(FIXTURES / "modules"), "--definitions-dir", str(FIXTURES / "definitions"),
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(BOUND_S):
            while b"up and running" not in await process.stdout.readline():
                assert process.returncode is None
        process._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]  # the reader is gone
        os.killpg(process.pid, signal.SIGTERM)  # its "stopping" log lines now go into a broken pipe
        assert await asyncio.wait_for(process.wait(), BOUND_S) == 0
        assert (tmp_path / "inproc.shutdown").exists() and (tmp_path / "own.shutdown").exists()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
