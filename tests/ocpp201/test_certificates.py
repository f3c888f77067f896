"""Certificate management (M) and the station certificate (A02) end to end: the SIL charger of
config/sil-ocpp201.yaml as its own process and the development CSMS (everpy/csms/v201.py) over a real
websocket; certificates made by a real test CA (tests/ocpp/certs.py), the CSR signed by it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from everpy.csms import v201
from everpy.ocpp.certificates import hash_data
from tests.ocpp.certs import make_pki, sign_csr

from .dev_station import STATION, station_at

pytestmark = pytest.mark.slow



def certificate_ids(answer: dict) -> list[tuple[str, str]]:
    return [(c["certificateType"], c["certificateHashData"]["serialNumber"])
            for c in answer.get("certificateHashDataChain", [])]


async def test_install_retrieve_and_delete_certificates(tmp_path: Path):
    """TC_M_01_CS TC_M_02_CS TC_M_07_CS TC_M_12_CS TC_M_13_CS TC_M_17_CS TC_M_18_CS TC_M_19_CS TC_M_20_CS
    TC_M_22_CS: a CSMS root and a manufacturer root installed; a leaf certificate Rejected; the ids by type,
    by both types and of all types; a type with none NotFound; a root deleted, then NotFound."""
    csms_root, maker_root = make_pki(tmp_path / "csms"), make_pki(tmp_path / "maker", ca_name="maker root")
    ids = {name: format(x509.load_pem_x509_certificate(Path(pki.ca).read_bytes()).serial_number, "x")
           for name, pki in (("csms", csms_root), ("maker", maker_root))}
    async with v201.Csms() as csms, station_at(tmp_path, csms) as station:
        install = [await csms.call(STATION, "InstallCertificate", {"certificateType": use, "certificate": pem})
                   for use, pem in (("CSMSRootCertificate", Path(csms_root.ca).read_text()),
                                    ("ManufacturerRootCertificate", Path(maker_root.ca).read_text()),
                                    ("CSMSRootCertificate", Path(csms_root.server_cert).read_text()))]
        by_type = await csms.call(STATION, "GetInstalledCertificateIds",
                                  {"certificateType": ["ManufacturerRootCertificate"]})
        both = await csms.call(STATION, "GetInstalledCertificateIds",
                               {"certificateType": ["CSMSRootCertificate", "ManufacturerRootCertificate"]})
        everything = await csms.call(STATION, "GetInstalledCertificateIds", {})
        none = await csms.call(STATION, "GetInstalledCertificateIds", {"certificateType": ["V2GRootCertificate"]})
        root_hash = everything["certificateHashDataChain"][0]["certificateHashData"]
        deleted = await csms.call(STATION, "DeleteCertificate", {"certificateHashData": root_hash})
        again = await csms.call(STATION, "DeleteCertificate", {"certificateHashData": root_hash})
        left = await csms.call(STATION, "GetInstalledCertificateIds", {})
    assert [a["status"] for a in install] == ["Accepted", "Accepted", "Rejected"], station.log()
    assert certificate_ids(by_type) == [("ManufacturerRootCertificate", ids["maker"])]
    assert sorted(certificate_ids(both)) == sorted(certificate_ids(everything)) == sorted(
        [("CSMSRootCertificate", ids["csms"]), ("ManufacturerRootCertificate", ids["maker"])])
    assert none == {"status": "NotFound"}
    assert deleted == {"status": "Accepted"} and again == {"status": "NotFound"}
    assert len(left["certificateHashDataChain"]) == 1


async def test_a_triggered_station_certificate_renewal(tmp_path: Path):
    """TC_A_11_CS TC_A_14_CS TC_A_15_CS TC_M_23_CS: TriggerMessage SignChargingStationCertificate: Accepted,
    SignCertificate with a CSR (CN = the serial number); a certificate for another key is Rejected, the one
    the CA made from the CSR Accepted; the station certificate cannot be deleted. A CSMS that refuses to
    sign gets no CertificateSigned wait (nothing more is sent)."""
    pki = make_pki(tmp_path / "pki")
    async with v201.Csms() as csms, station_at(tmp_path, csms) as station:
        trigger = await csms.call(STATION, "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
        request = await csms.wait_for("SignCertificate")
        foreign = await csms.call(STATION, "CertificateSigned", {
            "certificateChain": Path(pki.client_cert).read_text(), "certificateType": "ChargingStationCertificate"})
        signed_pem = sign_csr(pki, request.payload["csr"])
        signed = await csms.call(STATION, "CertificateSigned", {"certificateChain": signed_pem,
                                                                 "certificateType": "ChargingStationCertificate"})
        ca = x509.load_pem_x509_certificate(Path(pki.ca).read_bytes())
        own_hash = hash_data(x509.load_pem_x509_certificate(signed_pem.encode()), ca)
        delete_own = await csms.call(STATION, "DeleteCertificate", {"certificateHashData": own_hash})
        csms.behaviour.sign_certificate_status = "Rejected"
        mark = len(csms.received)
        await csms.call(STATION, "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
        await csms.wait_for("SignCertificate", after=mark)
    assert trigger["status"] == "Accepted"
    csr = x509.load_pem_x509_csr(request.payload["csr"].encode())
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "SIL-0001"
    assert foreign["status"] == "Rejected" and signed == {"status": "Accepted"}, station.log()
    assert (tmp_path / "certificates" / "charging-station.pem").read_text() == signed_pem
    assert delete_own["status"] == "Failed"
