"""Network connection profiles of a 2.0.1 station and the shared connection security's view of them.

Slot 0 is the CSMS of the module config (its URL; the security profile from
``SecurityCtrlr.SecurityProfile`` of the initial configuration); SetNetworkProfile fills further slots and
``OCPPCommCtrlr.NetworkConfigurationPriority`` orders them (functional blocks A and B).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.variables.security import BASIC_AUTH_PASSWORD, SECURITY_PROFILE


@dataclass
class SecuritySettings201:
    """The shared connection security's view of the 2.0.1 device model and the module's settings."""

    model: DeviceModel
    charge_point_id: str
    csms_url: str
    csms_ca_file: str
    certificate_store_dir: str
    client_cert_file: str = ""
    client_key_file: str = ""
    basic_auth_raw_key: bool = False  # 2.0.1 sends the password string (Part 4 §A.1)

    def profile(self) -> int:
        return self.model.int(SECURITY_PROFILE)

    def set_profile(self, profile: int) -> None:
        self.model.set_internal(SECURITY_PROFILE, str(profile))

    def basic_auth_password(self) -> str:
        return self.model.str(BASIC_AUTH_PASSWORD)

    def client_certificate_files(self) -> tuple[Path, Path]:
        store = Path(self.certificate_store_dir)
        return (Path(self.client_cert_file or store / "charging-station.pem"),
                Path(self.client_key_file or store / "charging-station.key"))
