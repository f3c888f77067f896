"""The 1.6 security extension messages that go through the System module: SignedUpdateFirmware with a
really signed image, GetLog to a real FTP server, ExtendedTriggerMessage."""

from __future__ import annotations

from pathlib import Path

from everpy.csms import Csms

from ..system.servers import FtpServer, HttpServer
from .certs import make_firmware_signer
from .station import WAIT_S, sil_station

IMAGE = b"signed everpy firmware 3.0\n" * 200


def _signed_statuses(csms: Csms) -> list[tuple[str, int]]:
    notifications = csms.messages("SignedFirmwareStatusNotification")
    return [(r.payload["status"], r.payload.get("requestId")) for r in notifications]


async def test_signed_update_firmware_verified_and_installed(tmp_path: Path, csms: Csms):
    ca, certificate, signature = make_firmware_signer(tmp_path / "fw", IMAGE)
    async with HttpServer(tmp_path / "http") as http:
        (http.root / "fw.bin").write_bytes(IMAGE)
        async with sil_station(tmp_path, csms, system={"firmware_signing_ca_file": str(ca)}) as station:
            answer = await station.call("SignedUpdateFirmware", requestId=17, firmware={
                "location": http.url("/files/fw.bin"), "retrieveDateTime": "2020-01-01T00:00:00Z",
                "signingCertificate": certificate, "signature": signature})
            assert answer == {"status": "Accepted"}
            await csms.wait_for("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", WAIT_S)
            statuses = _signed_statuses(csms)
            assert ("SignatureVerified", 17) in statuses and statuses[-1] == ("Installed", 17)
            assert not csms.messages("FirmwareStatusNotification")  # the plain 1.6 notification is not used


async def test_signed_update_with_an_untrusted_certificate_is_refused(tmp_path: Path, csms: Csms):
    trusted_ca, _, _ = make_firmware_signer(tmp_path / "trusted", IMAGE)
    _, foreign_certificate, signature = make_firmware_signer(tmp_path / "foreign", IMAGE, ca_name="someone")
    async with sil_station(tmp_path, csms, system={"firmware_signing_ca_file": str(trusted_ca)}) as station:
        answer = await station.call("SignedUpdateFirmware", requestId=18, firmware={
            "location": "http://127.0.0.1:9/fw.bin", "retrieveDateTime": "2020-01-01T00:00:00Z",
            "signingCertificate": foreign_certificate, "signature": signature})
        assert answer == {"status": "InvalidCertificate"}
        assert await csms.wait_for("SecurityEventNotification",
                                   lambda p: p["type"] == "InvalidFirmwareSigningCertificate", timeout=WAIT_S)


async def test_get_log_security_log_to_ftp_and_extended_trigger(tmp_path: Path, csms: Csms):
    with FtpServer(tmp_path / "ftp") as ftp:
        async with sil_station(tmp_path, csms) as station:
            (tmp_path / "logs" / "everpy.log").write_text("a log line\n")
            answer = await station.call("GetLog", logType="SecurityLog", requestId=5,
                                        log={"remoteLocation": ftp.url("/")})
            assert answer["status"] == "Accepted" and answer["filename"]
            await csms.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", WAIT_S)
            assert [(r.payload["status"], r.payload["requestId"]) for r in csms.messages("LogStatusNotification")] \
                == [("Uploading", 5), ("Uploaded", 5)]
            mark = len(csms.received)
            assert (await station.call("ExtendedTriggerMessage", requestedMessage="LogStatusNotification")) \
                == {"status": "Accepted"}
            again = await csms.wait_for("LogStatusNotification", after=mark)
            assert again.payload == {"status": "Uploaded", "requestId": 5}
            assert (await station.call("ExtendedTriggerMessage", requestedMessage="Heartbeat"))["status"] \
                == "Accepted"
            await csms.wait_for("Heartbeat", after=mark)
            assert (await station.call("ExtendedTriggerMessage", requestedMessage="SignChargePointCertificate")) \
                == {"status": "Accepted"}
            assert "CERTIFICATE REQUEST" in (await csms.wait_for("SignCertificate", after=mark)).payload["csr"]
