"""Fixtures: the independent CSMS peers (processes) and the SIL charger with OCPP (config/sil-ocpp.yaml,
in the test's process on the real bus) connected to them over real websockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from everpy.testing import run_system

from ..ocpp.sil import SilDriver, sil_ocpp_config
from .peers import WAIT_S, OcppRpcCsms, ocpp_csms_command, ocpp_rpc_modules


@pytest.fixture(scope="session")
def ocpp_rpc_node_modules() -> Path:
    return ocpp_rpc_modules()


@pytest.fixture(scope="session")
def ocpp_csms_executable() -> Path:
    return ocpp_csms_command()


@pytest.fixture
async def rpc_csms(ocpp_rpc_node_modules: Path, tmp_path: Path) -> AsyncIterator[OcppRpcCsms]:
    """The strict ocpp-rpc CSMS; the test fails if any frame of the station broke the official schemas."""
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "ocpp-rpc-csms.log") as csms:
        yield csms
        assert csms.violations() == [], "the station sent frames the official OCPP 1.6 schemas reject"


@dataclass
class FileServer:
    """A real HTTP server: GET /firmware/image.bin, PUT /uploads/<name> (kept in `uploads`)."""

    url: str
    uploads: dict[str, bytes] = field(default_factory=dict)


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    async def firmware(request: web.Request) -> web.Response:
        return web.Response(body=b"everpy firmware image 1.2.3")

    async def upload(request: web.Request) -> web.Response:
        server.uploads[request.match_info["name"]] = await request.read()
        return web.Response(status=201)

    app = web.Application()
    app.router.add_get("/firmware/image.bin", firmware)
    app.router.add_put("/uploads/{name}", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server = FileServer(f"http://127.0.0.1:{runner.addresses[0][1]}")
    try:
        yield server
    finally:
        await runner.cleanup()


class PeerStation(SilDriver):
    """What a scenario does with the SIL charger: drive the car and the RFID reader over the bus."""

    wait_s = WAIT_S


@asynccontextmanager
async def peer_station(tmp_path: Path, csms_url: str, keys: dict[str, str] | None = None,
                       ocpp: dict[str, Any] | None = None, system: dict[str, Any] | None = None,
                       ) -> AsyncIterator[PeerStation]:
    """The SIL charger (car waiting for commands, RFID reader swiped by the test) against csms_url;
    `system` overrides settings of the System module."""
    # a charger with a socket (a lock to unlock), as the peers' UnlockConnector scenarios assume
    config = sil_ocpp_config(tmp_path, csms_url, car_script=None, swipe=False, keys=keys, ocpp=ocpp,
                             board={"connector_type": "IEC62196Type2Socket"})
    config["active_modules"]["system"]["config_module"].update(system or {})
    async with run_system(config) as system:
        yield PeerStation(system)
