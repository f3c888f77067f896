"""The simulated card reader: schedule parsing, scheduled swipes, swipes on AuthRequired, its card list."""

from __future__ import annotations

import pytest
from everpy_modules.TokenProviderSimulator.simulator import parse_schedule, parse_valid_tokens

from everpy.core.clock import FakeClock
from everpy.testing import run_system

from .helpers import STANDINS, conn, rfid, session_event, until


def test_schedule_parsing() -> None:
    assert parse_schedule("5:AB; 10 ;0.5:cd", "DEF") == [(5.0, "AB"), (10.0, "DEF"), (0.5, "cd")]
    assert parse_schedule("", "DEF") == []
    with pytest.raises(ValueError, match="'soon:AB'.*not a number"):
        parse_schedule("soon:AB", "DEF")
    with pytest.raises(ValueError, match="negative"):
        parse_schedule("-1:AB", "DEF")
    with pytest.raises(ValueError, match="36"):
        parse_schedule("1:" + "X" * 37, "DEF")


def test_valid_token_list_parsing() -> None:
    assert parse_valid_tokens("A, b:Group ,") == {"a": None, "b": "Group"}


async def test_scheduled_swipes_follow_the_clock() -> None:
    clock = FakeClock()
    config = {
        "active_modules": {"reader": {"module": "TokenProviderSimulator", "config_module": {"schedule": "5:AA;10"}}}
    }
    async with run_system(config, clock=clock) as system:
        tokens = system.watch("reader", "main", "provided_token")
        await clock.advance(4)
        await system.flush()
        assert tokens.drain() == []
        await clock.advance(1)
        assert (await tokens.next())["id_token"]["value"] == "AA"
        await clock.advance(10)
        assert await tokens.next() == {
            "id_token": {"value": "DEADBEEF", "type": "ISO14443"},
            "authorization_type": "RFID",
        }


async def test_swipes_when_the_evse_asks_for_authorization() -> None:
    clock = FakeClock()
    config = {
        "active_modules": {
            "evse1": {"module": "EvseStandIn"},
            "reader": {
                "module": "TokenProviderSimulator",
                "config_module": {"present_on_auth_required": True, "auth_required_delay_s": 2, "token": "CAFE"},
                "connections": {"evse": [conn("evse1", "evse")]},
            },
        }
    }
    async with run_system(config, clock=clock, extra_module_dirs=[STANDINS]) as system:
        tokens = system.watch("reader", "main", "provided_token")
        reader = system.instances["reader"]
        await session_event(system, "evse1", "AuthRequired")
        await system.flush()
        await until(lambda: clock.pending_timers > 0)  # the reader saw AuthRequired and armed its delay
        await clock.advance(2)
        assert (await tokens.next())["id_token"]["value"] == "CAFE"
        assert reader.validate_token(rfid("cafe")) == {"authorization_status": "Accepted"}
