"""`everpy csms`, the development CSMS of the demo, as its own process: a station connects, and a remote
command sent over its HTTP interface starts a transaction."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import sys

import aiohttp

from .station import WAIT_S, Address, sil_station


async def test_dev_csms_logs_the_station_and_takes_remote_commands_over_http(tmp_path):
    """The HTTP API takes a command only with the token `everpy csms` wrote (0600) at start."""
    token_file = tmp_path / "csms-token"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from everpy.csms import main; sys.exit(main(sys.argv[1:]))",
        "--port", "0", "--http-port", "0", "--token-file", str(token_file), stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []

    async def read_until(pattern: str) -> re.Match[str]:
        async with asyncio.timeout(WAIT_S):
            while True:
                for line in lines:
                    if found := re.search(pattern, line):
                        return found
                raw = await process.stderr.readline()  # type: ignore[union-attr]
                lines.append(raw.decode())

    try:
        ws_url = (await read_until(r"CSMS listening on (ws://\S+)")).group(1)
        http_port = int((await read_until(r"POST http://127\.0\.0\.1:(\d+)/")).group(1))
        async with sil_station(tmp_path, Address(ws_url), wait_boot=False) as station:
            await read_until(r"CP1 connector 1: Available")
            await station.plug_in()
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            bearer = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            async with aiohttp.ClientSession() as anybody:
                url = f"http://127.0.0.1:{http_port}/stations/CP1/RemoteStartTransaction"
                async with anybody.post(url, data=json.dumps({"idTag": "X", "connectorId": 1})) as response:
                    assert response.status == 401 and "Authorization: Bearer" in (await response.json())["error"]
                async with anybody.post(url, data="{}", headers={"Authorization": "Bearer guess"}) as response:
                    assert response.status == 403
            async with aiohttp.ClientSession(headers=bearer) as http:
                url = f"http://127.0.0.1:{http_port}/stations/CP1/RemoteStartTransaction"
                async with http.post(url, data=json.dumps({"idTag": "DEMO", "connectorId": 1})) as response:
                    assert response.status == 200
                    assert (await response.json())["result"]["status"] == "Accepted"
                async with http.get(f"http://127.0.0.1:{http_port}/stations") as response:
                    assert await response.json() == ["CP1"]
            await read_until(r"CP1 transaction 1 started on connector 1 by DEMO")
            await read_until(r"CP1 connector 1: Charging")
    finally:
        process.terminate()
        await process.wait()
