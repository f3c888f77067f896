"""The Security whitepaper's messages for OCPP 1.6 (certificates, signed firmware, logs, extended
trigger) and security events. Connection security itself (profiles, TLS, Basic auth) is shared:
:mod:`everpy.ocpp.security`, fed by :class:`SecuritySettings16`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.certificates import CertificateStore, hash_data
from everpy.ocpp.firmware_requests import firmware_request, log_request
from everpy.ocpp.rpc import Reply
from everpy.ocpp.security import SecurityEvents
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.firmware import Firmware
from everpy.ocpp.v16.trigger import Trigger, triggered

FIRMWARE_ANSWERS = {"Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"}
CSMS_ROOT = "CentralSystemRootCertificate"
CERTIFICATE_USES = (CSMS_ROOT, "ManufacturerRootCertificate")
# Security whitepaper: the events the CSMS must be told about (others: the security log only)
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "FailedToAuthenticateAtCentralSystem", "CentralSystemFailedToAuthenticate",
    "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared",
    "ReconfigurationOfSecurityParameters", "MemoryExhaustion", "InvalidMessages", "AttemptedReplayAttacks",
    "TamperDetectionActivated", "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate", "InvalidChargePointCertificate", "InvalidTLSVersion",
    "InvalidTLSCipherSuite",
})


@dataclass
class SecuritySettings16:
    """The shared connection security's view of the 1.6 keys and the module's settings."""

    config: Configuration
    charge_point_id: str
    csms_url: str
    csms_ca_file: str
    basic_auth_raw_key: bool
    certificate_store_dir: str
    client_cert_file: str = ""
    client_key_file: str = ""

    def profile(self) -> int:
        return self.config.int("SecurityProfile")

    def set_profile(self, profile: int) -> None:
        self.config.set("SecurityProfile", str(profile))

    def basic_auth_password(self) -> str:
        return self.config.str("AuthorizationKey")

    def client_certificate_files(self) -> tuple[Path, Path]:
        store = Path(self.certificate_store_dir)
        return (Path(self.client_cert_file or store / "charge-point.pem"),
                Path(self.client_key_file or store / "charge-point.key"))


class SecurityExtension:
    def __init__(self, ctx: BlockContext[Configuration], settings: SecuritySettings16, certificates: CertificateStore,
                 events: SecurityEvents, connectors: Connectors, firmware: Firmware, trigger: Trigger,
                 common_name: str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.certificates = certificates
        self.events = events
        self.connectors = connectors
        self.firmware = firmware
        self.trigger = trigger
        self._common_name = common_name

    @handles("InstallCertificate")
    async def on_install_certificate(self, payload: dict[str, Any]) -> Reply:
        status = self.certificates.install(payload["certificateType"], payload["certificate"], self.ctx.clock.utcnow())
        if status == "Accepted":
            self.events.record("ReconfigurationOfSecurityParameters", f"{payload['certificateType']} installed")
        return Reply({"status": status})

    @handles("DeleteCertificate")
    async def on_delete_certificate(self, payload: dict[str, Any]) -> Reply:
        deleted = self.certificates.delete(payload["certificateHashData"])
        return Reply({"status": "Accepted" if deleted else "NotFound"})

    @handles("GetInstalledCertificateIds")
    async def on_get_installed_certificate_ids(self, payload: dict[str, Any]) -> Reply:
        found = [hash_data(c) for c in self.certificates.installed(payload["certificateType"])]
        if not found:
            return Reply({"status": "NotFound"})
        return Reply({"status": "Accepted", "certificateHashData": found})

    async def sign_certificate(self) -> None:
        """New key pair and CSR (CN = serial number, O = CpoName) sent with SignCertificate."""
        csr = self.certificates.new_csr(self._common_name, self.ctx.config.str("CpoName"))
        answer = await self.ctx.sender.call_or_log("SignCertificate", {"csr": csr})
        if answer is not None and answer["status"] != "Accepted":
            self.ctx.log.warning("the CSMS refused to sign the station certificate")

    @handles("CertificateSigned")
    async def on_certificate_signed(self, payload: dict[str, Any]) -> Reply:
        chain = payload["certificateChain"]
        cert_file, key_file = self.settings.client_certificate_files()
        if len(chain) > self.ctx.config.int("CertificateSignedMaxChainSize") or not self.certificates.accept_signed(
                chain, cert_file, key_file, self.ctx.clock.utcnow()):
            self.events.record("InvalidChargePointCertificate", "CertificateSigned does not match the pending key")
            return Reply({"status": "Rejected"})
        self.settings.client_cert_file, self.settings.client_key_file = str(cert_file), str(key_file)
        self.ctx.log.warning("new station certificate installed")
        if self.settings.profile() == 3:
            self.ctx.clock.call_later(0.5, self.ctx.sender.request_reconnect)  # used from the next connection on
        return Reply({"status": "Accepted"})

    @handles("SignedUpdateFirmware")
    async def on_signed_update_firmware(self, payload: dict[str, Any]) -> Reply:
        firmware = payload["firmware"]
        request = firmware_request(payload["requestId"], firmware["location"], firmware["retrieveDateTime"],
                                   payload.get("retries"), payload.get("retryInterval"),
                                   install_timestamp=firmware.get("installDateTime"),
                                   signing_certificate=firmware["signingCertificate"],
                                   signature=firmware["signature"])
        answer = await self.ctx.station.update_firmware(request)
        if answer == "InvalidCertificate":
            self.events.record("InvalidFirmwareSigningCertificate", "signing certificate not trusted")
        return Reply({"status": answer if answer in FIRMWARE_ANSWERS else "Rejected"})

    @handles("GetLog")
    async def on_get_log(self, payload: dict[str, Any]) -> Reply:
        log = payload["log"]
        request = log_request(payload["requestId"], log["remoteLocation"], log.get("oldestTimestamp"),
                              log.get("latestTimestamp"), payload.get("retries"), payload.get("retryInterval"),
                              payload["logType"])
        status, file_name = await self.ctx.station.upload_logs(request)
        answer: dict[str, Any] = {"status": status if status in ("Accepted", "Rejected", "AcceptedCanceled")
                                  else "Rejected"}
        if file_name and answer["status"] != "Rejected":
            answer["filename"] = file_name[:255]
        return Reply(answer)

    @handles("ExtendedTriggerMessage")
    async def on_extended_trigger_message(self, payload: dict[str, Any]) -> Reply:
        requested, connector_id = payload["requestedMessage"], payload.get("connectorId")
        if connector_id not in (None, 0) and connector_id not in self.connectors:
            return Reply({"status": "Rejected"})
        senders = {**self.trigger.senders(connector_id),
                   "LogStatusNotification": self.firmware.send_log_status,
                   "FirmwareStatusNotification": self.firmware.send_signed_firmware_status,
                   "SignChargePointCertificate": self.sign_certificate}
        sender = senders.get(requested)
        if sender is None:
            return Reply({"status": "NotImplemented"})
        return Reply({"status": "Accepted"}, triggered(sender))
