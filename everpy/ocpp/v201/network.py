"""Network connection profiles of a 2.0.1 station and the shared connection security's view of them
(functional blocks A and B: SetNetworkProfile, NetworkConfigurationPriority, the profile upgrade).

Slot 0 is the CSMS of the module config (its URL; the security profile from ``SecurityCtrlr.SecurityProfile``
of the initial configuration). SetNetworkProfile fills slots 1..8, persisted; the slot in use is chosen at
start from ``OCPPCommCtrlr.NetworkConfigurationPriority`` (so a new order takes effect with the next
reset, as A19 does it), and after ``NetworkProfileConnectionAttempts`` failed attempts the next slot of that
order is tried. Once a connection with security profile *p* succeeded, no slot below *p* is used or accepted
again: the security profile never goes down (A05.FR.07, TC_A_22).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.variables.comm import (
    ACTIVE_NETWORK_PROFILE,
    NETWORK_CONFIGURATION_PRIORITY,
    NETWORK_PROFILE_CONNECTION_ATTEMPTS,
)
from everpy.ocpp.v201.variables.security import BASIC_AUTH_PASSWORD, SECURITY_PROFILE

Ctx = BlockContext[DeviceModel]
KIND = "network_profile"
HIGHEST = "network_profile_highest"  # record 0: the highest security profile a connection succeeded with
SLOTS = range(1, 9)  # slot 0 is the module's configured CSMS
URL_MAX = 512
INTERFACES = {"Wired0", "Wired1", "Wired2", "Wired3", "Wireless0", "Wireless1", "Wireless2", "Wireless3"}


@dataclass(frozen=True)
class Slot:
    number: int
    url: str
    security_profile: int


def connection_problem(data: Any, current_profile: int) -> str | None:
    """Why a connectionData cannot be used by this station (None: it can): only what it can honour."""
    if not isinstance(data, dict):
        return "connectionData is not an object"
    if data.get("ocppVersion") != "OCPP20":
        return "this station speaks OCPP 2.0.1 (ocppVersion OCPP20) only"
    if data.get("ocppTransport") != "JSON":
        return "ocppTransport must be JSON"
    if "vpn" in data or "apn" in data:
        return "VPN and APN settings are not supported"
    if data.get("ocppInterface") not in INTERFACES:
        return "unknown ocppInterface"
    timeout = data.get("messageTimeout")
    if type(timeout) is not int or not 1 <= timeout <= 600:
        return "messageTimeout is not 1..600 s"
    profile = data.get("securityProfile")
    if type(profile) is not int or not 0 <= profile <= 3:
        return "securityProfile is not 0..3"
    if profile < current_profile:
        return f"security profile {profile} is below {current_profile}, which the station already uses"
    url = data.get("ocppCsmsUrl")
    if not isinstance(url, str) or not 1 <= len(url) <= URL_MAX:
        return f"ocppCsmsUrl is not 1..{URL_MAX} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return "ocppCsmsUrl is not a ws:// or wss:// URL with a host"
    if profile >= 2 and parts.scheme != "wss":
        return "security profiles 2 and 3 need wss://"
    return None


class NetworkProfiles:
    """SetNetworkProfile and the choice of the slot in use."""

    def __init__(self, ctx: Ctx, configured_url: str, prerequisites_met: Callable[[int], bool]) -> None:
        self.ctx = ctx
        self.prerequisites_met = prerequisites_met  # the shared ConnectionSecurity's check of a profile
        self.configured = Slot(0, configured_url, ctx.config.int(SECURITY_PROFILE))
        self.active = self.configured
        self._failures = 0
        self._order: list[int] = []
        self._highest = self._read_highest()  # written through on change; read from the store once

    # -- the slots ---------------------------------------------------------------------------------
    def slots(self) -> dict[int, Slot]:
        """The usable slots; a persisted slot that does not check out is quarantined, never used."""
        found = {0: self.configured}
        for number, data in self.ctx.store.records(KIND).items():
            problem = connection_problem(data, 0) if number in SLOTS else "not a slot 1..8"
            if problem is not None:
                self.ctx.store.drop_record(KIND, number, data, problem)
                continue
            found[number] = Slot(number, data["ocppCsmsUrl"], data["securityProfile"])
        return found

    def _read_highest(self) -> int:
        record = self.ctx.store.records(HIGHEST).get(0)
        if record is None:
            return 0
        value = record.get("profile")
        if type(value) is not int or not 0 <= value <= 3:
            self.ctx.store.drop_record(HIGHEST, 0, record, "not a security profile 0..3")
            return 0
        return value

    def highest_profile(self) -> int:
        """The highest security profile a connection succeeded with (persisted)."""
        return self._highest

    def choose(self) -> Slot:
        """At start: the first slot of NetworkConfigurationPriority that exists and is not below the
        highest profile used so far (slot 0 when none is)."""
        slots, floor = self.slots(), self.highest_profile()
        priority = [int(s) for s in self.ctx.config.str(NETWORK_CONFIGURATION_PRIORITY).split(",") if s.strip()]
        self._order = [n for n in priority if n in slots and slots[n].security_profile >= floor] or [0]
        self._activate(slots[self._order[0]])
        return self.active

    def _activate(self, slot: Slot) -> None:
        self.active, self._failures = slot, 0
        self.ctx.config.set_internal(SECURITY_PROFILE, str(slot.security_profile))
        self.ctx.config.set_internal(ACTIVE_NETWORK_PROFILE, str(slot.number))

    def attempt(self, connected: bool) -> None:
        """Each connection attempt's outcome: success raises the floor; enough failures move to the next
        slot of the priority list (B10.FR.xx), round and round."""
        if connected:
            self._failures = 0
            if self.active.security_profile > self._highest:
                self.ctx.store.put_record(HIGHEST, 0, {"profile": self.active.security_profile})
                self._highest = self.active.security_profile
            return
        self._failures += 1
        if self._failures < self.ctx.config.int(NETWORK_PROFILE_CONNECTION_ATTEMPTS) or len(self._order) < 2:
            return
        slots = self.slots()
        following = self._order[(self._order.index(self.active.number) + 1) % len(self._order)] \
            if self.active.number in self._order else self._order[0]
        if following in slots:
            self.ctx.log.warning("no connection over network profile %d; trying slot %d", self.active.number,
                                 following)
            self._activate(slots[following])

    # -- SetNetworkProfile (B09) -------------------------------------------------------------------
    @handles("SetNetworkProfile")
    async def on_set_network_profile(self, payload: dict[str, Any]) -> Reply:
        slot, data = payload["configurationSlot"], payload["connectionData"]
        problem = self._refusal(slot, data)
        if problem is not None:
            self.ctx.log.warning("SetNetworkProfile for slot %s rejected: %s", slot, problem)
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "InvalidNetworkConf",
                                                               "additionalInfo": problem[:512]}})
        self.ctx.store.put_record(KIND, slot, {k: data[k] for k in (
            "ocppVersion", "ocppTransport", "ocppCsmsUrl", "messageTimeout", "securityProfile", "ocppInterface")})
        return Reply({"status": "Accepted"})

    def _refusal(self, slot: Any, data: Any) -> str | None:
        if type(slot) is not int or slot not in SLOTS:
            return f"configurationSlot must be {SLOTS.start}..{SLOTS.stop - 1} (slot 0 is the configured CSMS)"
        if slot == self.active.number:
            return "the slot is in use"
        floor = max(self.highest_profile(), self.active.security_profile)
        if (problem := connection_problem(data, floor)) is not None:
            return problem
        profile = data["securityProfile"]
        if profile in (1, 2) and not self.ctx.config.str(BASIC_AUTH_PASSWORD):
            return "no SecurityCtrlr.BasicAuthPassword is set"
        if not self.prerequisites_met(profile):
            return f"security profile {profile} lacks its certificates"
        return None


@dataclass
class SecuritySettings201:
    """The shared connection security's view of the 2.0.1 device model, the network profile in use and the
    module's settings."""

    model: DeviceModel
    charge_point_id: str
    configured_url: str
    csms_ca_file: str
    certificate_store_dir: str
    client_cert_file: str = ""
    client_key_file: str = ""
    basic_auth_raw_key: bool = False  # 2.0.1 sends the password string (Part 4 §A.1)
    profiles: NetworkProfiles | None = None  # set once the block exists

    @property
    def csms_url(self) -> str:
        return self.configured_url if self.profiles is None else self.profiles.active.url

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
