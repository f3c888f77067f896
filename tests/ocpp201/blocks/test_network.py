"""The network connection profiles of OCPP 2.0.1 (A/B) against a fake context: SetNetworkProfile's range
checks, the choice of the slot at start from NetworkConfigurationPriority, the fallback after
NetworkProfileConnectionAttempts, the floor a successful connection sets, and persisted slots that do not
check out (quarantined, never used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.network import KIND, NetworkProfiles, connection_problem
from everpy.ocpp.v201.variables.comm import ACTIVE_NETWORK_PROFILE

from .fakes import Fixture, block_context

GOOD = {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": "wss://csms.example/ocpp",
        "messageTimeout": 30, "securityProfile": 2, "ocppInterface": "Wired0"}
PASSWORD = {"SecurityCtrlr.BasicAuthPassword": "sixteen-chars-long"}


def profiles(f: Fixture, met: bool = True) -> NetworkProfiles:
    return NetworkProfiles(f.ctx, "ws://configured/ocpp", lambda profile: met)


async def set_profile(block: NetworkProfiles, slot: Any, data: dict[str, Any]) -> dict[str, Any]:
    payload = {"configurationSlot": slot, "connectionData": data}
    reply = await block.on_set_network_profile(payload)
    DIALECT.check("SetNetworkProfile", reply.payload, response=True)
    return reply.payload


def test_connection_data_ranges():
    """TC_B_43_CS: every field this station cannot honour is named."""
    cases = {"ocppVersion": "OCPP16", "ocppTransport": "SOAP", "messageTimeout": 0, "securityProfile": 4,
             "ocppCsmsUrl": "http://csms/ocpp", "ocppInterface": "Wired9"}
    for field, value in cases.items():
        assert connection_problem(GOOD | {field: value}, 0) is not None, field
    assert connection_problem(GOOD | {"apn": {"apn": "internet", "apnAuthentication": "NONE"}}, 0)
    assert connection_problem(GOOD | {"ocppCsmsUrl": "ws://csms/ocpp"}, 0) == "security profiles 2 and 3 need wss://"
    assert connection_problem(GOOD, 3) is not None  # below the profile in use
    assert connection_problem(GOOD, 2) is None


async def test_set_network_profile_refusals_and_persistence(tmp_path: Path):
    """TC_A_20_CS TC_A_21_CS: slot 0 and slots beyond 8, missing certificates or password are Rejected; an
    accepted slot is kept in the store for the next start."""
    f = block_context(tmp_path, [1])
    assert (await set_profile(profiles(f), 0, GOOD))["status"] == "Rejected"
    assert (await set_profile(profiles(f), 9, GOOD))["status"] == "Rejected"
    no_password = await set_profile(profiles(f), 1, GOOD)
    assert no_password["statusInfo"]["additionalInfo"] == "no SecurityCtrlr.BasicAuthPassword is set"
    f = block_context(tmp_path / "b", [1], PASSWORD)
    lacking = await set_profile(profiles(f, met=False), 1, GOOD)
    assert lacking["statusInfo"]["additionalInfo"] == "security profile 2 lacks its certificates"
    assert await set_profile(profiles(f), 1, GOOD) == {"status": "Accepted"}
    assert f.store.records(KIND)[1]["ocppCsmsUrl"] == GOOD["ocppCsmsUrl"]


async def test_choice_fallback_and_floor(tmp_path: Path):
    """TC_B_45_CS TC_B_46_CS TC_A_22_CS: the first existing slot of the priority is used; after the attempts
    the next one; once profile 2 connected, a profile-1 slot is neither used nor accepted."""
    f = block_context(tmp_path, [1], PASSWORD | {"OCPPCommCtrlr.NetworkConfigurationPriority": "3,1,0",
                                                 "OCPPCommCtrlr.NetworkProfileConnectionAttempts": "2",
                                                 "SecurityCtrlr.SecurityProfile": "1"})
    block = profiles(f)
    await set_profile(block, 1, GOOD)
    assert block.choose().number == 1  # slot 3 does not exist
    assert f.model.int(ACTIVE_NETWORK_PROFILE) == 1
    block.attempt(False)
    assert block.active.number == 1
    block.attempt(False)
    assert block.active.number == 0 and block.active.url == "ws://configured/ocpp"
    block.attempt(False)
    block.attempt(False)
    assert block.active.number == 1  # round and round
    block.attempt(True)
    assert block.highest_profile() == 2
    again = profiles(f)
    assert again.choose().number == 1  # slot 0 (profile 1) is below the floor now
    downgrade = await set_profile(again, 2, GOOD | {"securityProfile": 1, "ocppCsmsUrl": "ws://old/ocpp"})
    assert downgrade["status"] == "Rejected"


async def test_a_damaged_persisted_slot_is_quarantined(tmp_path: Path):
    """Startup never trusts persisted state: a slot whose data does not check out is moved to quarantine and
    the station uses slot 0."""
    f = block_context(tmp_path, [1], {"OCPPCommCtrlr.NetworkConfigurationPriority": "1,0"})
    f.store.put_record(KIND, 1, GOOD | {"ocppCsmsUrl": 42})
    f.store.put_record(KIND, 12, GOOD)
    block = profiles(f)
    assert block.choose().number == 0
    assert f.store.records(KIND) == {}
    reasons = [row for row in f.store.read("SELECT source, reason FROM quarantine")]
    assert {source for source, _ in reasons} == {f"{KIND}/1", f"{KIND}/12"}
