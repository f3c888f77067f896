"""Functional blocks A and M of OCPP 2.0.1 against a fake context: security events (critical ones queued),
InstallCertificate / GetInstalledCertificateIds / DeleteCertificate on a real certificate store, the station
certificate's renewal (SignCertificate with its resend timer, CertificateSigned) with real keys and CSRs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography import x509

from everpy.core.clock import FakeClock
from everpy.ocpp.certificates import CertificateStore, hash_data
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.network import SecuritySettings201
from everpy.ocpp.v201.security import CERTIFICATE_USES, Certificates, security_events
from everpy.ocpp.v201.variables.security import CERTIFICATE_ENTRIES
from tests.ocpp.certs import make_pki, sign_csr

from .fakes import Fixture, block_context, handle


class M:
    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, csms_ca_file: str = "") -> None:
        self.f: Fixture = block_context(tmp_path, [1], variables)
        self.f.clock = self.f.ctx.clock = FakeClock(time.time())  # the test certificates are valid from now
        self.pki = make_pki(tmp_path / "pki")
        self.store = CertificateStore(tmp_path / "certs", 5, CERTIFICATE_USES)
        self.settings = SecuritySettings201(self.f.model, "CP1", "ws://csms", csms_ca_file, str(tmp_path / "certs"))
        self.events = security_events(self.f.ctx)
        self.block = Certificates(self.f.ctx, self.events, self.store, self.settings, "SIL-0001", csms_ca_file)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await handle(self.f, action, payload, self.block)

    def entries(self) -> int:
        return self.f.model.int(CERTIFICATE_ENTRIES)


def _ca_pem(pki: Any) -> str:
    return Path(pki.ca).read_text()


async def test_critical_security_events_are_queued_and_the_others_only_published(tmp_path):
    """A04: StartupOfTheDevice is critical (queued as SecurityEventNotification, survives being offline);
    InvalidCsmsCertificate only goes to the security log and the ocpp interface."""
    m = M(tmp_path)
    m.events.record("StartupOfTheDevice", "booted")
    m.events.record("InvalidCsmsCertificate", "x" * 400)
    queued = m.f.sender.of("SecurityEventNotification")
    assert m.f.store.queued_actions() == ["SecurityEventNotification"]
    assert [p["type"] for p in queued] == ["StartupOfTheDevice"] and queued[0]["techInfo"] == "booted"
    DIALECT.check("SecurityEventNotification", queued[0], response=False)
    published = [value for var, value in m.f.station.published if var == "security_event"]
    assert [(e["type"], e["critical"]) for e in published] == [("StartupOfTheDevice", True),
                                                               ("InvalidCsmsCertificate", False)]
    assert len(published[1]["info"]) == 255


async def test_install_list_and_delete_roots(tmp_path):
    """TC_M_01_CS TC_M_02_CS TC_M_12_CS TC_M_13_CS TC_M_17_CS TC_M_18_CS TC_M_20_CS: a CSMS root and a
    manufacturer root installed, listed by type, by both and unfiltered with their hash data, then one
    deleted; CertificateEntries follows."""
    m = M(tmp_path)
    other = make_pki(tmp_path / "other", ca_name="manufacturer root")
    assert await m.call("InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                               "certificate": _ca_pem(m.pki)}) == {"status": "Accepted"}
    assert await m.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate",
                                               "certificate": _ca_pem(other)}) == {"status": "Accepted"}
    assert m.entries() == 2
    csms_hash = hash_data(x509.load_pem_x509_certificate(_ca_pem(m.pki).encode()))
    only_csms = await m.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    assert only_csms == {"status": "Accepted", "certificateHashDataChain": [
        {"certificateType": "CSMSRootCertificate", "certificateHashData": csms_hash}]}
    both = await m.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate",
                                                                           "ManufacturerRootCertificate"]})
    assert [c["certificateType"] for c in both["certificateHashDataChain"]] == ["CSMSRootCertificate",
                                                                                "ManufacturerRootCertificate"]
    everything = await m.call("GetInstalledCertificateIds", {})
    assert len(everything["certificateHashDataChain"]) == 2
    upper = {**csms_hash, "issuerNameHash": csms_hash["issuerNameHash"].upper(),
             "serialNumber": csms_hash["serialNumber"].upper()}  # the case of hex digits does not matter
    assert await m.call("DeleteCertificate", {"certificateHashData": upper}) == {"status": "Accepted"}
    assert m.entries() == 1
    assert await m.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}) == {
        "status": "NotFound"}


async def test_refusals(tmp_path):
    """TC_M_07_CS TC_M_19_CS TC_M_22_CS: a leaf or garbage is not a CA certificate (Rejected), a type
    with nothing installed is NotFound, deleting an unknown hash is NotFound; a full store answers Failed."""
    m = M(tmp_path)
    leaf = Path(m.pki.server_cert).read_text()
    for certificate in (leaf, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"):
        answer = await m.call("InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                                     "certificate": certificate})
        assert answer["status"] == "Rejected"
    assert await m.call("GetInstalledCertificateIds", {"certificateType": ["V2GCertificateChain"]}) == {
        "status": "NotFound"}
    unknown = {"hashAlgorithm": "SHA256", "issuerNameHash": "00", "issuerKeyHash": "00", "serialNumber": "zz"}
    assert await m.call("DeleteCertificate", {"certificateHashData": unknown}) == {"status": "NotFound"}
    for n in range(5):
        pem = _ca_pem(make_pki(tmp_path / f"ca{n}", ca_name=f"root {n}"))
        assert (await m.call("InstallCertificate", {"certificateType": "MORootCertificate",
                                                    "certificate": pem}))["status"] == "Accepted"
    full = await m.call("InstallCertificate", {"certificateType": "MORootCertificate", "certificate": _ca_pem(m.pki)})
    assert full["status"] == "Failed"


async def test_the_last_csms_root_of_a_tls_profile_is_not_deleted(tmp_path):
    """Deleting the only CSMS root while security profile 2 runs would leave the next connection nothing to
    trust: Failed. With a second root, or under profile 1, it goes."""
    m = M(tmp_path, {"SecurityCtrlr.SecurityProfile": "2"})
    await m.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": _ca_pem(m.pki)})
    root = hash_data(x509.load_pem_x509_certificate(_ca_pem(m.pki).encode()))
    assert (await m.call("DeleteCertificate", {"certificateHashData": root}))["status"] == "Failed"
    other = make_pki(tmp_path / "other", ca_name="second CSMS root")
    await m.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": _ca_pem(other)})
    assert (await m.call("DeleteCertificate", {"certificateHashData": root}))["status"] == "Accepted"


async def test_sign_certificate_then_certificate_signed(tmp_path):
    """TC_A_11_CS TC_M_23_CS: a triggered SignCertificate carries a CSR for a fresh key (CN = serial, O =
    SecurityCtrlr.OrganizationName); the signed certificate is installed as the station certificate, and
    the station certificate cannot be deleted."""
    m = M(tmp_path, {"SecurityCtrlr.SecurityProfile": "3", "SecurityCtrlr.OrganizationName": "ACME CPO"})
    m.f.sender.answers["SignCertificate"] = {"status": "Accepted"}
    assert await m.block.trigger_sign_certificate("ChargingStationCertificate") == "Accepted"
    await m.f.ctx.jobs.wait_idle()
    [request] = m.f.sender.of("SignCertificate")
    DIALECT.check("SignCertificate", request, response=False)
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    assert csr.subject.rfc4514_string() == "CN=SIL-0001,O=ACME CPO"
    signed = sign_csr(m.pki, request["csr"])
    assert await m.call("CertificateSigned", {"certificateChain": signed,
                                              "certificateType": "ChargingStationCertificate"}) == {
        "status": "Accepted"}
    assert m.f.sender.reconnects == 1  # profile 3: the new certificate is used from the next connection on
    cert_file, key_file = m.settings.client_certificate_files()
    assert cert_file.read_text() == signed and key_file.is_file()
    issued = x509.load_pem_x509_certificate(signed.encode())
    ca = x509.load_pem_x509_certificate(_ca_pem(m.pki).encode())
    assert await m.call("DeleteCertificate", {"certificateHashData": hash_data(issued, ca)}) == {
        "status": "Failed", "statusInfo": {"reasonCode": "StationCertificate"}}
    await m.f.clock.advance(3600)
    await m.f.ctx.jobs.wait_idle()
    assert len(m.f.sender.of("SignCertificate")) == 1  # answered: no resend


async def test_certificate_signed_refusals(tmp_path):
    """TC_A_14_CS: a certificate for another key, an expired-looking garbage chain and a V2G certificate are
    Rejected; the first two also record InvalidChargingStationCertificate."""
    m = M(tmp_path)
    m.f.sender.answers["SignCertificate"] = {"status": "Accepted"}
    await m.block.sign_certificate()
    foreign = Path(m.pki.client_cert).read_text()  # signed by the CA, but not for the pending key
    for chain in (foreign, "garbage"):
        answer = await m.call("CertificateSigned", {"certificateChain": chain})
        assert answer["status"] == "Rejected"
    v2g = await m.call("CertificateSigned", {"certificateChain": foreign, "certificateType": "V2GCertificate"})
    assert v2g["status"] == "Rejected"
    events = [value["type"] for var, value in m.f.station.published if var == "security_event"]
    assert events.count("InvalidChargingStationCertificate") == 2
    assert await m.block.trigger_sign_certificate("V2GCertificate") == "Rejected"


async def test_sign_certificate_is_resent_without_an_answer_and_not_after_a_rejection(tmp_path):
    """TC_A_15_CS TC_A_23_CS: no CertificateSigned after CertSigningWaitMinimum: SignCertificate again,
    the wait doubling, CertSigningRepeatTimes times; a Rejected SignCertificate is not resent."""
    m = M(tmp_path, {"SecurityCtrlr.CertSigningWaitMinimum": "10", "SecurityCtrlr.CertSigningRepeatTimes": "2"})
    m.f.sender.answers["SignCertificate"] = {"status": "Accepted"}
    await m.block.sign_certificate()
    for wait, expected in ((9, 1), (1, 2), (19, 2), (1, 3), (1000, 3)):
        await m.f.clock.advance(wait)
        await m.f.ctx.jobs.wait_idle()
        assert len(m.f.sender.of("SignCertificate")) == expected, wait
    csrs = {payload["csr"] for payload in m.f.sender.of("SignCertificate")}
    assert len(csrs) == 3  # each attempt a new key pair
    m.f.sender.sent.clear()
    m.f.sender.answers["SignCertificate"] = {"status": "Rejected"}
    await m.block.sign_certificate()
    await m.f.clock.advance(1000)
    await m.f.ctx.jobs.wait_idle()
    assert len(m.f.sender.of("SignCertificate")) == 1
