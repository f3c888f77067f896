"""Security profiles 0-3 (OCPP 1.6 Security whitepaper): connection parameters per profile, the
upgrade-only SecurityProfile key with fallback, and security events."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everpy.ocpp.v16.chargepoint import rfc3339

if TYPE_CHECKING:
    from everpy.ocpp.v16.chargepoint import ChargePoint16

FALLBACK_AFTER_FAILURES = 3
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
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.csms_ca_file or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are not affected by this list
            if profile == 3:
                context.load_cert_chain(settings.client_cert_file, settings.client_key_file)
        return ConnectionParameters(url, headers, context)

    def _prerequisites_met(self, profile: int) -> bool:
        settings = self.cp.settings
        if profile in (1, 2) and not self.cp.config.str("AuthorizationKey"):
            return False
        if profile >= 2 and not (settings.csms_ca_file and Path(settings.csms_ca_file).is_file()):
            return False
        return profile != 3 or (Path(settings.client_cert_file).is_file() and Path(settings.client_key_file).is_file())

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
