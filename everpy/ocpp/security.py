"""Security profiles 1-3, shared by every OCPP version: connection parameters (URL scheme, Basic auth,
TLS 1.2+ with the whitepaper's cipher suites, client certificate), the upgrade-only profile change with
fallback after failed attempts, the CSMS-certificate security event, and the security event log.

A version feeds it a :class:`SecuritySettings` view, so nothing here knows a configuration key's name
(1.6 ``SecurityProfile``/``AuthorizationKey``, 2.0.1 ``SecurityCtrlr.*`` and network profiles).
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext
from everpy.ocpp.certificates import CertificateStore
from everpy.ocpp.values import rfc3339

FALLBACK_AFTER_FAILURES = 3
# Security whitepaper: both AES-128-GCM-SHA256 and AES-256-GCM-SHA384, with ECDSA or RSA keys
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")


class SecuritySettings(Protocol):
    """The station's security configuration as one version stores it."""

    charge_point_id: str
    csms_ca_file: str
    basic_auth_raw_key: bool  # OCPP-J 1.6 §6.2.2's example encodes the key bytes; most CSMS use the string

    @property
    def csms_url(self) -> str:
        """ws(s)://host:port/path of the CSMS; the charge point id is appended."""
        ...

    def profile(self) -> int: ...

    def set_profile(self, profile: int) -> None: ...

    def basic_auth_password(self) -> str: ...

    def client_certificate_files(self) -> tuple[Path, Path]: ...


@dataclass
class ConnectionParameters:
    url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None


class ConnectionSecurity:
    def __init__(self, settings: SecuritySettings, certificates: CertificateStore, csms_root_use: str,
                 bad_csms_certificate_event: str, log: logging.Logger, on_event: Callable[[str, str], None],
                 on_attempt: Callable[[bool], None] = lambda connected: None) -> None:
        self.settings = settings
        self.certificates = certificates
        self.csms_root_use = csms_root_use  # the certificate-use name of CSMS roots in this version
        self.bad_csms_certificate_event = bad_csms_certificate_event  # this version's security event name
        self.log = log
        self._on_event = on_event  # (security event type, info)
        self._on_attempt = on_attempt  # told of every connection attempt's outcome (True: connected)
        self._previous_profile: int | None = None  # set while trying a freshly raised profile
        self._failures_with_new_profile = 0

    def parameters(self) -> ConnectionParameters:
        settings = self.settings
        profile = settings.profile()
        base = settings.csms_url.split("://", 1)[-1].rstrip("/")
        url = f"{'wss' if profile >= 2 else 'ws'}://{base}/{settings.charge_point_id}"
        headers: dict[str, str] = {}
        if profile in (1, 2):
            password = settings.basic_auth_password()
            secret = bytes.fromhex(password) if settings.basic_auth_raw_key else password.encode()
            token = base64.b64encode(settings.charge_point_id.encode() + b":" + secret).decode()
            headers["Authorization"] = f"Basic {token}"
        context = None
        if profile >= 2:
            installed_roots = self.certificates.roots_pem(self.csms_root_use)
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.csms_ca_file or None,
                                                 cadata=installed_roots or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are not affected by this list
            if profile == 3:
                context.load_cert_chain(*settings.client_certificate_files())
        return ConnectionParameters(url, headers, context)

    def prerequisites_met(self, profile: int) -> bool:
        settings = self.settings
        if profile in (1, 2) and not settings.basic_auth_password():
            return False
        has_root = bool(settings.csms_ca_file and Path(settings.csms_ca_file).is_file()) or bool(
            self.certificates.installed(self.csms_root_use))
        if profile >= 2 and not has_root:
            return False
        cert_file, key_file = settings.client_certificate_files()
        return profile != 3 or (cert_file.is_file() and key_file.is_file())

    def raise_profile(self, profile: int) -> bool:
        """Only upwards, only with prerequisites; the caller reconnects after its answer is out."""
        current = self.settings.profile()
        if profile <= current or not self.prerequisites_met(profile):
            return False
        self._previous_profile = current
        self._failures_with_new_profile = 0
        self.settings.set_profile(profile)
        self.log.warning("security profile raised from %d to %d; reconnecting", current, profile)
        return True

    def failed(self, error: Exception) -> None:
        self._on_attempt(False)
        if isinstance(error, ssl.SSLCertVerificationError):
            self._on_event(self.bad_csms_certificate_event, str(error)[:255])
        if self._previous_profile is None:
            return
        self._failures_with_new_profile += 1
        if self._failures_with_new_profile >= FALLBACK_AFTER_FAILURES:
            self.log.error("cannot connect with security profile %d; falling back to %d",
                           self.settings.profile(), self._previous_profile)
            self.settings.set_profile(self._previous_profile)
            self._previous_profile = None

    def succeeded(self) -> None:
        self._on_attempt(True)
        self._previous_profile = None


class SecurityEvents:
    """Security events: always logged and published on the ocpp interface; the critical ones (each version
    names its own set) are also queued persistently for the CSMS as SecurityEventNotification, so they
    survive being offline. The payload (type, timestamp, techInfo) is the same in every version."""

    def __init__(self, ctx: BlockContext[Any], critical_events: frozenset[str]) -> None:
        self.ctx = ctx
        self.critical_events = critical_events

    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        timestamp = rfc3339(self.ctx.clock.time())
        event: dict[str, Any] = {"type": kind[:50], "timestamp": timestamp}  # the ocpp interface's limits
        if info:
            event["info"] = info[:255]
        critical = kind in self.critical_events if critical is None else critical
        event["critical"] = critical
        self.ctx.log.warning("security event %s %s", kind, info)
        self.ctx.station.publish("security_event", event)
        if critical:
            payload: dict[str, Any] = {"type": kind[:50], "timestamp": timestamp}
            if info:
                payload["techInfo"] = info[:255]
            with self.ctx.store.atomic():
                self.ctx.sender.queue("SecurityEventNotification", payload, None)
