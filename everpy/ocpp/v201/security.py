"""Functional blocks A (security: security events, the station certificate) and M (certificate management)
of OCPP 2.0.1.

Connection security itself (profiles, TLS, Basic auth) is shared by every version
(:mod:`everpy.ocpp.security`); so is the certificate store (:mod:`everpy.ocpp.certificates`). What is
2.0.1's own: the names of the certificate uses and security events, and the messages below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.certificates import CertificateStore, hash_data, issued_as, same_certificate
from everpy.ocpp.rpc import Reply
from everpy.ocpp.security import SecurityEvents, SecuritySettings
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.variables.security import (
    CERT_SIGNING_REPEAT_TIMES,
    CERT_SIGNING_WAIT_MINIMUM,
    CERTIFICATE_ENTRIES,
    MAX_CERTIFICATE_CHAIN_SIZE,
    ORGANIZATION_NAME,
    SECURITY_PROFILE,
)

Ctx = BlockContext[DeviceModel]

CSMS_ROOT = "CSMSRootCertificate"
# InstallCertificateUseEnumType: the roots the CSMS may install (the store keeps one folder per use)
CERTIFICATE_USES = ROOT_USES = (CSMS_ROOT, "ManufacturerRootCertificate", "V2GRootCertificate", "MORootCertificate")
# GetCertificateIdUseEnumType adds the V2G chain, which this station (no ISO 15118) never holds
REPORTED_USES = (*ROOT_USES, "V2GCertificateChain")
STATION_CERTIFICATE = "ChargingStationCertificate"

# OCPP 2.0.1 Part 2, Appendix 1: the security events the CSMS is told about (SecurityEventNotification);
# the others go to the security log only.
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared",
    "ReconfigurationOfSecurityParameters", "MemoryExhaustion", "TamperDetectionActivated",
    "MaintenanceLoginAccepted", "MaintenanceLoginFailed",
})


def security_events(ctx: Ctx) -> SecurityEvents:
    return SecurityEvents(ctx, CRITICAL_EVENTS)


class Certificates:
    """InstallCertificate, GetInstalledCertificateIds, DeleteCertificate (M) and the station certificate's
    renewal: SignCertificate, CertificateSigned (A02/A03)."""

    def __init__(self, ctx: Ctx, events: SecurityEvents, store: CertificateStore, settings: SecuritySettings,
                 common_name: str, csms_ca_file: str) -> None:
        self.ctx, self.events, self.store, self.settings = ctx, events, store, settings
        self.common_name = common_name  # CN of the station certificate: its serial number
        self.csms_ca_file = csms_ca_file
        self._resend: TimerHandle | None = None
        self._count_entries()

    def _count_entries(self) -> None:
        self.ctx.config.set_internal(CERTIFICATE_ENTRIES, str(sum(len(self.store.installed(u)) for u in ROOT_USES)))

    # -- M: the roots ------------------------------------------------------------------------------
    @handles("InstallCertificate")
    async def on_install_certificate(self, payload: dict[str, Any]) -> Reply:
        use = payload["certificateType"]
        status = self.store.install(use, payload["certificate"], self.ctx.clock.utcnow())
        if status == "Accepted":
            self._count_entries()
            self.events.record("ReconfigurationOfSecurityParameters", f"{use} installed")
            return Reply({"status": status})
        reason = "InvalidCertificate" if status == "Rejected" else "StorageFull"
        return Reply({"status": status, "statusInfo": {"reasonCode": reason}})

    @handles("GetInstalledCertificateIds")
    async def on_get_installed_certificate_ids(self, payload: dict[str, Any]) -> Reply:
        uses = payload.get("certificateType") or list(REPORTED_USES)
        chain = [{"certificateType": use, "certificateHashData": hash_data(certificate)}
                 for use in uses if use in ROOT_USES for certificate in self.store.installed(use)]
        if not chain:
            return Reply({"status": "NotFound"})
        return Reply({"status": "Accepted", "certificateHashDataChain": chain})

    @handles("DeleteCertificate")
    async def on_delete_certificate(self, payload: dict[str, Any]) -> Reply:
        wanted = payload["certificateHashData"]
        if self._is_station_certificate(wanted):  # M04.FR.06: the station certificate stays
            return Reply({"status": "Failed", "statusInfo": {"reasonCode": "StationCertificate"}})
        if self._is_last_csms_root(wanted):  # the next TLS connection would have nothing to trust
            return Reply({"status": "Failed", "statusInfo": {"reasonCode": "LastCSMSRoot"}})
        if not self.store.delete(wanted):
            return Reply({"status": "NotFound"})
        self._count_entries()
        self.events.record("ReconfigurationOfSecurityParameters", "a certificate was deleted")
        return Reply({"status": "Accepted"})

    def _is_station_certificate(self, wanted: dict[str, Any]) -> bool:
        cert_file, _ = self.settings.client_certificate_files()
        try:
            chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
        except (OSError, ValueError):
            return False
        if not chain:
            return False
        leaf, issuer = chain[0], next((c for c in chain[1:] if c.subject == chain[0].issuer), None)
        return same_certificate(hash_data(leaf, issuer), wanted) if issuer else issued_as(leaf, wanted)

    def _is_last_csms_root(self, wanted: dict[str, Any]) -> bool:
        if self.ctx.config.int(SECURITY_PROFILE) < 2 or self.csms_ca_file:
            return False
        roots = self.store.installed(CSMS_ROOT)
        return len(roots) == 1 and same_certificate(hash_data(roots[0]), wanted)

    # -- A02/A03: the station certificate ----------------------------------------------------------
    async def trigger_sign_certificate(self, use: str) -> str:
        """TriggerMessage SignChargingStationCertificate: Accepted, then the SignCertificate; a V2G
        certificate is Rejected (no ISO 15118 here)."""
        if use != STATION_CERTIFICATE:
            return "Rejected"
        self.ctx.jobs.spawn(self.sign_certificate())
        return "Accepted"

    async def sign_certificate(self, attempt: int = 0) -> None:
        """A fresh key pair and CSR (CN = serial number, O = SecurityCtrlr.OrganizationName); when no
        CertificateSigned follows, resent after CertSigningWaitMinimum doubling, CertSigningRepeatTimes
        times (A02.FR.17)."""
        self._cancel_resend()
        csr = self.store.new_csr(self.common_name, self.ctx.config.str(ORGANIZATION_NAME))
        answer = await self.ctx.sender.call_or_log("SignCertificate", {"csr": csr,
                                                                       "certificateType": STATION_CERTIFICATE})
        if answer is None:
            return
        if answer["status"] != "Accepted":
            self.ctx.log.warning("the CSMS refused to sign the station certificate")
            return
        if attempt < self.ctx.config.int(CERT_SIGNING_REPEAT_TIMES):
            wait = self.ctx.config.int(CERT_SIGNING_WAIT_MINIMUM) * 2 ** attempt
            self._resend = self.ctx.clock.call_later(wait, self._spawn(self.sign_certificate, attempt + 1))

    def _spawn(self, job: Callable[[int], Any], attempt: int) -> Callable[[], None]:
        def run() -> None:
            self.ctx.jobs.spawn(job(attempt))
        return run

    def _cancel_resend(self) -> None:
        if self._resend is not None:
            self._resend.cancel()
            self._resend = None

    @handles("CertificateSigned")
    async def on_certificate_signed(self, payload: dict[str, Any]) -> Reply:
        chain = payload["certificateChain"]
        if payload.get("certificateType", STATION_CERTIFICATE) != STATION_CERTIFICATE:
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedType"}})
        cert_file, key_file = self.settings.client_certificate_files()
        if len(chain.encode()) > self.ctx.config.int(MAX_CERTIFICATE_CHAIN_SIZE) or not self.store.accept_signed(
                chain, cert_file, key_file, self.ctx.clock.utcnow()):
            self.events.record("InvalidChargingStationCertificate", "CertificateSigned does not match the pending key")
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate"}})
        self._cancel_resend()
        self.ctx.log.warning("new station certificate installed")
        self.events.record("ReconfigurationOfSecurityParameters", "new charging station certificate")
        if self.settings.profile() == 3:  # A02.FR.05: the new certificate from the next connection on
            return Reply({"status": "Accepted"}, self._reconnect)
        return Reply({"status": "Accepted"})

    async def _reconnect(self) -> None:
        self.ctx.sender.request_reconnect()

    def cancel_timers(self) -> None:
        self._cancel_resend()
