"""Functional blocks C and D end to end: the SIL charger of config/sil-ocpp201.yaml on the real bus (its
RFID reader, Auth and EvseManager) against the strict npm ocpp-rpc CSMS speaking ocpp2.0.1 over a real
websocket; every frame both ways is validated by ocpp-rpc's own validator of the official schemas.

(tests/ocpp201/station.py with the dev CSMS is not there yet; these use the independent peer directly.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from everpy.testing import Recorder, run_system
from tests.ocpp.sil import SIL_OCPP201, SilDriver, sil_ocpp_config
from tests.ocpp_peers.peers import WAIT_S, OcppRpcCsms, ocpp_rpc_modules

TEST_VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0"}
RFID_TYPE = "ISO14443"  # what the SIL RFID reader presents


@asynccontextmanager
async def csms(tmp_path: Path, id_tokens: dict[str, str] | None = None) -> AsyncIterator[OcppRpcCsms]:
    """The strict CSMS; `id_tokens`: idToken -> the status its Authorize answers (default Accepted)."""
    async with OcppRpcCsms(ocpp_rpc_modules(), tmp_path / "ocpp-rpc-csms.log",
                           {"protocol": "ocpp2.0.1", "idTags": id_tokens or {}}) as peer:
        yield peer
        assert peer.violations() == [], "the station sent frames the official OCPP 2.0.1 schemas reject"


class Station(SilDriver):
    wait_s = WAIT_S

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.verdicts: Recorder = self.system.watch("auth", "main", "token_validation_status")

    async def verdict(self, token: str, *statuses: str) -> dict[str, Any]:
        """Auth's next token_validation_status for `token` that is one of `statuses`."""
        return dict(await self.verdicts.wait_for(
            lambda m: m["token"]["id_token"]["value"] == token and m["status"] in statuses, self.wait_s))


@asynccontextmanager
async def station(tmp_path: Path, csms_url: str, variables: dict[str, str] | None = None) -> AsyncIterator[Station]:
    config = sil_ocpp_config(tmp_path, csms_url, car_script=None, swipe=False, keys=variables, base=SIL_OCPP201,
                             test_keys=TEST_VARIABLES)
    async with run_system(config) as system:
        yield Station(system)


@pytest.fixture(autouse=True)
def _peer_installed() -> None:
    ocpp_rpc_modules()  # skips the test with the reason when node/npm or the package are missing


async def test_the_csmss_verdict_decides_end_to_end(tmp_path: Path):
    """TC_C_06_CS (Blocked: no charging), TC_C_02_CS (Invalid), TC_E_04_CS-like (Accepted: Auth authorizes
    the EVSE and charging starts): the swiped token goes to the CSMS in an AuthorizeRequest
    {idToken, type}."""
    async with csms(tmp_path, {"BLOCKED1": "Blocked", "NOBODY": "Invalid"}) as peer, \
            station(tmp_path, peer.url) as charger:
        # a StatusNotification comes only once the boot was accepted: from then on Authorize can be sent
        await peer.wait_call("StatusNotification")
        await charger.plug_in()
        for token, status in (("BLOCKED1", "Blocked"), ("NOBODY", "Invalid")):
            await charger.swipe(token)
            refused = await charger.verdict(token, "Rejected", "Accepted")
            assert refused["status"] == "Rejected"
            assert refused["validation_results"] == [{"authorization_status": status}]
        await charger.swipe("DEADBEEF")
        assert (await charger.verdict("DEADBEEF", "Rejected", "Accepted"))["status"] == "Accepted"
        await charger.evse_events.wait_for(lambda e: e["event"] == "TransactionStarted", charger.wait_s)
        assert [call.params["idToken"] for call in peer.calls("Authorize")] == [
            {"idToken": token, "type": RFID_TYPE} for token in ("BLOCKED1", "NOBODY", "DEADBEEF")]


async def test_local_list_and_offline_authorization_end_to_end(tmp_path: Path):
    """D01 (SendLocalList Full and Differential, VersionMismatch), D02 (GetLocalListVersion), C14/C15
    (offline, a token of the local list starts with LocalAuthorizeOffline without asking anyone; an unknown
    one is refused), TC_C_37_CS (ClearCache Accepted)."""
    async with csms(tmp_path) as peer, station(tmp_path, peer.url) as charger:
        await peer.wait_call("BootNotification")
        assert await peer.call("GetLocalListVersion") == {"versionNumber": 0}
        full = await peer.call("SendLocalList", versionNumber=5, updateType="Full", localAuthorizationList=[
            {"idToken": {"idToken": "LOCAL1", "type": RFID_TYPE}, "idTokenInfo": {"status": "Accepted"}},
            {"idToken": {"idToken": "LOCAL2", "type": RFID_TYPE}, "idTokenInfo": {"status": "Blocked"}}])
        assert full["status"] == "Accepted"
        stale = await peer.call("SendLocalList", versionNumber=5, updateType="Differential", localAuthorizationList=[
            {"idToken": {"idToken": "LOCAL3", "type": RFID_TYPE}, "idTokenInfo": {"status": "Accepted"}}])
        assert stale["status"] == "VersionMismatch"
        assert await peer.call("GetLocalListVersion") == {"versionNumber": 5}
        assert (await peer.call("ClearCache"))["status"] == "Accepted"

        await peer.refuse_connections()
        await charger.plug_in()
        for token in ("UNKNOWN9", "LOCAL2"):
            await charger.swipe(token)
            assert (await charger.verdict(token, "Rejected", "Accepted"))["status"] == "Rejected"
        await charger.swipe("LOCAL1")
        assert (await charger.verdict("LOCAL1", "Rejected", "Accepted"))["status"] == "Accepted"
        await charger.evse_events.wait_for(lambda e: e["event"] == "TransactionStarted", charger.wait_s)
        assert peer.calls("Authorize") == []
