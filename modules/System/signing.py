"""Signed firmware (OCPP security extension / 2.0.1): the signing certificate must be issued by the charger
maker's firmware CA, and the signature (base64, SHA-256 with RSA PKCS#1 v1.5 or ECDSA) must match the image.

Only a signing certificate issued directly by the configured CA is accepted (no intermediate chain).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

CHUNK_SIZE = 1024 * 1024


class CertificateRefused(Exception):
    pass


def check_signing_certificate(certificate_pem: str, ca_file: Path, now: datetime) -> x509.Certificate:
    """The parsed signing certificate, or CertificateRefused saying why it cannot be trusted."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as error:
        raise CertificateRefused(f"signing certificate is not a PEM certificate: {error}") from error
    if not certificate.not_valid_before_utc <= now.astimezone(UTC) <= certificate.not_valid_after_utc:
        raise CertificateRefused("signing certificate is outside its validity period")
    try:
        authorities = x509.load_pem_x509_certificates(ca_file.read_bytes())
    except (OSError, ValueError) as error:
        raise CertificateRefused(f"cannot read the firmware CA {ca_file}: {error}") from error
    for authority in authorities:
        try:
            certificate.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return certificate
    raise CertificateRefused("signing certificate was not issued by the firmware CA")


def signature_matches(certificate: x509.Certificate, signature_b64: str, image: Path) -> bool:
    """True if `signature_b64` signs the SHA-256 of `image` with the certificate's key (blocking: run in a thread)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    digest = hashlib.sha256()
    with image.open("rb") as source:
        while block := source.read(CHUNK_SIZE):
            digest.update(block)
    prehashed = utils.Prehashed(hashes.SHA256())
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest.digest(), padding.PKCS1v15(), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest.digest(), ec.ECDSA(prehashed))
        else:
            return False
    except InvalidSignature:
        return False
    return True
