"""End to end: the main board of config/main-with-satellites.yaml with three satellites of
config/satellite.yaml, every board a separate process with its own mosquitto, connected to the in-repo
CSMS over a real websocket. OCPP sees four connectors; a session on a satellite connector runs through
the CSMS; a lost satellite shows as Faulted and comes back Available without restarting anything."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import yaml
from boards import Board, FaultProxy, new_serial

from everpy.csms import Csms
from everpy.rpc.demo import REPO_CONFIG, main_config, satellite_config

CAR_PLUGS_IN_AND_WAITS = "iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 36000"


def satellite(index: int, workdir: Path, serial: str) -> dict:
    config = satellite_config(yaml.safe_load((REPO_CONFIG / "satellite.yaml").read_text()), index, workdir, serial)
    config["active_modules"]["car"]["config_module"].update({"auto_exec": False})
    config["active_modules"]["agent"]["config_module"]["controller_timeout_s"] = 3
    return config


def main_board(workdir: Path, csms_url: str, serials: list[str]) -> dict:
    template = yaml.safe_load((REPO_CONFIG / "main-with-satellites.yaml").read_text())
    config = main_config(template, len(serials), workdir, serials)
    modules = config["active_modules"]
    for name in (f"sat{i}" for i in range(1, len(serials) + 1)):
        modules[name]["config_module"].update({"heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 0.6,
                                               "reconnect_max_s": 0.5})
    ocpp = modules["ocpp"]["config_module"]
    keys = json.loads(ocpp["configuration"])
    ocpp.update({"central_system_uri": csms_url, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5,
                 "response_timeout_s": 5.0, "boot_retry_s": 0.5,
                 "configuration": json.dumps({**keys, "MeterValueSampleInterval": "0",
                                              "TransactionMessageRetryInterval": "0"})})
    return config


def status(connector: int, value: str):
    return lambda p: p["connectorId"] == connector and p["status"] == value


async def test_ocpp_sees_four_connectors_and_charges_on_a_satellite(boards, tmp_path: Path) -> None:
    async with Csms() as csms:
        serials = [new_serial() for _ in range(3)]  # unique: other runs may browse the same loopback
        sats: list[Board] = list(await asyncio.gather(
            *(boards(f"sat{i}", satellite(i, tmp_path, serials[i - 1])) for i in (1, 2, 3))))
        await boards("main", main_board(tmp_path, csms.url, serials))
        await csms.wait_connected("CP1", timeout=30)
        for connector in (1, 2, 3, 4):  # local EVSE + three satellites, in connection order
            await csms.wait_for("StatusNotification", status(connector, "Available"), timeout=30)
        # a car plugs in at satellite 1: connector 2 turns Preparing, driven by the satellite's EvseManager
        assert await sats[0].probe.call("car", "main", "execute_charging_session", value=CAR_PLUGS_IN_AND_WAITS)
        await csms.wait_for("StatusNotification", status(2, "Preparing"), timeout=30)

        await csms.call_action("CP1", "RemoteStartTransaction", {"idTag": "REMOTE-SAT1", "connectorId": 2})
        assert csms.last_answer("CP1", "RemoteStartTransaction")["status"] == "Accepted"
        start = await csms.wait_for("StartTransaction", lambda p: p["connectorId"] == 2, timeout=30)
        assert start.payload["idTag"] == "REMOTE-SAT1"
        await csms.wait_for("StatusNotification", status(2, "Charging"), timeout=30)
        await csms.call_action("CP1", "RemoteStopTransaction", {"transactionId": 1})
        assert csms.last_answer("CP1", "RemoteStopTransaction")["status"] == "Accepted"
        stop = await csms.wait_for("StopTransaction", timeout=30)
        assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "Remote"

        # satellite 3 dies: its connector (4) turns Faulted; back up, it returns to Available
        mark = len(csms.received)
        await sats[2].kill()
        faulted = await csms.wait_for("StatusNotification", status(4, "Faulted"), timeout=15, after=mark)
        assert faulted.payload["errorCode"] == "InternalError"
        await sats[2].start()
        await csms.wait_for("StatusNotification", status(4, "Available"), timeout=30, after=mark)


async def test_session_that_ends_during_a_link_outage_reaches_the_csms_afterwards(boards, tmp_path: Path) -> None:
    with socket.socket() as s:  # the agent's port, so the fault proxy knows where to forward
        s.bind(("127.0.0.1", 0))
        agent_port = s.getsockname()[1]
    serial = new_serial()
    sat_config = satellite(1, tmp_path, serial)
    sat_config["active_modules"]["agent"]["config_module"].update({"port": agent_port, "mdns": False})
    async with Csms() as csms:
        sat = await boards("sat1", sat_config)
        proxy = FaultProxy("127.0.0.1", agent_port)
        proxy_port = await proxy.start()
        try:
            config = main_board(tmp_path, csms.url, [serial])
            config["active_modules"]["sat1"]["config_module"].update({"host": "127.0.0.1", "port": proxy_port})
            await boards("main", config)
            await csms.wait_for("StatusNotification", status(2, "Available"), timeout=30)
            assert await sat.probe.call("car", "main", "execute_charging_session", value=CAR_PLUGS_IN_AND_WAITS)
            await csms.wait_for("StatusNotification", status(2, "Preparing"), timeout=30)
            await csms.call_action("CP1", "RemoteStartTransaction", {"idTag": "OUTAGE", "connectorId": 2})
            await csms.wait_for("StartTransaction", lambda p: p["connectorId"] == 2, timeout=30)
            await csms.wait_for("StatusNotification", status(2, "Charging"), timeout=30)

            proxy.silent = True  # the board-to-board cable is cut
            mark = len(csms.received)
            await csms.wait_for("StatusNotification", status(2, "Faulted"), timeout=15, after=mark)
            # meanwhile the driver unplugs at the satellite: it ends the transaction on its own
            assert await sat.probe.call("car", "main", "execute_charging_session", value="unplug")
            finished = sat.probe.watch("evse2", "evse", "session_event")
            await sat.probe.flush()
            await finished.wait_for(lambda e: e["event"] == "SessionFinished", timeout=15)
            assert not csms.messages("StopTransaction")  # the main board cannot know yet

            proxy.silent = False
            proxy.drop_all()  # the cable is back: the controller reconnects and resumes
            stop = await csms.wait_for("StopTransaction", timeout=30)
            assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "EVDisconnected"
            await csms.wait_for("StatusNotification", status(2, "Available"), timeout=30, after=mark)
        finally:
            await proxy.close()
