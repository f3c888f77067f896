"""The SIL charger against an independent CSMS: PyPI `ocpp-csms` (own aiohttp websocket stack), run in
its own venv and process."""

from __future__ import annotations

from .peers import ocpp_csms_peer
from .station import Address, sil_station


async def test_session_and_remote_operations_against_ocpp_csms(tmp_path):
    async with ocpp_csms_peer() as peer:
        port = (await peer.wait_event(lambda e: e.get("event") == "listening"))["port"]
        async with sil_station(tmp_path, Address(f"ws://127.0.0.1:{port}"), wait_boot=False) as station:
            await peer.wait_event(lambda e: "Status" in e.get("event", "") and "1" in str(e.get("data")))
            await station.plug_in()
            await station.swipe("PEERTAG")
            started = await peer.wait_event(lambda e: e.get("event") == "TransactionStartedEvent")
            answers = {
                "get_configuration": await peer.call("get_configuration", {"keys": ["HeartbeatInterval"]}),
                "change_configuration": await peer.call("change_configuration",
                                                        {"key": "MeterValueSampleInterval", "value": "30"}),
                "trigger_message": await peer.call("trigger_message", {"message": "Heartbeat"}),
                "remote_stop_transaction": await peer.call(
                    "remote_stop_transaction", {"transaction_id": started["data"]["transaction"]["transaction_id"]}),
            }
            stopped = await peer.wait_event(lambda e: e.get("event") == "TransactionStoppedEvent")
            await station.unplug()
        for name, answer in answers.items():
            assert answer["event"] == "result", (name, answer)
        assert answers["change_configuration"]["result"] == "Accepted"
        assert answers["remote_stop_transaction"]["result"] == "Accepted"
        assert "HeartbeatInterval" in str(answers["get_configuration"]["result"])
        assert started["data"]["transaction"]["id_tag"] == "PEERTAG"
        assert stopped["data"]["transaction"]["stop_reason"] == "Remote"
        assert not [e for e in peer.events if "Error" in e.get("event", "") and e.get("event") != "error"]
