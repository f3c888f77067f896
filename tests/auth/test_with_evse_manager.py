"""Auth and energy management with two real EvseManagers, simulated boards and cars, on the real bus.

The car decides where it plugs in; Auth must send the card there (PlugEvents), the EnergyManager must
split the 32 A fuse once both charge, and the same card must stop its own transaction.
"""

from __future__ import annotations

from everpy.core.clock import FakeClock
from everpy.testing import run_system

from .helpers import conn, swipe, until

WAIT_S = 20.0  # generous: other suites share the two cores
CAR_SCRIPT = "iec_wait_pwr_ready;draw_power_regulated 32,3;sleep 600"


def evse_system(count: int = 2) -> dict:
    modules: dict = {}
    for i in range(1, count + 1):
        modules[f"evse{i}"] = {
            "module": "EvseManager",
            "config_module": {
                "connector_id": i,
                "status_interval_s": 0,
                "pwm_min_change_interval_s": 0,
                "energy_request_interval_s": 0.2,
                "initial_meter_value_timeout_ms": 0,
            },
            "connections": {
                "bsp": [conn(f"board{i}", "board_support")],
                "powermeter": [conn(f"board{i}", "powermeter")],
            },
        }
        modules[f"board{i}"] = {"module": "BoardSupportSimulator", "config_module": {"max_current_A": 32}}
        modules[f"car{i}"] = {
            "module": "EvSimulator",
            "connections": {"ev_board_support": [conn(f"board{i}", "ev_board_support")]},
        }
    modules["reader"] = {"module": "TokenProviderSimulator", "config_module": {"valid_tokens": "ALICE,BOB"}}
    modules["auth"] = {
        "module": "Auth",
        "config_module": {"selection_algorithm": "PlugEvents", "connection_timeout": 60},
        "connections": {
            "token_provider": [conn("reader", "main")],
            "token_validator": [conn("reader", "validator")],
            "evse_manager": [conn(f"evse{i}", "evse") for i in range(1, count + 1)],
        },
    }
    modules["grid"] = {
        "module": "EnergyNode",
        "config_module": {"fuse_limit_A": 32},
        "connections": {"energy_consumer": [conn(f"evse{i}", "energy_grid") for i in range(1, count + 1)]},
    }
    modules["em"] = {
        "module": "EnergyManager",
        "config_module": {"update_interval": 0.2},
        "connections": {"energy_trunk": [conn("grid", "energy_grid")]},
    }
    return {"active_modules": modules}


def event_named(name: str):
    return lambda event: event["event"] == name


async def test_card_follows_the_car_the_fuse_is_shared_and_the_card_stops_its_session() -> None:
    async with run_system(evse_system()) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        events = {i: system.watch(f"evse{i}", "evse", "session_event") for i in (1, 2)}
        limits = {i: system.watch(f"evse{i}", "evse", "limits") for i in (1, 2)}

        # Alice swipes first, then plugs in at EVSE 2: PlugEvents waits for her car
        await swipe(system, "ALICE")
        await statuses.wait_for(lambda m: m["status"] == "Processing", WAIT_S)
        await system.call("car2", "main", "execute_charging_session", value=CAR_SCRIPT)
        accepted = await statuses.wait_for(lambda m: m["status"] != "Processing", WAIT_S)
        assert (accepted["status"], accepted["evse_id"]) == ("Accepted", 2)
        started = await events[2].wait_for(event_named("TransactionStarted"), WAIT_S)
        assert started["transaction_started"]["id_tag"]["id_token"]["value"] == "ALICE"
        await statuses.wait_for(lambda m: m["status"] == "UsedToStart", WAIT_S)
        # alone behind the fuse, EVSE 2 may use all of it
        await limits[2].wait_for(lambda v: v["max_current"] == 32, WAIT_S)

        # Bob plugs in at EVSE 1 and swipes: the fuse is now split
        await system.call("car1", "main", "execute_charging_session", value=CAR_SCRIPT)
        await events[1].wait_for(event_named("AuthRequired"), WAIT_S)
        await swipe(system, "BOB")
        bob = await statuses.wait_for(lambda m: m["token"]["id_token"]["value"] == "BOB" and m["status"] == "Accepted")
        assert bob["evse_id"] == 1
        await events[1].wait_for(event_named("TransactionStarted"), WAIT_S)
        for i in (1, 2):
            await limits[i].wait_for(lambda v: v["max_current"] == 16, WAIT_S)

        # Alice's card again: her transaction (and only hers) ends
        await swipe(system, "ALICE")
        finished = await events[2].wait_for(event_named("TransactionFinished"), WAIT_S)
        assert finished["transaction_finished"]["reason"] == "Local"
        await statuses.wait_for(lambda m: m["status"] == "UsedToStop" and m["evse_id"] == 2, WAIT_S)
        assert not any(e["event"] == "TransactionFinished" for e in events[1].drain())
        # and Bob gets the whole fuse back
        await limits[1].wait_for(lambda v: v["max_current"] == 32, WAIT_S)


async def test_reserved_evse_refuses_a_walk_in_card_until_the_reservation_ends() -> None:
    async with run_system(evse_system(count=1)) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        events = system.watch("evse1", "evse", "session_event")
        assert await system.call("evse1", "evse", "reserve", reservation_id=7) is True
        await events.wait_for(event_named("ReservationStart"), WAIT_S)
        await until(lambda: system.instances["auth"].slots[0].reserved)
        await swipe(system, "ALICE")  # her card holds no reservation
        assert (await statuses.wait_for(lambda m: m["status"] != "Processing", WAIT_S))["status"] == "Rejected"
        await system.call("evse1", "evse", "cancel_reservation")
        await events.wait_for(event_named("ReservationEnd"), WAIT_S)
        await until(lambda: not system.instances["auth"].slots[0].reserved)
        await swipe(system, "ALICE")
        assert (await statuses.wait_for(lambda m: m["status"] != "Processing", WAIT_S))["status"] == "Accepted"


async def test_card_without_car_times_out_and_the_evse_is_free_again() -> None:
    clock = FakeClock()
    async with run_system(evse_system(count=1), clock=clock) as system:
        statuses = system.watch("auth", "main", "token_validation_status")
        events = system.watch("evse1", "evse", "session_event")
        await swipe(system, "ALICE")
        await statuses.wait_for(lambda m: m["status"] == "Accepted", WAIT_S)
        started = await events.wait_for(event_named("SessionStarted"), WAIT_S)
        assert started["session_started"]["reason"] == "Authorized"
        await clock.advance(61)  # connection_timeout is 60 s
        timed_out = await statuses.wait_for(lambda m: m["status"] != "Accepted", WAIT_S)
        assert (timed_out["status"], timed_out["evse_id"]) == ("TimedOut", 1)
        await events.wait_for(event_named("SessionFinished"), WAIT_S)
        await until(lambda: not system.instances["auth"].slots[0].session_active)
        await swipe(system, "BOB")
        bob = await statuses.wait_for(
            lambda m: m["token"]["id_token"]["value"] == "BOB" and m["status"] != "Processing"
        )
        assert bob["status"] == "Accepted"
