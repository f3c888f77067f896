"""Real X.509 certificates for the security profile tests, generated with `cryptography`."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def _name(common_name: str, organisation: str = "everpy test CPO") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    """A test certificate valid from five minutes ago for one day."""
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1)))


def _new_ca(name: str, *, signs_only_certificates: bool = False) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(name), _name(name), key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if signs_only_certificates:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    return key, builder.sign(key, hashes.SHA256())


def make_pki(directory: Path, ca_name: str = "everpy test root",
             server_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _new_ca(ca_name, signs_only_certificates=True)
    _write(directory / "ca.pem", ca)

    def leaf(common_name: str, usage: x509.ObjectIdentifier, file: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), ca.subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            names: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    names.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        _write(directory / file, builder.sign(ca_key, hashes.SHA256()), key)

    leaf(server_names[0], ExtendedKeyUsageOID.SERVER_AUTH, "server.pem")
    leaf("SIL-0001", ExtendedKeyUsageOID.CLIENT_AUTH, "client.pem")  # CN = station serial (SP3)
    return Pki(ca_key, directory / "ca.pem", directory / "server.pem", directory / "server.key",
               directory / "client.pem", directory / "client.key")


def make_firmware_signer(directory: Path, image: bytes, ca_name: str = "everpy firmware CA") -> tuple[Path, str, str]:
    """(CA file, signing certificate PEM, base64 ECDSA-SHA256 signature of `image`): a firmware CA, a signing
    certificate it issued, and the signature the System module checks."""
    import base64

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _new_ca(ca_name)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = _builder(_name("firmware signer"), ca.subject, key.public_key()).sign(ca_key, hashes.SHA256())
    _write(directory / "firmware-ca.pem", ca)
    signature = base64.b64encode(key.sign(image, ec.ECDSA(hashes.SHA256()))).decode()
    return directory / "firmware-ca.pem", signer.public_bytes(serialization.Encoding.PEM).decode(), signature


def sign_csr(pki: Pki, csr_pem: str) -> str:
    """What a CSMS's CA does with a SignCertificate CSR: a client certificate, PEM."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    certificate = (_builder(csr.subject, ca.subject, csr.public_key())  # type: ignore[arg-type]
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .sign(pki.ca_key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
