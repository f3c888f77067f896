"""The ocpp interface the OCPP module provides to other modules, called over the bus."""

from __future__ import annotations

from everpy.csms import Csms

from .station import WAIT_S, sil_station


def _variable(name: str) -> dict:
    return {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name}}


async def test_variables_availability_security_event_and_status(tmp_path, csms: Csms):
    async with sil_station(tmp_path, csms) as station:
        call = station.system.call
        results = await call("ocpp", "main", "get_variables", requests=[
            {"component_variable": _variable("HeartbeatInterval")},
            {"component_variable": _variable("NoSuchKey")},
            {"component_variable": _variable("HeartbeatInterval"), "attribute_type": "MaxSet"}])
        assert [r["status"] for r in results] == ["Accepted", "UnknownVariable", "NotSupportedAttributeType"]
        assert results[0]["value"] == "300"
        results = await call("ocpp", "main", "set_variables", source="test", requests=[
            {"component_variable": _variable("MeterValueSampleInterval"), "value": "20"},
            {"component_variable": _variable("NumberOfConnectors"), "value": "4"},
            {"component_variable": _variable("NoSuchKey"), "value": "1"}])
        assert [r["status"] for r in results] == ["Accepted", "Rejected", "UnknownVariable"]
        assert await station.config_key("MeterValueSampleInterval") == "20"
        answer = await call("ocpp", "main", "change_availability",
                            request={"operational_status": "Inoperative", "evse": {"id": 1}})
        assert answer == {"status": "Accepted"}
        await station.status("Unavailable")
        await call("ocpp", "main", "security_event", event={"type": "TamperDetectionActivated", "info": "lid"})
        event = await csms.wait_for("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated",
                                    timeout=WAIT_S)
        assert event.payload["techInfo"] == "lid"
        assert await call("ocpp", "main", "get_configuration", keys=["AuthorizationKey"]) == {
            "configuration_key": [], "unknown_key": ["AuthorizationKey"]}  # write-only


async def test_critical_security_events_are_queued_while_offline(tmp_path):
    async with Csms() as first:
        async with sil_station(tmp_path, first) as station:
            await first.stop()
            await station.system.watch("ocpp", "main", "connection_status").wait_for(
                lambda s: not s["connected"], WAIT_S)
            await station.system.call("ocpp", "main", "security_event",
                                      event={"type": "TamperDetectionActivated", "info": "lid open"})
            await station.system.call("ocpp", "main", "security_event",
                                      event={"type": "SomethingHarmless", "critical": False})
            async with Csms(port=first.port) as second:
                event = await second.wait_for("SecurityEventNotification", timeout=WAIT_S)
                assert event.payload["type"] == "TamperDetectionActivated"
                assert [r.payload["type"] for r in second.messages("SecurityEventNotification")] == [
                    "TamperDetectionActivated"]
