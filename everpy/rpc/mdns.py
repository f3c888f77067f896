"""mDNS (DNS-SD) advertisement and discovery of satellite boards with python-zeroconf.

A satellite advertises ``<serial>._everpy-sat._tcp.local.`` with TXT ``serial``, ``version``,
``boot_id`` and ``proto``; the main board browses for the serial it was configured with. Both sides
choose their network interfaces explicitly, because a charger must keep mDNS off its control-pilot/PLC
interface, and neither advertises nor accepts loopback addresses unless asked (tests on one machine do).

zeroconf details that matter here: register/update/unregister return an awaitable that completes when
the packets are sent, hence ``await (await ...)``; a service without ``addresses`` never resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, NonUniqueNameException, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

# DNS-SD service labels are limited to 15 bytes: "_everpy-satellite" would be refused.
SERVICE_TYPE = "_everpy-sat._tcp.local."
RESOLVE_TIMEOUT_MS = 3000

_log = logging.getLogger("everpy.rpc.mdns")


def split_list(text: str) -> list[str]:
    """Config values are scalars in EVerest manifests: lists are written comma-separated."""
    return [item.strip() for item in text.split(",") if item.strip()]


def select_addresses(allow: list[str], deny: list[str], allow_loopback: bool) -> list[str]:
    """IPv4 addresses of the interfaces mDNS may use.

    ``allow``: interface names or IPv4 addresses (empty = every interface); ``deny`` wins over ``allow``.
    Loopback addresses are left out unless ``allow_loopback``.
    """
    selected = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            address = str(ip.ip)
            names = {adapter.name, adapter.nice_name, address}
            if allow and not names & set(allow):
                continue
            if names & set(deny):
                continue
            if ipaddress.IPv4Address(address).is_loopback and not allow_loopback:
                continue
            selected.append(address)
    return selected


@dataclass(frozen=True)
class SatelliteEndpoint:
    """Where a satellite is, as advertised."""

    serial: str
    host: str
    port: int
    boot_id: str
    version: str
    protocol: int


class SatelliteAdvertiser:
    """Advertises one satellite's RPC endpoint; ``update()`` changes the TXT, ``stop()`` says goodbye."""

    def __init__(self, serial: str, port: int, addresses: list[str], properties: dict[str, str]) -> None:
        if not addresses:
            raise ValueError("no network address left to advertise on (check the mDNS interface lists)")
        self.serial = serial
        self.port = port
        self.addresses = addresses
        self.properties = dict(properties, serial=serial)
        self._zeroconf: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None

    def _make_info(self) -> ServiceInfo:
        return ServiceInfo(
            SERVICE_TYPE,
            f"{self.serial}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(a) for a in self.addresses],
            port=self.port,
            properties=self.properties,
            server=f"everpy-sat-{self.serial}.local.",
        )

    async def start(self) -> None:
        """Register the advertisement. A name another responder holds already (a second board with the same
        serial, or another device) is no reason to stop: the advertisement is renamed, with a warning that
        names the conflict, and the board goes on (its charging never depended on being found)."""
        self._zeroconf = AsyncZeroconf(interfaces=self.addresses, ip_version=IPVersion.V4Only)
        self._info = self._make_info()
        try:  # zeroconf probes for the name first (RFC 6762 §8.1): a holder that answers raises here
            await (await self._zeroconf.async_register_service(self._info))
        except NonUniqueNameException:
            taken = self._info.name
            await (await self._zeroconf.async_register_service(self._info, allow_name_change=True))
            _log.warning("mDNS name %s is taken by another responder on %s (a second board with serial %s?); "
                         "advertising as %s instead: give every board its own serial", taken,
                         ", ".join(self.addresses), self.serial, self._info.name)
        _log.info("advertising %s on %s port %d", self._info.name, ", ".join(self.addresses), self.port)

    async def update(self, **properties: str) -> None:
        assert self._zeroconf is not None, "not started"
        self.properties.update(properties)
        self._info = self._make_info()
        await (await self._zeroconf.async_update_service(self._info))

    async def stop(self) -> None:
        """Sends the goodbye (TTL 0) so browsers drop the service at once, then closes the sockets."""
        if self._zeroconf is None:
            return
        zeroconf, self._zeroconf = self._zeroconf, None
        try:
            if self._info is not None:
                await (await zeroconf.async_unregister_service(self._info))
        finally:
            await zeroconf.async_close()


class SatelliteFinder:
    """Follows the advertisement of one serial number. ``endpoint`` is the latest resolved one (None
    while unknown or after a goodbye); ``on_change(endpoint | None)`` runs on every change."""

    def __init__(self, serial: str, addresses: list[str], allow_loopback: bool,
                 on_change: Callable[[SatelliteEndpoint | None], None] | None = None) -> None:
        if not addresses:
            raise ValueError("no network address left to browse on (check the mDNS interface lists)")
        self.serial = serial
        self.name = f"{serial}.{SERVICE_TYPE}"
        self.addresses = addresses
        self.allow_loopback = allow_loopback
        self.endpoint: SatelliteEndpoint | None = None
        self._on_change = on_change
        self._changed = asyncio.Event()
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._zeroconf = AsyncZeroconf(interfaces=self.addresses, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._zeroconf.zeroconf, [SERVICE_TYPE], handlers=[self._on_event])

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None

    async def wait_endpoint(self, timeout: float) -> SatelliteEndpoint | None:
        """The current endpoint, waiting up to ``timeout`` for one to appear."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.endpoint is None:
                    self._changed.clear()
                    await self._changed.wait()
        return self.endpoint

    async def wait_change(self, timeout: float) -> None:
        """Returns at the next change, or after ``timeout``."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _on_event(self, zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if name.lower() != self.name.lower():
            return
        if state_change is ServiceStateChange.Removed:
            _log.info("satellite %s: advertisement withdrawn", self.serial)
            self._set(None)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        assert self._zeroconf is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zeroconf.zeroconf, RESOLVE_TIMEOUT_MS):
            _log.warning("satellite %s: advertisement did not resolve", self.serial)
            return
        hosts = [a for a in info.parsed_addresses(IPVersion.V4Only)
                 if self.allow_loopback or not ipaddress.IPv4Address(a).is_loopback]
        txt = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
               for k, v in info.properties.items()}
        if not hosts or info.port is None:
            _log.warning("satellite %s: advertisement has no usable address (%s)", self.serial,
                         info.parsed_addresses())
            return
        if txt.get("serial", self.serial) != self.serial:
            _log.warning("satellite %s: advertised TXT serial is %r; ignored", self.serial, txt.get("serial"))
            return
        try:
            protocol = int(txt.get("proto", "0"))
        except ValueError:
            protocol = 0
        self._set(SatelliteEndpoint(self.serial, hosts[0], int(info.port), txt.get("boot_id", ""),
                                    txt.get("version", ""), protocol))

    def _set(self, endpoint: SatelliteEndpoint | None) -> None:
        if endpoint == self.endpoint:
            return
        self.endpoint = endpoint
        self._changed.set()
        if self._on_change is not None:
            self._on_change(endpoint)
