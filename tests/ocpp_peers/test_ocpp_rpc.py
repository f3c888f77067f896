"""The SIL charger against an independent CSMS: npm `ocpp-rpc` in strict mode. Every frame the station
sends (its CALLs and its answers to the CSMS's CALLs) is validated by ocpp-rpc against the official OCPP
1.6 JSON schemas; the `rpc_csms` fixture fails the test if any frame was rejected."""

from __future__ import annotations

from pathlib import Path

from .conftest import peer_station
from .peers import OcppRpcCsms


async def test_boot_heartbeat_and_status_of_every_connector(tmp_path: Path, rpc_csms: OcppRpcCsms):
    async with peer_station(tmp_path, rpc_csms.url):
        boot = await rpc_csms.wait_call("BootNotification")
        assert boot["chargePointSerialNumber"] == "SIL-0001" and boot["firmwareVersion"] == "everpy-0.1.0"
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 0)
        await rpc_csms.wait_call("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Available")
        connected = await rpc_csms.wait_event(lambda e: e["event"] == "connected")
        assert connected == {"event": "connected", "identity": "CP1", "protocol": "ocpp1.6"}
        mark = rpc_csms.mark()
        assert (await rpc_csms.call("TriggerMessage", requestedMessage="Heartbeat"))["status"] == "Accepted"
        await rpc_csms.wait_call("Heartbeat", after=mark)
