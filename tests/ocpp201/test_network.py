"""Network connection profiles (A and B) end to end: the SIL charger of config/sil-ocpp201.yaml as its own
process and two development CSMSes (everpy/csms/v201.py) over real websockets, one of them over TLS: the
CSMS installs its root, sets a new connection profile with a higher security profile, reorders
NetworkConfigurationPriority and resets; the station comes back on the new CSMS and refuses to go back down.
And the fallback to the next slot when the new one cannot be reached."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import websockets

from everpy.csms import v201
from tests.ocpp.certs import make_pki
from tests.ocpp.sil import SIL_OCPP201, StationProcess, sil_ocpp_config
from tests.ocpp.station import wait_file

pytestmark = pytest.mark.slow

STATION = "CP1"
WAIT_S = 15.0
PASSWORD = "network-profile-password-1"
VARIABLES = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": "0", "OCPPCommCtrlr.RetryBackOffRandomRange": "0",
             "SecurityCtrlr.SecurityProfile": "1", "SecurityCtrlr.BasicAuthPassword": PASSWORD}
PRIORITY = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkConfigurationPriority"}}


def connection_data(url: str, profile: int, **more: Any) -> dict[str, Any]:
    return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": 30,
            "securityProfile": profile, "ocppInterface": "Wired0", **more}


def tls_server(pki: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


def station_for(tmp_path: Path, url: str) -> StationProcess:
    config = sil_ocpp_config(tmp_path, url, base=SIL_OCPP201, keys=VARIABLES, test_keys={})
    return StationProcess(config, tmp_path)


async def set_profile(csms: v201.Csms, slot: int, data: dict[str, Any]) -> dict[str, Any]:
    return await csms.call(STATION, "SetNetworkProfile", {"configurationSlot": slot, "connectionData": data})


async def reset_and_restart(tmp_path: Path, csms: v201.Csms, station: StationProcess) -> None:
    assert (await csms.call(STATION, "Reset", {"type": "OnIdle"}))["status"] == "Accepted"
    await wait_file(tmp_path / "hard-reset")
    station.kill()  # the reset's reboot
    (tmp_path / "hard-reset").unlink()
    station.start()


async def test_upgrade_to_a_tls_profile_on_a_new_csms_and_no_way_back(tmp_path):
    """TC_B_43_CS TC_A_20_CS TC_M_01_CS TC_B_45_CS TC_B_50_CS TC_A_19_CS TC_A_22_CS: SetNetworkProfile refusals (another
    OCPP version, slot 0, the slot in use, a URL without a host, profile 2 before a CSMS root is installed);
    then the CSMS root installed, slot 1 = a TLS CSMS with security profile 2, NetworkConfigurationPriority
    "1,0", Reset: the station boots at the new CSMS over TLS with Basic auth; there a profile-1 slot is
    Rejected (no downgrade)."""
    pki = make_pki(tmp_path / "pki")
    passwords = {STATION: PASSWORD}
    async with v201.Csms(passwords=passwords) as plain, \
            v201.Csms(passwords=passwords, ssl_context=tls_server(pki)) as secure:
        station = station_for(tmp_path, plain.url)
        station.start()
        try:
            await plain.wait_for("StatusNotification")
            tls_slot = connection_data(secure.url, 2)
            refusals = [
                await set_profile(plain, 1, connection_data(secure.url, 2, ocppVersion="OCPP16")),
                await set_profile(plain, 0, connection_data(plain.url, 1)),
                await set_profile(plain, 1, connection_data("ws:///no-host", 1)),
                await set_profile(plain, 1, tls_slot),  # no CSMS root yet
                await set_profile(plain, 1, connection_data(plain.url, 2)),  # profile 2 needs wss://
            ]
            installed = await plain.call(STATION, "InstallCertificate", {
                "certificateType": "CSMSRootCertificate", "certificate": Path(pki.ca).read_text()})
            accepted = await set_profile(plain, 1, tls_slot)
            priority = await plain.call(STATION, "SetVariables", {"setVariableData": [
                PRIORITY | {"attributeValue": "1,0"}]})
            await reset_and_restart(tmp_path, plain, station)
            boot = await secure.wait_for("BootNotification")
            await secure.wait_for("StatusNotification")
            downgrade = await set_profile(secure, 2, connection_data(plain.url, 1))
            active = await secure.call(STATION, "GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "ActiveNetworkProfile"}},
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}]})
        finally:
            station.stop()
    assert [r["status"] for r in refusals] == ["Rejected"] * 5, refusals
    assert all(r["statusInfo"]["reasonCode"] == "InvalidNetworkConf" for r in refusals)
    assert installed["status"] == "Accepted"
    assert accepted == {"status": "Accepted"}, station.log()
    assert priority["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert boot.payload["reason"] == "RemoteReset"
    assert downgrade["status"] == "Rejected" and "below" in downgrade["statusInfo"]["additionalInfo"]
    assert [r["attributeValue"] for r in active["getVariableResult"]] == ["1", "2"]


async def test_an_unreachable_new_profile_falls_back_to_the_next_slot(tmp_path):
    """TC_B_46_CS TC_B_49_CS: slot 1 names a CSMS nobody listens on, NetworkConfigurationPriority "1,0", Reset: after
    NetworkProfileConnectionAttempts failed attempts the station connects with slot 0 again."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"ws://127.0.0.1:{closed.getsockname()[1]}/ocpp"
    async with v201.Csms(passwords={STATION: PASSWORD}) as csms:
        station = station_for(tmp_path, csms.url)
        station.start()
        try:
            await csms.wait_for("StatusNotification")
            assert (await set_profile(csms, 1, connection_data(dead_url, 1)))["status"] == "Accepted"
            await csms.call(STATION, "SetVariables", {"setVariableData": [
                PRIORITY | {"attributeValue": "1,0"},
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkProfileConnectionAttempts"},
                 "attributeValue": "2"}]})
            mark = len(csms.received)
            await reset_and_restart(tmp_path, csms, station)
            boot = await csms.wait_for("BootNotification", after=mark, timeout=30)
            active = await csms.call(STATION, "GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "ActiveNetworkProfile"}}]})
        finally:
            station.stop()
    assert boot.payload["reason"] == "RemoteReset"
    assert active["getVariableResult"][0]["attributeValue"] == "0"
    assert "no connection over network profile 1; trying slot 0" in station.log()


async def test_security_profile_3_with_a_client_certificate(tmp_path):
    """TC_A_07_CS: security profile 3: TLS with the station's client certificate (CN = the serial number),
    no Basic authentication; the CSMS requires and verifies the certificate."""
    pki = make_pki(tmp_path / "pki")
    async with v201.Csms(ssl_context=pki.server_context(require_client_cert=True)) as csms:
        config = sil_ocpp_config(tmp_path, csms.url, base=SIL_OCPP201, test_keys={}, keys={
            **VARIABLES, "SecurityCtrlr.SecurityProfile": "3"}, ocpp={
            "csms_ca_file": str(pki.ca), "client_cert_file": str(pki.client_cert),
            "client_key_file": str(pki.client_key)})
        station = StationProcess(config, tmp_path)
        station.start()
        try:
            await csms.wait_for("BootNotification")
            session = csms.sessions[STATION]
            peer = session._connection.transport.get_extra_info("peercert")
            authorization = session._connection.request.headers.get("Authorization")
        finally:
            station.stop()
    assert dict(x[0] for x in peer["subject"])["commonName"] == "SIL-0001"
    assert authorization is None


async def test_a_csms_that_selects_no_subprotocol_is_not_spoken_to(tmp_path):
    """OCPP-J §3.1.2: a CSMS that does not agree to the offered subprotocol (ocpp2.0.1) completes the handshake
    without one; the station closes, sends nothing, and tries again later as after any failed attempt."""
    frames: list[str] = []
    attempts = asyncio.Queue[None]()

    async def no_subprotocol(connection: Any) -> None:
        attempts.put_nowait(None)
        try:
            async for frame in connection:
                frames.append(str(frame))
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(no_subprotocol, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        station = station_for(tmp_path, f"ws://127.0.0.1:{port}/ocpp")
        station.start()
        try:
            for _ in range(2):
                await asyncio.wait_for(attempts.get(), WAIT_S)
        finally:
            station.stop()
    assert frames == []
    assert "the CSMS selected no subprotocol this station offered (ocpp2.0.1)" in station.log()
