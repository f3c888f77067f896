"""A main board with several satellites (3 and 8), each board a separate process with its own mosquitto:
every tunnel works, vars flow as they are published, command errors keep their everpy type."""

from __future__ import annotations

import asyncio

import pytest
from boards import controller_entry, main_config, new_serial, satellite_config


async def test_main_board_with_three_satellites(boards) -> None:
    serials = [new_serial() for _ in range(3)]
    sats = await asyncio.gather(*(boards(f"sat{i}", satellite_config(s)) for i, s in enumerate(serials)))
    main = await boards("main", main_config({f"sat{i}": controller_entry(s) for i, s in enumerate(serials)}))
    probe = main.probe
    for i, serial in enumerate(serials):
        assert await probe.call(f"sat{i}", "satellite", "is_connected") is True
        info = await probe.call(f"sat{i}", "satellite", "get_satellite_info")
        assert info["serial"] == serial
        assert info["interfaces"] == {"evse_manager": "evse_manager", "energy": "energy", "powermeter": "powermeter"}
        assert await probe.call(f"sat{i}", "evse_manager", "get_evse") == {
            "id": 1, "connectors": [{"id": 1, "type": "cType2"}]}
        assert await probe.call(f"sat{i}", "satellite", "get_local_endpoint_address") == "127.0.0.1"
    # vars flow from each satellite's own bus to the main board as they are published
    for i in range(len(sats)):
        seen = probe.watch(f"sat{i}", "powermeter", "powermeter")
        await probe.flush()
        reading = await seen.next(timeout=15)
        assert reading["meter_id"]
    # a command error on the satellite arrives with its everpy type
    with pytest.raises(Exception) as caught:
        await probe.call("sat0", "evse_manager", "enable_disable", connector_id=1, cmd_source="not an object")
    assert type(caught.value).__name__ == "SchemaValidationError"


async def test_eight_satellites_at_once(boards) -> None:
    serials = [new_serial() for _ in range(8)]
    sats = await asyncio.gather(*(boards(f"sat{i}", satellite_config(s)) for i, s in enumerate(serials)))
    main = await boards("main", main_config({f"sat{i}": controller_entry(s) for i, s in enumerate(serials)}))
    probe = main.probe
    watchers = [probe.watch(f"sat{i}", "evse_manager", "evse_id") for i in range(8)]
    await probe.flush()
    for i, sat in enumerate(sats):  # every satellite's var reaches the main board, each on its own proxy
        await sat.probe.publish_var("evse", "evse", "evse_id", f"DE*SAT*E{i}")
    for i, watcher in enumerate(watchers):
        assert await watcher.wait_for(lambda v, i=i: v == f"DE*SAT*E{i}", timeout=10)
    infos = await asyncio.gather(*(probe.call(f"sat{i}", "satellite", "get_satellite_info") for i in range(8)))
    assert [info["serial"] for info in infos] == serials
