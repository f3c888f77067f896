"""Auth decisions on the real bus: Auth, the simulated reader/validator and stand-in EVSEs, each a
module talking over a private mosquitto. Long timers run on a FakeClock."""

from __future__ import annotations

import pytest

from everpy.core.clock import FakeClock
from everpy.testing import run_system

from .helpers import (
    STANDINS,
    auth_system,
    plug_in,
    rfid,
    session_event,
    status_of,
    swipe,
    transaction_started,
    until,
)


def started(config: dict, clock: FakeClock | None = None):
    return run_system(config, clock=clock, extra_module_dirs=[STANDINS])


async def test_swipe_then_plug_authorizes_the_only_evse_and_reports_used_to_start() -> None:
    async with started(auth_system(valid_tokens="CARD1")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        evse = system.instances["evse1"]
        await swipe(system, "CARD1")
        assert status_of(await statuses.next()) == ("CARD1", "Processing", None)
        assert status_of(await statuses.next()) == ("CARD1", "Accepted", 1)
        args = await evse.wait_for_call("authorize_response")
        assert args["provided_token"]["id_token"]["value"] == "CARD1"
        assert args["validation_result"]["authorization_status"] == "Accepted"

        await plug_in(system, "evse1")
        await transaction_started(system, "evse1", rfid("CARD1"))
        assert status_of(await statuses.next()) == ("CARD1", "UsedToStart", 1)


async def test_invalid_token_is_rejected_and_no_evse_is_told() -> None:
    async with started(auth_system(valid_tokens="CARD1")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "STRANGER")
        rejected = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(rejected) == ("STRANGER", "Rejected", None)
        assert rejected["validation_results"] == [{"authorization_status": "Invalid"}]
        assert "authorize_response" not in system.instances["evse1"].names()


async def test_find_first_gives_the_token_to_the_evse_where_a_car_waits() -> None:
    async with started(auth_system(evses=3, algorithm="FindFirst")) as system:
        auth = system.instances["auth"]
        await plug_in(system, "evse2")
        await until(lambda: auth.slots[1].waiting_for_auth)
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("CARD1", "Accepted", 2)
        await system.instances["evse2"].wait_for_call("authorize_response")
        assert "authorize_response" not in system.instances["evse1"].names()


async def test_find_first_without_car_takes_the_first_free_evse() -> None:
    async with started(auth_system(evses=2, algorithm="FindFirst")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await transaction_started(system, "evse1", rfid("OTHER"))  # evse1 busy: the first *free* one is 2
        await until(lambda: system.instances["auth"].slots[0].transaction_token is not None)
        await swipe(system, "CARD1")
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("CARD1", "Accepted", 2)


async def test_plug_events_waits_for_the_next_plug_in() -> None:
    clock = FakeClock()
    async with started(auth_system(evses=2, algorithm="PlugEvents"), clock) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")
        await statuses.wait_for(lambda m: m["status"] == "Processing")
        await clock.advance(20)  # well inside the 60 s connection timeout
        await plug_in(system, "evse2")
        accepted = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(accepted) == ("CARD1", "Accepted", 2)
        await system.instances["evse2"].wait_for_call("authorize_response")
        assert auth.slots[1].authorized_token is not None


async def test_plug_events_times_out_without_a_plug_in() -> None:
    clock = FakeClock()
    config = auth_system(evses=2, algorithm="PlugEvents", auth_config={"connection_timeout": 30})
    async with started(config, clock) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")
        await statuses.wait_for(lambda m: m["status"] == "Processing")
        await until(lambda: clock.pending_timers > 0)  # Auth is waiting for a plug-in
        await clock.advance(29)
        assert [m["status"] for m in statuses.drain()] == []
        await clock.advance(2)
        assert status_of(await statuses.next()) == ("CARD1", "TimedOut", None)
        assert all("authorize_response" not in system.instances[e].names() for e in ("evse1", "evse2"))


async def test_authorization_is_withdrawn_when_no_transaction_starts_in_time() -> None:
    clock = FakeClock()
    async with started(auth_system(auth_config={"connection_timeout": 30}), clock) as system:
        evse = system.instances["evse1"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")
        await statuses.wait_for(lambda m: m["status"] == "Accepted")
        await evse.wait_for_call("authorize_response")
        await clock.advance(31)
        await evse.wait_for_call("withdraw_authorization")
        assert status_of(await statuses.next()) == ("CARD1", "TimedOut", 1)
        # the EVSE is free again: the next card is accepted
        await swipe(system, "CARD2")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "Accepted"


async def test_same_token_stops_its_transaction() -> None:
    async with started(auth_system(valid_tokens="CARD1")) as system:
        evse = system.instances["evse1"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await transaction_started(system, "evse1", rfid("card1"))  # ids compare ignoring case
        await until(lambda: system.instances["auth"].slots[0].transaction_token is not None)
        await swipe(system, "CARD1")
        stop = await evse.wait_for_call("stop_transaction")
        assert stop["request"]["reason"] == "Local"
        assert stop["request"]["id_tag"]["id_token"]["value"] == "CARD1"
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing")) == (
            "CARD1",
            "UsedToStop",
            1,
        )


async def test_other_token_cannot_stop_a_transaction_and_finds_no_free_evse() -> None:
    async with started(auth_system(valid_tokens="CARD1,CARD2")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await transaction_started(system, "evse1", rfid("CARD1"))
        await until(lambda: system.instances["auth"].slots[0].transaction_token is not None)
        await swipe(system, "CARD2")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "Rejected"
        assert system.instances["evse1"].names() == []


async def test_master_pass_stops_every_transaction_but_never_starts_one() -> None:
    config = auth_system(
        evses=2, valid_tokens="CARD1,CARD2,POLICE1:TOWING", auth_config={"master_pass_group_id": "TOWING"}
    )
    async with started(config) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "POLICE1")  # nothing to stop: a master pass never starts charging
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "Rejected"
        assert "authorize_response" not in system.instances["evse1"].names()

        await transaction_started(system, "evse1", rfid("CARD1"))
        await transaction_started(system, "evse2", rfid("CARD2"))
        await until(lambda: all(slot.transaction_token for slot in auth.slots))
        await swipe(system, "POLICE1")
        for evse in ("evse1", "evse2"):
            stop = await system.instances[evse].wait_for_call("stop_transaction")
            assert stop["request"]["reason"] == "MasterPass"
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "UsedToStop"


async def test_group_member_stops_the_transaction_of_its_group_when_no_evse_is_free() -> None:
    async with started(auth_system(valid_tokens="MUM:FAMILY,DAD:FAMILY")) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "MUM")
        await statuses.wait_for(lambda m: m["status"] == "Accepted")
        await transaction_started(system, "evse1", rfid("MUM"))
        await statuses.wait_for(lambda m: m["status"] == "UsedToStart")
        assert auth.slots[0].transaction_parent == "family"
        await swipe(system, "DAD")
        stop = await system.instances["evse1"].wait_for_call("stop_transaction")
        assert stop["request"]["reason"] == "Local"
        assert status_of(await statuses.wait_for(lambda m: m["status"] not in ("Processing",))) == (
            "DAD",
            "UsedToStop",
            1,
        )


def accepted(parent: str | None = None) -> dict:
    """A validator's Accepted, naming the token's group (parent id token) as OCPP's parentIdTag would."""
    result: dict = {"authorization_status": "Accepted"}
    if parent is not None:
        result["parent_id_token"] = {"value": parent, "type": "Central"}
    return result


async def start_with(system, statuses, evse: str, card: str) -> None:
    """Swipe `card`, have `evse` start its transaction with it, wait until Auth saw it start."""
    await swipe(system, card)
    await statuses.wait_for(lambda m: status_of(m)[:2] == (card, "Accepted"))
    await transaction_started(system, evse, rfid(card))
    await statuses.wait_for(lambda m: status_of(m)[:2] == (card, "UsedToStart"))


async def test_tc_069_token_with_the_parent_of_the_transaction_token_stops_it() -> None:
    """OCPP 1.6 TC_069: only the validator knows the group; the provided tokens carry no parent."""
    table = {"TAG1": accepted("Group"), "TAG2": accepted("GROUP")}  # parents compare ignoring case
    async with started(auth_system(table=table, valid_tokens="")) as system:
        auth, validator = system.instances["auth"], system.instances["table"]
        statuses = system.watch("auth", "main", "token_validation_status")
        evse = system.instances["evse1"]
        await plug_in(system, "evse1")
        await start_with(system, statuses, "evse1", "TAG1")
        assert (await evse.wait_for_call("authorize_response"))["provided_token"]["id_token"]["value"] == "TAG1"
        await swipe(system, "TAG2")
        stop = await evse.wait_for_call("stop_transaction")
        assert stop["request"]["reason"] == "Local"
        assert stop["request"]["id_tag"]["id_token"]["value"] == "TAG2"
        used = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(used) == ("TAG2", "UsedToStop", 1)
        assert used["validation_results"] == [table["TAG2"]]
        assert validator.asked == ["TAG1", "TAG2"]
        assert evse.names() == []  # TAG2 only stopped: it was not handed to the EVSE
        assert auth.slots[0].transaction_token["id_token"]["value"] == "TAG1"  # until the EVSE ends it


async def test_group_stop_picks_the_evse_whose_transaction_token_has_that_parent() -> None:
    table = {"WORKER": accepted("WORK"), "MUM": accepted("FAMILY"), "DAD": accepted("FAMILY")}
    async with started(auth_system(evses=2, table=table, valid_tokens="")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await start_with(system, statuses, "evse1", "WORKER")
        await start_with(system, statuses, "evse2", "MUM")
        await swipe(system, "DAD")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing")) == ("DAD", "UsedToStop", 2)
        stop = await system.instances["evse2"].wait_for_call("stop_transaction")
        assert stop["request"]["id_tag"]["id_token"]["value"] == "DAD"
        await system.flush()
        assert "stop_transaction" not in system.instances["evse1"].names()


@pytest.mark.parametrize("dad_parent", [None, "NEIGHBOURS"])
async def test_token_outside_the_group_is_validated_but_cannot_stop_the_transaction(dad_parent: str | None) -> None:
    table = {"MUM": accepted("FAMILY"), "DAD": accepted(dad_parent)}
    async with started(auth_system(table=table, valid_tokens="")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await start_with(system, statuses, "evse1", "MUM")
        await swipe(system, "DAD")
        rejected = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(rejected) == ("DAD", "Rejected", None)
        assert rejected["validation_results"] == [table["DAD"]]
        await system.flush()
        assert "stop_transaction" not in system.instances["evse1"].names()


async def test_token_is_validated_while_a_transaction_of_unknown_group_runs_but_cannot_stop_it() -> None:
    """The transaction's token never went through Auth's validators: its parent is unknown, so no
    token stops it by group, but a presented token is still validated (OCPP sends Authorize)."""
    table = {"DAD": accepted("FAMILY")}
    async with started(auth_system(table=table, valid_tokens="")) as system:
        auth, validator = system.instances["auth"], system.instances["table"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await transaction_started(system, "evse1", rfid("MUM"))
        await until(lambda: auth.slots[0].transaction_token is not None)
        await swipe(system, "DAD")
        rejected = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(rejected) == ("DAD", "Rejected", None)
        assert validator.asked == ["DAD"]
        assert system.instances["evse1"].names() == []


async def test_reserved_evse_only_goes_to_the_token_holding_the_reservation() -> None:
    table = {
        "WALKIN": {"authorization_status": "Accepted"},
        "BOOKED": {"authorization_status": "Accepted", "reservation_id": 7},
    }
    async with started(auth_system(evses=2, table=table, valid_tokens="")) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await session_event(system, "evse1", "ReservationStart", reservation_id=7)
        await until(lambda: auth.slots[0].reserved)
        await swipe(system, "WALKIN")  # FindFirst would take evse1, but it is reserved
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("WALKIN", "Accepted", 2)
        await swipe(system, "BOOKED")
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("BOOKED", "Accepted", 1)


async def test_reservation_ends_and_the_evse_is_free_for_everybody() -> None:
    async with started(auth_system(valid_tokens="WALKIN")) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await session_event(system, "evse1", "ReservationStart")
        await until(lambda: auth.slots[0].reserved)
        await swipe(system, "WALKIN")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "Rejected"
        await session_event(
            system, "evse1", "ReservationEnd", reservation_end={"reservation_id": 3, "reason": "Expired"}
        )
        await until(lambda: not auth.slots[0].reserved)
        await swipe(system, "WALKIN")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[1] == "Accepted"


@pytest.mark.parametrize("second_accepts", [False, True])
async def test_failing_validator_counts_as_unknown(second_accepts: bool) -> None:
    valid = "CARD1" if second_accepts else ""
    async with started(auth_system(table={"CARD1": "fail"}, valid_tokens=valid)) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")
        final = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert final["validation_results"][0] == {"authorization_status": "Unknown"}
        assert final["status"] == ("Accepted" if second_accepts else "Rejected")
        # Auth and the validator keep working after the fault
        await swipe(system, "NOBODY")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing"))[:2] == ("NOBODY", "Rejected")


async def test_withdraw_authorization_command() -> None:
    async with started(auth_system(evses=2)) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        assert await system.call("auth", "main", "withdraw_authorization", request={"evse_id": 9}) == "EvseNotFound"
        assert await system.call("auth", "main", "withdraw_authorization", request={}) == "AuthorizationNotFound"
        await swipe(system, "CARD1")
        await statuses.wait_for(lambda m: m["status"] == "Accepted")
        request = {"id_token": {"value": "card1", "type": "ISO14443"}}
        assert await system.call("auth", "main", "withdraw_authorization", request=request) == "Accepted"
        await system.instances["evse1"].wait_for_call("withdraw_authorization")
        assert status_of(await statuses.next()) == ("CARD1", "Withdrawn", 1)


async def test_malformed_token_is_ignored_and_auth_keeps_working() -> None:
    async with started(auth_system()) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await system.publish_var("reader", "main", "provided_token", {"id_token": {"type": "ISO14443"}})
        await system.publish_var("reader", "main", "provided_token", "DEADBEEF")
        await swipe(system, "CARD1")
        assert status_of(await statuses.next()) == ("CARD1", "Processing", None)
        assert (await statuses.next())["status"] == "Accepted"


async def test_inoperative_evse_gets_no_authorization_until_the_fault_clears() -> None:
    async with started(auth_system(evses=2)) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        system.instances["evse1"].raise_error("evse", "evse_manager/Inoperative", "relay welded")
        await until(lambda: auth.slots[0].faulted)
        await swipe(system, "CARD1")
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("CARD1", "Accepted", 2)
        system.instances["evse1"].clear_error("evse", "evse_manager/Inoperative")
        await until(lambda: not auth.slots[0].faulted)
        await swipe(system, "CARD2")
        assert status_of(await statuses.wait_for(lambda m: m["status"] == "Accepted")) == ("CARD2", "Accepted", 1)


async def test_with_plug_in_timeout_a_forgotten_car_does_not_catch_the_next_card() -> None:
    clock = FakeClock()
    config = auth_system(
        evses=2,
        algorithm="PlugEvents",
        auth_config={"connection_timeout": 30, "plug_in_timeout_enabled": True},
    )
    async with started(config, clock) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await plug_in(system, "evse1")
        await until(lambda: auth.slots[0].waiting_for_auth)
        await clock.advance(31)
        await swipe(system, "CARD1")  # evse1's car is too old: PlugEvents waits for a fresh plug-in
        await statuses.wait_for(lambda m: m["status"] == "Processing")
        await plug_in(system, "evse2")
        assert status_of(await statuses.wait_for(lambda m: m["status"] != "Processing")) == ("CARD1", "Accepted", 2)


async def test_a_token_swiped_again_while_it_is_handled_is_ignored() -> None:
    async with started(auth_system(evses=2, algorithm="PlugEvents")) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        await swipe(system, "CARD1")  # waits for a plug-in
        await statuses.wait_for(lambda m: m["status"] == "Processing")
        await swipe(system, "card1")
        await plug_in(system, "evse1")
        assert status_of(await statuses.next()) == ("CARD1", "Accepted", 1)
        await system.instances["evse1"].wait_for_call("authorize_response")
        await system.flush()
        assert statuses.drain() == []  # the repeat never got a Processing of its own


async def test_updated_validation_result_is_forwarded_to_the_evse_holding_the_token() -> None:
    table = {"CARD1": {"authorization_status": "Accepted"}}
    async with started(auth_system(table=table, valid_tokens="")) as system:
        evse = system.instances["evse1"]
        await transaction_started(system, "evse1", rfid("CARD1"))
        await until(lambda: system.instances["auth"].slots[0].transaction_token is not None)
        update = {"validation_result": {"authorization_status": "Blocked"}, "connector_id": 1}
        await system.publish_var("table", "validator", "validate_result_update", update)
        forwarded = await evse.wait_for_call("authorize_response")
        assert forwarded["validation_result"]["authorization_status"] == "Blocked"
        assert forwarded["provided_token"]["id_token"]["value"] == "CARD1"


async def test_settings_can_be_changed_at_run_time() -> None:
    clock = FakeClock()
    async with started(auth_system(valid_tokens="CARD1,BOSS:TOWING"), clock) as system:
        auth = system.instances["auth"]
        statuses = system.watch("auth", "main", "token_validation_status")
        await system.call("auth", "main", "set_master_pass_group_id", master_pass_group_id="towing")
        await system.call("auth", "main", "set_connection_timeout", connection_timeout=10)
        await transaction_started(system, "evse1", rfid("CARD1"))
        await until(lambda: auth.slots[0].transaction_token is not None)
        await swipe(system, "BOSS")
        stop = await system.instances["evse1"].wait_for_call("stop_transaction")
        assert stop["request"]["reason"] == "MasterPass"
        await session_event(system, "evse1", "TransactionFinished", transaction_finished={"reason": "MasterPass"})
        await session_event(system, "evse1", "SessionFinished")
        await until(lambda: auth.slots[0].transaction_token is None and not auth.slots[0].session_active)
        statuses.drain()
        await swipe(system, "CARD1")
        await statuses.wait_for(lambda m: m["status"] == "Accepted")
        await clock.advance(11)  # the new 10 s timeout, not the configured 60 s
        assert status_of(await statuses.next()) == ("CARD1", "TimedOut", 1)


@pytest.mark.parametrize(("sources", "expected"), [("ocpp", "Rejected"), ("ocpp,reader", "Accepted")])
async def test_a_prevalidated_token_counts_only_from_a_trusted_source(sources: str, expected: str) -> None:
    """A provider not named in prevalidated_token_sources cannot start a transaction by calling its token
    prevalidated: the token is validated like any other (here: not on the reader's list, Rejected). From a
    named source it is taken as it is."""
    config = auth_system(valid_tokens="CARD1", auth_config={"prevalidated_token_sources": sources})
    async with started(config) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        forged = {"id_token": {"value": "FORGED", "type": "Central"}, "authorization_type": "OCPP",
                  "prevalidated": True}
        await system.publish_var("reader", "main", "provided_token", forged)
        verdict = await statuses.wait_for(lambda m: m["status"] != "Processing")
        assert status_of(verdict)[:2] == ("FORGED", expected)
