"""Building blocks for Auth tests on the real bus: configs, session events, bounded waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from everpy.testing import RunningSystem

STANDINS = Path(__file__).resolve().parent / "standins"


def conn(module_id: str, impl_id: str) -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": impl_id}


def auth_system(
    evses: int = 1,
    algorithm: str = "FindFirst",
    valid_tokens: str = "*",
    table: dict[str, Any] | None = None,
    auth_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Auth with `evses` stand-in EVSEs (evse1.., EVSE ids 1..), the simulated reader as provider, the
    reader's own list as first validator and, if `table` is given, a table validator before it."""
    modules: dict[str, Any] = {
        f"evse{i}": {"module": "EvseStandIn", "config_module": {"evse_id": i}} for i in range(1, evses + 1)
    }
    modules["reader"] = {"module": "TokenProviderSimulator", "config_module": {"valid_tokens": valid_tokens}}
    validators = [conn("reader", "validator")]
    if table is not None:
        modules["table"] = {"module": "ValidatorStandIn", "config_module": {"results": json.dumps(table)}}
        validators.insert(0, conn("table", "validator"))
    modules["auth"] = {
        "module": "Auth",
        "config_module": {"selection_algorithm": algorithm, **(auth_config or {})},
        "connections": {
            "evse_manager": [conn(f"evse{i}", "evse") for i in range(1, evses + 1)],
            "token_provider": [conn("reader", "main")],
            "token_validator": validators,
        },
    }
    return {"active_modules": modules}


def rfid(value: str) -> dict[str, Any]:
    return {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": "RFID"}


async def session_event(system: RunningSystem, evse: str, event: str, **details: Any) -> None:
    """Publish a session event as the EVSE would."""
    payload = {"uuid": f"{evse}-session", "event": event, "timestamp": "2026-01-01T00:00:00Z", "connector_id": 1}
    await system.publish_var(evse, "evse", "session_event", {**payload, **details})


async def plug_in(system: RunningSystem, evse: str) -> None:
    await session_event(system, evse, "SessionStarted", session_started={"reason": "EVConnected"})
    await session_event(system, evse, "AuthRequired")


async def transaction_started(system: RunningSystem, evse: str, token: dict[str, Any]) -> None:
    await session_event(system, evse, "TransactionStarted", transaction_started={"id_tag": token})


async def swipe(system: RunningSystem, value: str) -> None:
    await system.call("reader", "control", "present_token", token=value, authorization_type="RFID")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until a condition on in-process module state holds, e.g. an event was handled."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def status_of(message: dict[str, Any]) -> tuple[str, str, int | None]:
    return message["token"]["id_token"]["value"], message["status"], message.get("evse_id")
