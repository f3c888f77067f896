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

from ..ocpp.certs import make_pki
from .conftest import PeerStation
from .peers import WAIT_S, OcppRpcCsms

PASSWORD = "everpy-2.0.1-password-0123"  # SecurityCtrlr.BasicAuthPassword: 16 to 40 characters
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


async def test_basic_authentication_with_the_configured_password(tmp_path: Path, ocpp_rpc_node_modules: Path):
    """TC_A_01_CS: security profile 1, HTTP Basic authentication with the identity and
    SecurityCtrlr.BasicAuthPassword; the CSMS accepts the password."""
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log",
                           {"protocol": "ocpp2.0.1", "password": PASSWORD}) as csms:
        variables = {"SecurityCtrlr.SecurityProfile": "1", "SecurityCtrlr.BasicAuthPassword": PASSWORD}
        async with peer_station201(tmp_path, csms.url, variables):
            await csms.wait_call("BootNotification")
        [auth] = [e for e in csms.events if e["event"] == "auth"]
        assert auth["identity"] == "CP1" and auth["accepted"] and auth["reason"] == "password matches"
        assert csms.violations() == []


def _tls(pki: Any, **more: Any) -> dict[str, Any]:
    return {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca), **more}


async def test_tls_with_a_valid_server_certificate(tmp_path: Path, ocpp_rpc_node_modules: Path):
    """TC_A_04_CS: security profile 2: TLS 1.2 or later to a CSMS whose certificate the configured CA signed,
    with Basic authentication inside."""
    pki = make_pki(tmp_path / "pki")
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log",
                           {"protocol": "ocpp2.0.1", "password": PASSWORD, "tls": _tls(pki)}) as csms:
        variables = {"SecurityCtrlr.SecurityProfile": "2", "SecurityCtrlr.BasicAuthPassword": PASSWORD}
        async with peer_station201(tmp_path, csms.url, variables, ocpp={"csms_ca_file": str(pki.ca)}):
            await csms.wait_call("BootNotification")
        [auth] = [e for e in csms.events if e["event"] == "auth"]
        assert auth["accepted"] and auth["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
        assert csms.violations() == []


async def test_tls_with_a_server_certificate_of_an_unknown_ca_is_refused(tmp_path: Path,
                                                                        ocpp_rpc_node_modules: Path):
    """TC_A_05_CS: the CSMS's certificate is not signed by a trusted root: the station aborts the handshake
    before sending its password and records the security event InvalidCsmsCertificate."""
    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", ca_name="someone else's root")
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log",
                           {"protocol": "ocpp2.0.1", "password": PASSWORD, "tls": _tls(pki)}) as csms:
        variables = {"SecurityCtrlr.SecurityProfile": "2", "SecurityCtrlr.BasicAuthPassword": PASSWORD}
        async with peer_station201(tmp_path, csms.url, variables, ocpp={"csms_ca_file": str(other.ca)}) as station:
            events = station.system.watch("ocpp", "main", "security_event")
            await events.wait_for(lambda e: e["type"] == "InvalidCsmsCertificate", WAIT_S)
            await csms.wait_event(lambda e: e["event"] == "tls_error")
            assert not [e for e in csms.events if e["event"] in ("auth", "connected")]


async def test_a_csms_offering_only_tls_1_1_is_refused(tmp_path: Path, ocpp_rpc_node_modules: Path):
    """TC_A_06_CS: a CSMS that speaks at most TLS 1.1 gets no connection (the station requires TLS 1.2+)."""
    pki = make_pki(tmp_path / "pki")
    tls = _tls(pki, minVersion="TLSv1", maxVersion="TLSv1.1", ciphers="DEFAULT@SECLEVEL=0")
    async with OcppRpcCsms(ocpp_rpc_node_modules, tmp_path / "csms.log",
                           {"protocol": "ocpp2.0.1", "password": PASSWORD, "tls": tls}) as csms:
        variables = {"SecurityCtrlr.SecurityProfile": "2", "SecurityCtrlr.BasicAuthPassword": PASSWORD}
        async with peer_station201(tmp_path, csms.url, variables, ocpp={"csms_ca_file": str(pki.ca)}):
            error = await csms.wait_event(lambda e: e["event"] == "tls_error")
            assert "version" in error["message"].lower() or "protocol" in error["message"].lower(), error
            assert not [e for e in csms.events if e["event"] in ("auth", "connected")]


async def test_plug_swipe_charge_and_unplug_as_transaction_events(tmp_path: Path, rpc_csms201: OcppRpcCsms):
    """TC_E_01_CS TC_J_09_CS over strict ocpp-rpc: Authorize, TransactionEvent Started / Updated with sampled
    values / Ended with seqNo 0..n, every frame both ways valid for the official 2.0.1 schemas."""
    variables = {"SampledDataCtrlr.TxUpdatedInterval": "1"}
    async with peer_station201(tmp_path, rpc_csms201.url, variables) as station:
        await rpc_csms201.wait_call("StatusNotification", lambda p: p["evseId"] == 1)
        await station.plug_in()
        await station.swipe("TAG1")
        authorize = await rpc_csms201.wait_call("Authorize")
        started = await rpc_csms201.wait_call("TransactionEvent", lambda p: p["eventType"] == "Started")
        tx_id = started["transactionInfo"]["transactionId"]
        await rpc_csms201.wait_call("TransactionEvent", lambda p: p["eventType"] == "Updated" and "meterValue" in p)
        await station.unplug()
        ended = await rpc_csms201.wait_call("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert authorize["idToken"]["idToken"] == "TAG1"
    assert started["idToken"]["idToken"] == "TAG1" and started["evse"] == {"id": 1, "connectorId": 1}
    seq_nos = [c.params["seqNo"] for c in rpc_csms201.calls("TransactionEvent")
               if c.params["transactionInfo"]["transactionId"] == tx_id]
    assert seq_nos == list(range(len(seq_nos))) and ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_remote_start_stop_variables_and_reports(tmp_path: Path, rpc_csms201: OcppRpcCsms):
    """TC_F_01-like and TC_B_12-like over strict ocpp-rpc: RequestStartTransaction and
    RequestStopTransaction, GetVariables / SetVariables, GetBaseReport with NotifyReport pages."""
    async with peer_station201(tmp_path, rpc_csms201.url) as station:
        await rpc_csms201.wait_call("StatusNotification", lambda p: p["evseId"] == 1)
        await station.plug_in()
        start = await rpc_csms201.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                                       remoteStartId=5, evseId=1)
        started = await rpc_csms201.wait_call("TransactionEvent", lambda p: p["eventType"] == "Started")
        tx_id = started["transactionInfo"]["transactionId"]
        stop = await rpc_csms201.call("RequestStopTransaction", transactionId=tx_id)
        ended = await rpc_csms201.wait_call("TransactionEvent", lambda p: p["eventType"] == "Ended")
        heartbeat = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        changed = await rpc_csms201.call("SetVariables", setVariableData=[{**heartbeat, "attributeValue": "120"}])
        read = await rpc_csms201.call("GetVariables", getVariableData=[heartbeat])
        report = await rpc_csms201.call("GetBaseReport", requestId=3, reportBase="SummaryInventory")
        await rpc_csms201.wait_call("NotifyReport", lambda p: p["requestId"] == 3 and not p.get("tbc", False))
    assert start["status"] == "Accepted" and started["transactionInfo"]["remoteStartId"] == 5
    assert stop == {"status": "Accepted"}
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("RemoteStop", "Remote")
    assert changed["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert read["getVariableResult"][0]["attributeValue"] == "120"
    assert report["status"] == "Accepted"
