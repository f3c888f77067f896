"""TriggerMessage of the firmware and log statuses end to end: the SIL charger of config/sil-ocpp201.yaml as
its own process and the development CSMS (everpy/csms/v201.py) over a real websocket."""

from __future__ import annotations

from pathlib import Path

import pytest

from everpy.csms import v201

from .dev_station import STATION, station_at

pytestmark = pytest.mark.slow



async def test_idle_statuses_on_request_also_for_a_named_evse(tmp_path: Path):
    """TC_F_15_CS TC_F_18_CS TC_F_17_CS: with nothing in progress, TriggerMessage LogStatusNotification and
    FirmwareStatusNotification are Accepted and answered Idle; an EVSE named with the firmware status does not
    matter (Accepted, the station's status); an EVSE the station does not have is Rejected."""
    async with v201.Csms() as csms, station_at(tmp_path, csms) as station:
        answers = []
        for requested, evse in (("LogStatusNotification", None), ("FirmwareStatusNotification", None),
                                ("FirmwareStatusNotification", {"id": 1}),
                                ("FirmwareStatusNotification", {"id": 9})):
            mark = len(csms.received)
            payload = {"requestedMessage": requested} | ({"evse": evse} if evse else {})
            answer = await csms.call(STATION, "TriggerMessage", payload)
            answers.append(answer["status"])
            if answer["status"] == "Accepted":
                sent = await csms.wait_for(requested, after=mark)
                assert sent.payload == {"status": "Idle"}, (requested, sent.payload)
    assert answers == ["Accepted", "Accepted", "Accepted", "Rejected"], station.log()
