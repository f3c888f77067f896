"""Security profiles 1-3 with real certificates (TC_073-TC_087 as far as 1.6 without the security
extension's certificate management): Basic auth, TLS server verification, mutual TLS, upgrade only."""

from __future__ import annotations

from everpy.csms import Csms

from .certs import make_pki
from .station import WAIT_S, sil_station

KEY = "0123456789abcdef0123"  # AuthorizationKey: 16-40 characters


async def test_sp1_basic_auth_accepted_and_wrong_key_refused(tmp_path):
    async with Csms(passwords={"CP1": KEY}) as csms:
        async with sil_station(tmp_path / "good", csms, keys={"SecurityProfile": "1", "AuthorizationKey": KEY}):
            assert csms.connections == 1 and not csms.refused
    async with Csms(passwords={"CP1": KEY}) as csms:
        keys = {"SecurityProfile": "1", "AuthorizationKey": "wrong-key-wrong-key"}
        async with sil_station(tmp_path / "bad", csms, keys=keys, wait_boot=False):
            await csms.wait_until(lambda: len(csms.refused) >= 2, WAIT_S)  # retried with backoff
            assert csms.connections == 0


async def test_sp2_tls_server_verified_and_untrusted_server_refused(tmp_path):
    pki = make_pki(tmp_path / "pki")
    ocpp = {"csms_ca_file": str(pki.ca)}
    keys = {"SecurityProfile": "2", "AuthorizationKey": KEY}
    async with Csms(passwords={"CP1": KEY}, ssl_context=pki.server_context()) as csms:
        assert csms.url.startswith("wss://")
        async with sil_station(tmp_path / "good", csms, keys=keys, ocpp=ocpp):
            assert csms.connections == 1
    other = make_pki(tmp_path / "other", ca_name="someone else")
    async with Csms(passwords={"CP1": KEY}, ssl_context=other.server_context()) as csms:
        async with sil_station(tmp_path / "bad", csms, keys=keys, ocpp=ocpp, wait_boot=False) as station:
            event = await station.system.watch("ocpp", "main", "security_event").wait_for(
                lambda e: e["type"] == "InvalidCentralSystemCertificate", WAIT_S)
            assert "certificate" in event["info"].lower()
            assert csms.connections == 0


async def test_sp3_mutual_tls(tmp_path):
    pki = make_pki(tmp_path / "pki")
    with_cert = {"csms_ca_file": str(pki.ca), "client_cert_file": str(pki.client_cert),
                 "client_key_file": str(pki.client_key)}
    async with Csms(ssl_context=pki.server_context(require_client_cert=True)) as csms:
        async with sil_station(tmp_path / "good", csms, keys={"SecurityProfile": "3"}, ocpp=with_cert):
            session = csms.sessions["CP1"]
            peer = session._connection.transport.get_extra_info("peercert")
            assert dict(x[0] for x in peer["subject"])["commonName"] == "SIL-0001"
        without_cert = {"csms_ca_file": str(pki.ca)}
        async with sil_station(tmp_path / "bad", csms, keys={"SecurityProfile": "3"}, ocpp=without_cert,
                               wait_boot=False) as station:
            await station.system.watch("ocpp", "main", "connection_status").wait_for(
                lambda s: s["state"] == "Disconnected", WAIT_S)
            assert "CP1" not in csms.sessions


async def test_profile_only_goes_up_and_the_upgrade_reconnects_with_tls(tmp_path):
    pki = make_pki(tmp_path / "pki")
    keys = {"SecurityProfile": "1", "AuthorizationKey": KEY}
    async with Csms(passwords={"CP1": KEY}) as plain:
        port = plain.port
        async with sil_station(tmp_path, plain, keys=keys, ocpp={"csms_ca_file": str(pki.ca)}) as station:
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="0"))["status"] \
                == "Rejected"
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="3"))["status"] \
                == "Rejected"  # no client certificate configured
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="2"))["status"] \
                == "Accepted"
            await plain.wait_disconnected("CP1")
            await plain.stop()
            async with Csms(port=port, passwords={"CP1": KEY}, ssl_context=pki.server_context()) as tls:
                await tls.wait_for("StatusNotification", lambda p: p["connectorId"] == 1)
                assert await station.config_key("SecurityProfile") == "2"
                assert station.ocpp.cp.connection_security.parameters().url.startswith("wss://")


async def test_sp2_server_certificate_for_another_host_is_refused(tmp_path):
    pki = make_pki(tmp_path / "pki", server_names=("csms.example.com",))  # trusted CA, wrong name
    keys = {"SecurityProfile": "2", "AuthorizationKey": KEY}
    async with Csms(passwords={"CP1": KEY}, ssl_context=pki.server_context()) as csms:
        async with sil_station(tmp_path, csms, keys=keys, ocpp={"csms_ca_file": str(pki.ca)},
                               wait_boot=False) as station:
            event = await station.system.watch("ocpp", "main", "security_event").wait_for(
                lambda e: e["type"] == "InvalidCentralSystemCertificate", WAIT_S)
            assert "127.0.0.1" in event["info"] or "match" in event["info"].lower()
            assert csms.connections == 0


async def test_a_raised_profile_that_cannot_connect_falls_back_to_the_old_one(tmp_path):
    pki = make_pki(tmp_path / "pki")
    keys = {"SecurityProfile": "1", "AuthorizationKey": KEY}
    async with Csms(passwords={"CP1": KEY}) as plain:  # stays plain: wss:// to it must fail
        async with sil_station(tmp_path, plain, keys=keys, ocpp={"csms_ca_file": str(pki.ca)}) as station:
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="2"))["status"] \
                == "Accepted"
            await plain.wait_disconnected("CP1")
            await plain.wait_connected("CP1")  # after 3 failed TLS attempts, back on profile 1
            assert await station.config_key("SecurityProfile") == "1"
