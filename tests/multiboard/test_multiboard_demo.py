"""The one-machine demo of the README (`python -m everpy.rpc.demo`) starts a main board and satellites
as separate processes, links them, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path


async def test_demo_links_main_board_and_satellites_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    prefix = "DEMO" + uuid.uuid4().hex[:6]  # other runs may browse the same loopback
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "everpy.rpc.demo", "--satellites", "2", "--workdir", str(tmp_path),
        "--serial-prefix", prefix, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    connected: set[str] = set()
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not ({f"{prefix}-0001", f"{prefix}-0002"} <= connected and any("up and running" in line
                                                                                  and line.startswith("[ main]")
                                                                                  for line in seen)):
                line = (await process.stdout.readline()).decode(errors="replace")
                assert line, "demo ended early:\n" + "".join(seen[-40:])
                seen.append(line)
                for serial in (f"{prefix}-0001", f"{prefix}-0002"):
                    if f"satellite {serial} connected" in line:
                        connected.add(serial)
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, rest.decode(errors="replace")[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (tmp_path / "main.yaml").exists() and (tmp_path / "sat2.yaml").exists()
