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


# `openssl base64` (and most PEM-minded tools) wrap at 64 characters, with \r\n once the text went through
# Windows or a mail/web form. The line breaks carry no data, so they are dropped before strict decoding.
_ASCII_WHITESPACE = str.maketrans("", "", " \t\n\r\v\f")


def decode_signature(signature_b64: str) -> bytes:
    """The signature bytes of base64 text that may be wrapped in lines; ValueError if it is not base64.

    Only ASCII whitespace is ignored: any other character outside the base64 alphabet, or wrong padding,
    is still an error (validate=True), so a corrupted signature is never silently shortened.
    """
    try:
        return base64.b64decode(signature_b64.translate(_ASCII_WHITESPACE), validate=True)
    except (binascii.Error, ValueError) as error:  # ValueError: non-ASCII characters
        raise ValueError(f"signature is not base64: {error}") from error


def signature_matches(certificate: x509.Certificate, signature_b64: str, image: Path) -> bool:
    """True if `signature_b64` signs the SHA-256 of `image` with the certificate's key (blocking: run in a thread)."""
    try:
        signature = decode_signature(signature_b64)
    except ValueError:
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
