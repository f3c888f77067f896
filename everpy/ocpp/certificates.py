"""The station's certificate store, shared by every OCPP version: installed root certificates (CSMS
and manufacturer roots, under each version's certificate-use names), their OCSP-style hash ids, and
the key pair behind a pending SignCertificate.

Layout under the store directory: ``<CertificateUse>/<sha256 of DER>.pem`` for roots, ``pending.key`` for
the private key of a CSR sent to the CSMS.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate | None = None) -> dict[str, str]:
    """CertificateHashData: the CertID an OCSP request would carry (SHA-256 of the issuer's name and of the
    issuer's public key bits, serial number in hex). Without `issuer` the certificate is its own (a root)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer or certificate, hashes.SHA256()).build()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": format(request.serial_number, "x")}


def same_certificate(data: dict[str, str], wanted: dict[str, Any]) -> bool:
    """Whether CertificateHashData from a CSMS names the certificate of `data` (hex case and leading zeros
    of the serial do not matter; a malformed value matches nothing)."""
    try:
        same_serial = int(data["serialNumber"], 16) == int(str(wanted["serialNumber"]), 16)
        return same_serial and all(data[k].lower() == str(wanted[k]).lower()
                                   for k in ("issuerNameHash", "issuerKeyHash"))
    except (KeyError, ValueError):
        return False


def issued_as(certificate: x509.Certificate, wanted: dict[str, Any]) -> bool:
    """Whether CertificateHashData names a certificate whose issuer is not at hand (a station certificate
    stored without its CA): the serial and the issuer-name hash decide, the key hash cannot be computed."""
    try:
        return (int(str(wanted["serialNumber"]), 16) == certificate.serial_number
                and str(wanted["issuerNameHash"]).lower()
                == hashlib.sha256(certificate.issuer.public_bytes()).hexdigest())
    except (KeyError, ValueError):
        return False


log = logging.getLogger("everpy.ocpp.certificates")


class CertificateStore:
    def __init__(self, directory: Path, max_certificates: int, uses: tuple[str, ...]) -> None:
        """`uses`: the version's names of the root-certificate uses kept here."""
        self.directory = directory
        self.max_certificates = max_certificates
        self.uses = uses

    def installed(self, use: str) -> list[x509.Certificate]:
        return [certificate for _, certificate in self._files(use)]

    def _files(self, use: str) -> list[tuple[Path, x509.Certificate]]:
        """The readable certificates of a use; a damaged file is kept aside, never a reason to fail."""
        folder = self.directory / use
        found = []
        for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
            try:
                found.append((path, x509.load_pem_x509_certificate(path.read_bytes())))
            except (ValueError, OSError) as error:  # must not stop every connection attempt
                log.error("certificate %s is unreadable (%s); kept aside as %s.damaged", path, error, path.name)
                path.replace(path.with_name(path.name + ".damaged"))
        return found

    def install(self, use: str, pem: str, now: datetime) -> str:
        """InstallCertificate status: Accepted, Rejected (not a valid CA certificate) or Failed (store full)."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (ValueError, x509.ExtensionNotFound):
            return "Rejected"
        if not constraints.ca or not certificate.not_valid_before_utc <= now.astimezone(UTC) <= \
                certificate.not_valid_after_utc:
            return "Rejected"
        if sum(len(self.installed(u)) for u in self.uses) >= self.max_certificates:
            return "Failed"
        der = certificate.public_bytes(serialization.Encoding.DER)
        folder = self.directory / use
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hashlib.sha256(der).hexdigest()}.pem"
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        temporary.replace(target)  # never a half-written certificate in the store
        return "Accepted"

    def delete(self, wanted: dict[str, str]) -> bool:
        for use in self.uses:
            for path, certificate in self._files(use):
                if same_certificate(hash_data(certificate), wanted):
                    path.unlink()
                    return True
        return False

    def roots_pem(self, use: str) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.installed(use))

    # -- station certificate (SignCertificate / CertificateSigned) ----------------------------------
    def new_csr(self, common_name: str, organisation: str) -> str:
        """A fresh EC P-256 key (kept as pending.key) and a CSR for it, PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organisation:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(key, hashes.SHA256())
        self.directory.mkdir(parents=True, exist_ok=True)
        pending = self.directory / "pending.key"
        pending.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        pending.chmod(0o600)
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def accept_signed(self, chain_pem: str, cert_file: Path, key_file: Path, now: datetime) -> bool:
        """Install a CertificateSigned chain if its leaf belongs to the pending key and is valid now."""
        pending = self.directory / "pending.key"
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
            key = serialization.load_pem_private_key(pending.read_bytes(), password=None)
        except (ValueError, OSError):
            return False
        leaf = chain[0]
        own = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        if own != theirs or not leaf.not_valid_before_utc <= now.astimezone(UTC) <= leaf.not_valid_after_utc:
            return False
        for path, data in ((key_file, pending.read_bytes()), (cert_file, chain_pem.encode())):
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(path.suffix + ".tmp")
            temporary.write_bytes(data)
            temporary.replace(path)
        key_file.chmod(0o600)
        pending.unlink()
        return True
