"""Certificate management of the 1.6 security extension, end to end: the CSMS installs its root, the
station moves to profile 2 trusting it, gets its own certificate signed (SignCertificate /
CertificateSigned) and moves to profile 3 with it."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from everpy.csms import Csms

from .certs import make_pki, sign_csr
from .station import WAIT_S, sil_station

KEY = "0123456789abcdef0123"


async def ask(csms: Csms, action: str, **payload: object) -> dict:
    """A request from this CSMS; the station's raw answer."""
    await csms.call_action("CP1", action, payload)
    return csms.last_answer("CP1", action)


async def test_install_root_upgrade_to_tls_sign_station_certificate_upgrade_to_mutual_tls(tmp_path):
    pki = make_pki(tmp_path / "pki")
    root_pem = pki.ca.read_text()
    keys = {"SecurityProfile": "1", "AuthorizationKey": KEY, "CpoName": "everpy test CPO"}
    async with Csms(passwords={"CP1": KEY}) as plain:
        port = plain.port
        async with sil_station(tmp_path, plain, keys=keys) as station:
            assert (await station.call("GetInstalledCertificateIds",
                                       certificateType="CentralSystemRootCertificate"))["status"] == "NotFound"
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="2"))["status"] \
                == "Rejected"  # no CSMS root yet
            assert (await station.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                                       certificate="not a certificate"))["status"] == "Rejected"
            assert (await station.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                                       certificate=root_pem))["status"] == "Accepted"
            ids = await station.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate")
            root = x509.load_pem_x509_certificate(root_pem.encode())
            point = root.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
            assert ids["certificateHashData"] == [{
                "hashAlgorithm": "SHA256", "issuerNameHash": hashlib.sha256(root.subject.public_bytes()).hexdigest(),
                "issuerKeyHash": hashlib.sha256(point).hexdigest(), "serialNumber": format(root.serial_number, "x")}]
            assert (await station.call("ChangeConfiguration", key="SecurityProfile", value="2"))["status"] \
                == "Accepted"
            await plain.wait_disconnected("CP1")
            await plain.stop()
            async with Csms(port=port, passwords={"CP1": KEY}, ssl_context=pki.server_context()) as tls:
                await tls.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, WAIT_S)
                answer = await ask(tls, "ExtendedTriggerMessage", requestedMessage="SignChargePointCertificate")
                assert answer == {"status": "Accepted"}
                csr_pem = (await tls.wait_for("SignCertificate", timeout=WAIT_S)).payload["csr"]
                csr = x509.load_pem_x509_csr(csr_pem.encode())
                assert csr.subject.rfc4514_string() == "CN=SIL-0001,O=everpy test CPO"
                assert (await ask(tls, "CertificateSigned", certificateChain=pki.server_cert.read_text()))[
                    "status"] == "Rejected"  # not for our key
                event = await tls.wait_for("SecurityEventNotification",
                                           lambda p: p["type"] == "InvalidChargePointCertificate", WAIT_S)
                assert event
                signed = sign_csr(pki, csr_pem)
                assert (await ask(tls, "CertificateSigned", certificateChain=signed))["status"] == "Accepted"
                assert (await ask(tls, "ChangeConfiguration", key="SecurityProfile", value="3"))["status"] \
                    == "Accepted"
                await tls.wait_disconnected("CP1")
                await tls.stop()
            async with Csms(port=port, ssl_context=pki.server_context(require_client_cert=True)) as mutual:
                session = await mutual.wait_connected("CP1")
                peer = session._connection.transport.get_extra_info("peercert")
                assert dict(x[0] for x in peer["subject"])["commonName"] == "SIL-0001"
                ids = await ask(mutual, "GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate")
                deleted = await ask(mutual, "DeleteCertificate", certificateHashData=ids["certificateHashData"][0])
                assert deleted == {"status": "Accepted"}
                assert (await ask(mutual, "DeleteCertificate", certificateHashData=ids["certificateHashData"][0])) \
                    == {"status": "NotFound"}


def test_a_damaged_certificate_file_is_kept_aside_and_the_rest_is_used(tmp_path):
    from everpy.ocpp.certificates import CertificateStore

    make_pki(tmp_path / "pki")
    folder = tmp_path / "store" / "CentralSystemRootCertificate"
    folder.mkdir(parents=True)
    (folder / "good.pem").write_text((tmp_path / "pki" / "ca.pem").read_text())
    (folder / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    store = CertificateStore(tmp_path / "store", 20, ("CentralSystemRootCertificate",))
    assert len(store.installed("CentralSystemRootCertificate")) == 1
    assert (folder / "bad.pem.damaged").exists() and not (folder / "bad.pem").exists()
