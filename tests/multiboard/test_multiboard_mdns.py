"""mDNS discovery for real: zeroconf on loopback in every run (advertisement, update on a new boot id,
goodbye), interface selection, and boards in their own network namespaces on a bridge."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import ifaddr
import pytest
from boards import Board, controller_entry, main_config, new_serial, satellite_config

from everpy.rpc.mdns import SERVICE_TYPE, SatelliteAdvertiser, SatelliteFinder, select_addresses


async def test_advertisement_update_and_goodbye_reach_the_browser() -> None:
    serial = new_serial()
    finder = SatelliteFinder(serial, ["127.0.0.1"], allow_loopback=True)
    other = SatelliteAdvertiser(new_serial(), 4000, ["127.0.0.1"], {"boot_id": "x"})  # must be ignored
    advertiser = SatelliteAdvertiser(serial, 4129, ["127.0.0.1"], {"boot_id": "boot-1", "version": "9.9",
                                                                   "proto": "1"})
    await finder.start()
    try:
        await other.start()
        await advertiser.start()
        endpoint = await finder.wait_endpoint(10)
        assert endpoint is not None
        assert (endpoint.serial, endpoint.host, endpoint.port, endpoint.boot_id, endpoint.version,
                endpoint.protocol) == (serial, "127.0.0.1", 4129, "boot-1", "9.9", 1)
        await advertiser.update(boot_id="boot-2")
        async with asyncio.timeout(10):
            while finder.endpoint is None or finder.endpoint.boot_id != "boot-2":
                await finder.wait_change(10)
        await advertiser.stop()  # goodbye: the browser drops it at once, not after the TTL
        async with asyncio.timeout(10):
            while finder.endpoint is not None:
                await finder.wait_change(10)
    finally:
        await advertiser.stop()
        await other.stop()
        await finder.stop()


async def test_loopback_addresses_are_dropped_by_the_browser_unless_allowed() -> None:
    serial = new_serial()
    strict = SatelliteFinder(serial, ["127.0.0.1"], allow_loopback=False)
    advertiser = SatelliteAdvertiser(serial, 4129, ["127.0.0.1"], {"boot_id": "b"})
    await strict.start()
    try:
        await advertiser.start()
        assert await strict.wait_endpoint(3) is None  # seen, resolved, refused: only 127.0.0.1 offered
    finally:
        await advertiser.stop()
        await strict.stop()


def test_interface_selection_allow_deny_and_loopback() -> None:
    adapters = {a.name: [str(ip.ip) for ip in a.ips if ip.is_IPv4] for a in ifaddr.get_adapters()}
    assert select_addresses(["lo"], [], allow_loopback=False) == []  # loopback only when asked
    assert select_addresses(["lo"], [], allow_loopback=True) == ["127.0.0.1"]
    assert select_addresses(["127.0.0.1"], [], allow_loopback=True) == ["127.0.0.1"]  # by address too
    assert select_addresses([], list(adapters), allow_loopback=True) == []  # deny wins
    everything = select_addresses([], [], allow_loopback=False)
    assert "127.0.0.1" not in everything
    assert sorted(everything) == sorted(a for n, ips in adapters.items() for a in ips if not a.startswith("127."))


async def test_agent_process_advertises_serial_version_boot_id_and_says_goodbye(boards) -> None:
    serial = new_serial()
    finder = SatelliteFinder(serial, ["127.0.0.1"], allow_loopback=True)
    await finder.start()
    try:
        sat = await boards("sat", satellite_config(serial))
        first = await finder.wait_endpoint(10)
        assert first is not None and first.protocol == 1 and first.version and len(first.boot_id) == 32
        info = await sat.probe.call("agent", "link", "get_satellite_info")
        assert (info["boot_id"], info["serial"]) == (first.boot_id, serial)
        await sat.stop()
        async with asyncio.timeout(10):
            while finder.endpoint is not None:
                await finder.wait_change(10)
        await sat.start()
        async with asyncio.timeout(15):
            while finder.endpoint is None or finder.endpoint.boot_id == first.boot_id:
                await finder.wait_change(15)
    finally:
        await finder.stop()


async def test_agent_refuses_to_start_when_no_interface_is_left_for_mdns(tmp_path) -> None:
    config = satellite_config(new_serial(), mdns_allow_loopback=False)  # "lo" only, loopback not allowed
    board = Board("sat", config, tmp_path)
    with pytest.raises(AssertionError, match="exited with code"):
        await board.start(ready_timeout=20)
    try:
        assert await asyncio.wait_for(board.process.wait(), 20) != 0
        assert "no network address left to advertise on" in board.log_tail(200)
    finally:
        await board.close()


# -- network namespaces: one host per board on a bridge ------------------------------------------------
def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def bridge_net() -> Iterator[dict[str, str]]:
    """hub (bridge) + sat + ctl namespaces. The satellite also has a 'pilot0' interface (its PLC/pilot
    link) that mDNS must stay off. Skipped with the reason if namespaces cannot be created here."""
    tag = uuid.uuid4().hex[:6]
    names = {"hub": f"evp{tag}hub", "sat": f"evp{tag}sat", "ctl": f"evp{tag}ctl"}
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    try:
        _ip("netns", "add", names["hub"])
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        for ns in names.values():
            if ns != names["hub"]:
                _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", names["hub"], "link", "add", "br0", "type", "bridge")
        _ip("-n", names["hub"], "link", "set", "br0", "up")
        for role, host in (("sat", 2), ("ctl", 3)):
            inside, outside = f"v{role}{tag}", f"p{role}{tag}"
            _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            _ip("link", "set", inside, "netns", names[role])
            _ip("link", "set", outside, "netns", names["hub"])
            _ip("-n", names["hub"], "link", "set", outside, "master", "br0", "up")
            _ip("-n", names[role], "addr", "add", f"10.77.0.{host}/24", "dev", inside)
            _ip("-n", names[role], "link", "set", inside, "up", "multicast", "on")
        _ip("-n", names["sat"], "link", "add", "pilot0", "type", "veth", "peer", "name", "pilot0peer")
        _ip("-n", names["sat"], "link", "set", "pilot0peer", "up")
        _ip("-n", names["sat"], "addr", "add", "10.78.0.2/24", "dev", "pilot0")
        _ip("-n", names["sat"], "link", "set", "pilot0", "up", "multicast", "on")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


RESOLVE_IN_NS = """
import asyncio, sys
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
async def main():
    zc = AsyncZeroconf(interfaces=[sys.argv[1]], ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(sys.argv[2], sys.argv[3])
    ok = await info.async_request(zc.zeroconf, 5000)
    print(",".join(sorted(info.parsed_addresses(IPVersion.V4Only))) if ok else "UNRESOLVED")
    await zc.async_close()
asyncio.run(main())
"""


async def test_boards_in_separate_namespaces_find_each_other_over_the_bridge(boards, bridge_net) -> None:
    serial = new_serial()
    sat_cfg = satellite_config(serial, bind_host="0.0.0.0", mdns_interfaces="", mdns_deny_interfaces="pilot0",
                               mdns_allow_loopback=False)
    await boards("sat", sat_cfg, netns=bridge_net["sat"])
    main = await boards("main", main_config({"sat1": controller_entry(
        serial, mdns_interfaces="", mdns_allow_loopback=False)}), netns=bridge_net["ctl"])
    probe = main.probe
    assert await probe.call("sat1", "satellite", "is_connected") is True
    assert await probe.call("sat1", "satellite", "get_remote_endpoint_address") == "10.77.0.2"
    assert await probe.call("sat1", "satellite", "get_local_endpoint_address") == "10.77.0.3"
    assert await probe.call("sat1", "evse_manager", "get_evse")
    # the advertisement carries the bridge address only: not loopback, not the denied pilot interface
    resolved = subprocess.run(
        ["ip", "netns", "exec", bridge_net["ctl"], sys.executable, "-c", RESOLVE_IN_NS, "10.77.0.3",
         SERVICE_TYPE, f"{serial}.{SERVICE_TYPE}"], capture_output=True, text=True, timeout=30)
    assert resolved.stdout.strip() == "10.77.0.2", resolved.stderr
