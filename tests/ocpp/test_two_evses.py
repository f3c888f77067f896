"""A station with two EVSEs (two EvseManagers, boards and cars): connector ids follow the order of the
evse_manager connections, each connector has its own status and transaction."""

from __future__ import annotations

import copy

from everpy.csms import Csms
from everpy.testing import run_system

from .sil import CHARGE_FOREVER, sil_ocpp_config
from .station import WAIT_S


def two_evse_config(tmp_path, url: str) -> dict:
    config = sil_ocpp_config(tmp_path, url, car_script=None, swipe=False)
    modules = config["active_modules"]
    modules["evse2"] = copy.deepcopy(modules["evse"])
    modules["evse2"]["config_module"].update({"connector_id": 2, "evse_id": "DE*PNX*E00001*2"})
    modules["evse2"]["connections"] = {"bsp": [{"module_id": "board2", "implementation_id": "board_support"}],
                                       "powermeter": [{"module_id": "board2", "implementation_id": "powermeter"}]}
    modules["board2"] = copy.deepcopy(modules["board"])
    modules["car2"] = copy.deepcopy(modules["car"])
    modules["car2"]["connections"] = {"ev_board_support": [{"module_id": "board2",
                                                            "implementation_id": "ev_board_support"}]}
    second = {"module_id": "evse2", "implementation_id": "evse"}
    modules["auth"]["connections"]["evse_manager"].append(second)
    modules["grid_connection"]["connections"]["energy_consumer"].append(
        {"module_id": "evse2", "implementation_id": "energy_grid"})
    modules["ocpp"]["connections"]["evse_manager"].append(second)
    return config


async def test_two_connectors_have_their_own_status_and_transactions(tmp_path, csms: Csms):
    async with run_system(two_evse_config(tmp_path, csms.url)) as system:
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 2, WAIT_S)
        answer = await system.call("ocpp", "main", "get_configuration", keys=["NumberOfConnectors"])
        assert answer["configuration_key"][0]["value"] == "2"
        assert await system.call("car2", "main", "execute_charging_session", value=CHARGE_FOREVER) is True
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "Preparing")
        await csms.call_action("CP1", "RemoteStartTransaction", {"idTag": "SECOND", "connectorId": 2})
        start = await csms.wait_for("StartTransaction", timeout=WAIT_S)
        assert start.payload["connectorId"] == 2
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "Charging")
        statuses = [r.payload for r in csms.messages("StatusNotification") if r.payload["connectorId"] == 1]
        assert {s["status"] for s in statuses} == {"Available"}
        await csms.call_action("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        await csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Unavailable")
        assert not csms.messages("StopTransaction")
