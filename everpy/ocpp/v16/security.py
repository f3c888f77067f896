"""Security profiles 0-3 (OCPP 1.6 Security whitepaper): connection parameters per profile, the
upgrade-only SecurityProfile key with fallback, and security events."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.certificates import CertificateStore, hash_data
from everpy.ocpp.v16.chargepoint import TRIGGERED, rfc3339
from everpy.ocpp.v16.firmware import firmware_request, log_request

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

FALLBACK_AFTER_FAILURES = 3
FIRMWARE_ANSWERS = {"Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"}
# Security whitepaper / OCPP 2.0.1 appendix: events the CSMS must be told about (others: security log only)
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "FailedToAuthenticateAtCentralSystem", "CentralSystemFailedToAuthenticate",
    "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared",
    "ReconfigurationOfSecurityParameters", "MemoryExhaustion", "InvalidMessages", "AttemptedReplayAttacks",
    "TamperDetectionActivated", "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate", "InvalidChargePointCertificate", "InvalidTLSVersion",
    "InvalidTLSCipherSuite",
})
# Security whitepaper: both AES-128-GCM-SHA256 and AES-256-GCM-SHA384, with ECDSA or RSA keys
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")


@dataclass
class ConnectionParameters:
    url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None


class Security:
    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp
        self._previous_profile: int | None = None  # set while trying a freshly raised profile
        self._failures_with_new_profile = 0
        self.certificates = CertificateStore(Path(cp.settings.certificate_store_dir),
                                             cp.config.int("CertificateStoreMaxLength"))
        for action, handler in {
            "InstallCertificate": self.on_install_certificate, "DeleteCertificate": self.on_delete_certificate,
            "GetInstalledCertificateIds": self.on_get_installed_certificate_ids,
            "CertificateSigned": self.on_certificate_signed,
        }.items():
            cp.handle(action, handler)
        cp.handle("SignedUpdateFirmware", self.on_signed_update_firmware)
        cp.handle("GetLog", self.on_get_log)
        cp.handle("ExtendedTriggerMessage", self.on_extended_trigger_message)

    # -- security extension messages (Security whitepaper edition 2, for OCPP 1.6) ------------------------
    async def on_install_certificate(self, payload: dict[str, Any]) -> Reply:
        status = self.certificates.install(payload["certificateType"], payload["certificate"], self.cp.clock.utcnow())
        if status == "Accepted":
            self.record_event("ReconfigurationOfSecurityParameters", f"{payload['certificateType']} installed")
        return Reply({"status": status})

    async def on_delete_certificate(self, payload: dict[str, Any]) -> Reply:
        deleted = self.certificates.delete(payload["certificateHashData"])
        return Reply({"status": "Accepted" if deleted else "NotFound"})

    async def on_get_installed_certificate_ids(self, payload: dict[str, Any]) -> Reply:
        found = [hash_data(c) for c in self.certificates.installed(payload["certificateType"])]
        if not found:
            return Reply({"status": "NotFound"})
        return Reply({"status": "Accepted", "certificateHashData": found})

    def station_certificate_files(self) -> tuple[Path, Path]:
        settings = self.cp.settings
        store = Path(settings.certificate_store_dir)
        return (Path(settings.client_cert_file or store / "charge-point.pem"),
                Path(settings.client_key_file or store / "charge-point.key"))

    async def sign_certificate(self) -> None:
        """New key pair and CSR (CN = serial number, O = CpoName) sent with SignCertificate."""
        settings = self.cp.settings
        common_name = settings.serial_number or settings.charge_point_id
        csr = self.certificates.new_csr(common_name, self.cp.config.str("CpoName"))
        answer = await self.cp.call_or_log("SignCertificate", {"csr": csr})
        if answer is not None and answer["status"] != "Accepted":
            self.cp.log.warning("the CSMS refused to sign the station certificate")

    async def on_certificate_signed(self, payload: dict[str, Any]) -> Reply:
        chain = payload["certificateChain"]
        cert_file, key_file = self.station_certificate_files()
        if len(chain) > self.cp.config.int("CertificateSignedMaxChainSize") or not self.certificates.accept_signed(
                chain, cert_file, key_file, self.cp.clock.utcnow()):
            self.record_event("InvalidChargePointCertificate", "CertificateSigned does not match the pending key")
            return Reply({"status": "Rejected"})
        self.cp.settings.client_cert_file, self.cp.settings.client_key_file = str(cert_file), str(key_file)
        self.cp.log.warning("new station certificate installed")
        if self.cp.config.int("SecurityProfile") == 3:
            self.cp.clock.call_later(0.5, self.cp.request_reconnect)  # use it from the next connection on
        return Reply({"status": "Accepted"})

    async def on_signed_update_firmware(self, payload: dict[str, Any]) -> Reply:
        firmware = payload["firmware"]
        request = firmware_request(payload["requestId"], firmware["location"], firmware["retrieveDateTime"],
                                   payload.get("retries"), payload.get("retryInterval"),
                                   install_timestamp=firmware.get("installDateTime"),
                                   signing_certificate=firmware["signingCertificate"],
                                   signature=firmware["signature"])
        answer = await self.cp.station.update_firmware(request)
        if answer == "InvalidCertificate":
            self.record_event("InvalidFirmwareSigningCertificate", "signing certificate not trusted")
        status = answer if answer in FIRMWARE_ANSWERS else "Rejected"
        return Reply({"status": status})

    async def on_get_log(self, payload: dict[str, Any]) -> Reply:
        log = payload["log"]
        request = log_request(payload["requestId"], log["remoteLocation"], log.get("oldestTimestamp"),
                              log.get("latestTimestamp"), payload.get("retries"), payload.get("retryInterval"),
                              payload["logType"])
        status, file_name = await self.cp.station.upload_logs(request)
        answer: dict[str, Any] = {"status": status if status in ("Accepted", "Rejected", "AcceptedCanceled")
                                  else "Rejected"}
        if file_name and answer["status"] != "Rejected":
            answer["filename"] = file_name[:255]
        return Reply(answer)

    async def on_extended_trigger_message(self, payload: dict[str, Any]) -> Reply:
        requested = payload["requestedMessage"]
        senders = {"LogStatusNotification": self.cp.firmware.send_log_status,
                   "FirmwareStatusNotification": self.cp.firmware.send_signed_firmware_status}
        if requested in senders:
            connector_id = payload.get("connectorId")
            if connector_id not in (None, 0) and connector_id not in self.cp.core.connectors:
                return Reply({"status": "Rejected"})
            sender = senders[requested]

            async def send() -> None:
                TRIGGERED.set(True)  # this task only: allowed even while the boot is Pending
                await sender()

            return Reply({"status": "Accepted"}, send)
        if requested == "SignChargePointCertificate":
            return Reply({"status": "Accepted"}, self.sign_certificate)
        # the messages TriggerMessage knows too: same behaviour
        return await self.cp.trigger.on_trigger_message(payload)

    def connection_parameters(self) -> ConnectionParameters:
        profile = self.cp.config.int("SecurityProfile")
        settings = self.cp.settings
        base = settings.central_system_uri.split("://", 1)[-1].rstrip("/")
        scheme = "wss" if profile >= 2 else "ws"
        url = f"{scheme}://{base}/{settings.charge_point_id}"
        headers: dict[str, str] = {}
        if profile in (1, 2):
            key = self.cp.config.str("AuthorizationKey")
            secret = bytes.fromhex(key) if settings.basic_auth_raw_key else key.encode()
            token = base64.b64encode(settings.charge_point_id.encode() + b":" + secret).decode()
            headers["Authorization"] = f"Basic {token}"
        context = None
        if profile >= 2:
            installed_roots = self.certificates.csms_roots_pem()
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.csms_ca_file or None,
                                                 cadata=installed_roots or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are not affected by this list
            if profile == 3:
                context.load_cert_chain(*self.station_certificate_files())
        return ConnectionParameters(url, headers, context)

    def _prerequisites_met(self, profile: int) -> bool:
        settings = self.cp.settings
        if profile in (1, 2) and not self.cp.config.str("AuthorizationKey"):
            return False
        has_root = bool(settings.csms_ca_file and Path(settings.csms_ca_file).is_file()) or bool(
            self.certificates.installed("CentralSystemRootCertificate"))
        if profile >= 2 and not has_root:
            return False
        cert_file, key_file = self.station_certificate_files()
        return profile != 3 or (cert_file.is_file() and key_file.is_file())

    def change_profile(self, profile: int) -> str:
        """ChangeConfiguration SecurityProfile: only upwards, only with prerequisites; then reconnect."""
        current = self.cp.config.int("SecurityProfile")
        if profile <= current or not self._prerequisites_met(profile):
            return "Rejected"
        self._previous_profile = current
        self._failures_with_new_profile = 0
        self.cp.config.set("SecurityProfile", str(profile))
        self.cp.log.warning("security profile raised from %d to %d; reconnecting", current, profile)
        self.cp.clock.call_later(0.5, self.cp.request_reconnect)  # after ChangeConfiguration.conf is out
        return "Accepted"

    def connection_failed(self, error: Exception) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self.record_event("InvalidCentralSystemCertificate", str(error)[:255])
        if self._previous_profile is None:
            return
        self._failures_with_new_profile += 1
        if self._failures_with_new_profile >= FALLBACK_AFTER_FAILURES:
            self.cp.log.error("cannot connect with security profile %s; falling back to %d",
                              self.cp.config.str("SecurityProfile"), self._previous_profile)
            self.cp.config.set("SecurityProfile", str(self._previous_profile))
            self._previous_profile = None

    def connection_succeeded(self) -> None:
        self._previous_profile = None

    def record_event(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        """A security event: always logged and published on the ocpp interface; critical ones are also
        queued persistently for the CSMS (SecurityEventNotification), so they survive being offline."""
        timestamp = rfc3339(self.cp.clock.time())
        event: dict[str, Any] = {"type": kind, "timestamp": timestamp}
        if info:
            event["info"] = info
        critical = kind in CRITICAL_EVENTS if critical is None else critical
        event["critical"] = critical
        self.cp.log.warning("security event %s %s", kind, info)
        self.cp.station.publish("security_event", event)
        if critical:
            payload: dict[str, Any] = {"type": kind[:50], "timestamp": timestamp}
            if info:
                payload["techInfo"] = info[:255]
            with self.cp.store.atomic():
                self.cp.queue_persistent("SecurityEventNotification", payload, None)
