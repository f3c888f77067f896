"""The OCPP station's settings from the OCPP module's config, for every OCPP version."""

from __future__ import annotations

from dataclasses import dataclass, field

from everpy.ocpp.pacing import PacingSettings


@dataclass
class StationSettings:
    """Station settings from the module config (not OCPP configuration keys or device model variables), the
    same for every OCPP version."""

    charge_point_id: str
    central_system_uri: str  # ws(s)://host:port/path; the charge point id is appended
    vendor: str = "everpy"
    model: str = "everpy-sil"
    serial_number: str = ""
    firmware_version: str = ""
    initial_configuration: dict[str, str] = field(default_factory=dict)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    response_timeout_s: float = 30.0
    boot_retry_default_s: float = 60.0
    reset_drain_timeout_s: float = 30.0
    csms_ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    basic_auth_raw_key: bool = False  # OCPP-J 6.2.2 example encodes the key bytes; most CSMS use the string
    certificate_store_dir: str = "run/ocpp-certificates"
    time_from_csms: bool = False  # set the system clock from BootNotification/Heartbeat answers
    status_pacing: PacingSettings = field(default_factory=PacingSettings)  # StatusNotifications per connector
