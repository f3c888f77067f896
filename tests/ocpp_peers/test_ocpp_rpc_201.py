"""OCPP 2.0.1 against npm ocpp-rpc in strict mode (subprotocol ocpp2.0.1): the SIL charger of
config/sil-ocpp201.yaml, every frame both ways validated by ocpp-rpc's own validator of the official
2.0.1 schemas (the rpc_csms201 fixture fails the test on any violation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from everpy.testing import run_system
from tests.ocpp.sil import SIL_OCPP201, sil_ocpp_config

from .conftest import PeerStation
from .peers import OcppRpcCsms

TEST_VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}


@pytest.fixture
async def rpc_csms201(ocpp_rpc_node_modules: Path, tmp_path: Path) -> AsyncIterator[OcppRpcCsms]:
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "ocpp-rpc-csms.log",
                           {"protocol": "ocpp2.0.1"}) as csms:
        yield csms
        assert csms.violations() == [], "the station sent frames the official OCPP 2.0.1 schemas reject"


@asynccontextmanager
async def peer_station201(tmp_path: Path, csms_url: str, variables: dict[str, str] | None = None,
                          ocpp: dict[str, Any] | None = None) -> AsyncIterator[PeerStation]:
    config = sil_ocpp_config(tmp_path, csms_url, car_script=None, swipe=False, keys=variables, ocpp=ocpp,
                             base=SIL_OCPP201, test_keys=TEST_VARIABLES,
                             board={"connector_type": "IEC62196Type2Socket"})
    async with run_system(config) as system:
        yield PeerStation(system)


async def test_boot_over_ocpp201(tmp_path: Path, rpc_csms201: OcppRpcCsms):
    """TC_B_01_CS: the station boots with reason PowerUp and its vendor/model, subprotocol ocpp2.0.1."""
    async with peer_station201(tmp_path, rpc_csms201.url):
        boot = await rpc_csms201.wait_call("BootNotification")
        assert boot["reason"] == "PowerUp"
        assert boot["chargingStation"]["vendorName"] == "everpy"
        [connected] = [e for e in rpc_csms201.events if e["event"] == "connected"]
        assert connected["protocol"] == "ocpp2.0.1"
