"""Signed firmware updates with certificates generated here: trusted signer, foreign signer, tampered image."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from everpy_modules.System.signing import decode_signature

from .helpers import RecordingCommand, recorder_of, running, system_module_config
from .servers import HttpServer

IMAGE = b"signed firmware " * 3000
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def certificate(
    subject: str, key: Key, issuer: tuple[str, Key] | None = None, *, is_ca: bool = False
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key: Key, data: bytes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def signing_system(tmp_path: Path) -> tuple[RecordingCommand, dict[str, Any]]:
    """A System module that installs signed images (signers checked against tmp_path/ca.pem) with a
    recording installer, and a recorder of its statuses."""
    installer = RecordingCommand(tmp_path / "bin", "installer")
    board = system_module_config(
        tmp_path / "board",
        firmware_installer_command=installer.command,
        wait_for_installation_permission=False,
        firmware_signing_ca_file=str(tmp_path / "ca.pem"),
    )
    return installer, {"active_modules": {"sys": {"module": "System", "config_module": board},
                                          "recorder": recorder_of("sys")}}


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Charger Maker Firmware CA", ca_key, is_ca=True)
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = certificate("Firmware Signer", signer_key, ("Charger Maker Firmware CA", ca_key))
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("Firmware Signer", stranger_key)  # self-signed, same name: must not pass
    ec_signer_key = ec.generate_private_key(ec.SECP256R1())
    ec_signer = certificate("EC Signer", ec_signer_key, ("Charger Maker Firmware CA", ca_key))
    return {
        "ca": pem(ca),
        "signer": (pem(signer), signer_key),
        "ec_signer": (pem(ec_signer), ec_signer_key),
        "stranger": (pem(stranger), stranger_key),
    }


async def test_signed_updates(tmp_path: Path, pki: dict[str, Any]):
    (tmp_path / "ca.pem").write_text(pki["ca"])
    installer, cfg = signing_system(tmp_path)
    async with HttpServer(tmp_path / "http") as http, running(cfg) as system:
        (http.root / "fw.img").write_bytes(IMAGE)
        recorder = system.instances["recorder"]

        async def update(request_id: int, signer: str, data: bytes = IMAGE) -> str:
            cert, key = pki[signer]
            request = {
                "request_id": request_id,
                "location": http.url("/files/fw.img"),
                "signing_certificate": cert,
                "signature": sign(key, data),
            }
            return await system.call("sys", "main", "update_firmware", firmware_update_request=request)

        assert await update(1, "signer") == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 5) == [
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed",
        ]  # fmt: skip
        assert await update(2, "ec_signer") == "Accepted"
        assert (await recorder.wait_for(recorder.firmware, 10))[5:] == [
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed",
        ]  # fmt: skip
        assert await update(3, "stranger") == "InvalidCertificate"
        unsigned = {"request_id": 5, "location": http.url("/files/fw.img")}  # a CA is set: signed images only
        assert await system.call("sys", "main", "update_firmware", firmware_update_request=unsigned) == "Rejected"
        assert await update(4, "signer", data=b"another image") == "Accepted"
        assert (await recorder.wait_for(recorder.firmware, 13))[10:] == [
            "Downloading",
            "Downloaded",
            "InvalidSignature",
        ]
    assert len(installer.calls) == 2


def openssl_signature(key: rsa.RSAPrivateKey, image: Path, directory: Path) -> str:
    """The signature as a firmware maker makes it: `openssl dgst -sign`, then `openssl base64` (64 per line)."""
    key_file = directory / "signer.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    def openssl(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout

    signature = openssl("dgst", "-sha256", "-sign", str(key_file), str(image))
    return openssl("base64", data=signature).decode()


@pytest.mark.parametrize(
    "text",
    [
        "QUJD*REVG",  # not in the alphabet
        "QUJDRA=",  # padding short by one
        "QU=JDRA==",  # padding in the middle
        "QUJD\u00a0REVG",  # non-ASCII whitespace is not line wrapping
    ],
)
def test_signature_text_that_is_not_base64_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="signature is not base64"):
        decode_signature(text)


def test_line_breaks_and_spaces_in_a_signature_carry_no_data() -> None:
    assert decode_signature(" QUJD\r\nREVG\n\tRw==\n") == b"ABCDEFG"


async def test_signature_wrapped_by_openssl_base64_is_accepted(tmp_path: Path, pki: dict[str, Any]):
    """A signature as `openssl base64` writes it (64 characters per line, with \\n or, after passing through
    Windows, \\r\\n) verifies; base64 with foreign characters or broken padding still ends in InvalidSignature."""
    (tmp_path / "ca.pem").write_text(pki["ca"])
    cert, key = pki["signer"]
    (tmp_path / "fw.img").write_bytes(IMAGE)
    wrapped = openssl_signature(key, tmp_path / "fw.img", tmp_path)
    lines = wrapped.splitlines()
    assert len(lines) > 1 and all(len(line) == 64 for line in lines[:-1]) and wrapped.endswith("\n")
    unwrapped = "".join(lines)
    assert unwrapped.endswith("==")  # a 256-byte RSA signature: so dropping one "=" breaks the padding
    installer, cfg = signing_system(tmp_path)
    async with HttpServer(tmp_path / "http") as http, running(cfg) as system:
        (http.root / "fw.img").write_bytes(IMAGE)
        recorder = system.instances["recorder"]

        async def update(request_id: int, signature: str) -> str:
            request = {
                "request_id": request_id,
                "location": http.url("/files/fw.img"),
                "signing_certificate": cert,
                "signature": signature,
            }
            return await system.call("sys", "main", "update_firmware", firmware_update_request=request)

        installed = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
        refused = ["Downloading", "Downloaded", "InvalidSignature"]
        assert await update(1, wrapped) == "Accepted"
        assert await recorder.wait_for(recorder.firmware, 5) == installed
        assert await update(2, wrapped.replace("\n", "\r\n")) == "Accepted"
        assert (await recorder.wait_for(recorder.firmware, 10))[5:] == installed
        assert await update(3, wrapped.replace(lines[1], lines[1][:10] + "*" + lines[1][11:])) == "Accepted"
        assert (await recorder.wait_for(recorder.firmware, 13))[10:] == refused
        assert await update(4, unwrapped[:-1]) == "Accepted"
        assert (await recorder.wait_for(recorder.firmware, 16))[13:] == refused
    assert [call["content"].encode("latin-1") for call in installer.calls] == [IMAGE, IMAGE]
