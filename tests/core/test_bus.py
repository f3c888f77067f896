"""Commands, vars and errors between modules on a real mosquitto."""

import asyncio

import pytest

from everpy import CommandTimeout, HandlerError, SchemaValidationError, UnknownCommandError
from everpy.core import wire
from everpy.testing import run_system

PAIR = {
    "active_modules": {
        "a": {"module": "Example", "connections": {"peer": [{"module_id": "b", "implementation_id": "main"}]}},
        "b": {"module": "Example", "config_module": {"step": 2}},
    }
}


async def test_command_round_trip_and_module_to_module_call():
    async with run_system(PAIR) as system:
        assert await system.call("a", "main", "add", a=1, b=2) == 3
        assert await system.call("a", "main", "peer_add", a=20, b=22) == 42


async def test_handler_exception_reaches_caller_typed_and_module_survives():
    async with run_system(PAIR) as system:
        with pytest.raises(HandlerError, match="asked to fail"):
            await system.call("a", "main", "fail")
        assert await system.call("a", "main", "add", a=2, b=2) == 4


async def test_arguments_are_validated_against_the_interface_schema():
    async with run_system(PAIR) as system:
        with pytest.raises(SchemaValidationError, match="'x' is not of type 'integer'"):
            await system.call("a", "main", "add", a="x", b=2)
        with pytest.raises(SchemaValidationError):
            await system.call("b", "main", "increment", by=0)  # below the schema minimum


async def test_call_timeout_is_typed():
    async with run_system(PAIR) as system:
        module_a = system.instances["a"]
        with pytest.raises(CommandTimeout):
            await module_a.require("peer").call("slow", seconds=2, timeout=0.2)


async def test_unknown_command_is_refused_before_sending():
    async with run_system(PAIR) as system:
        with pytest.raises(UnknownCommandError):
            await system.instances["a"].require("peer").call("no_such_cmd")


async def test_vars_reach_subscribers_in_order():
    async with run_system(PAIR) as system:
        seen = system.watch("b", "main", "value")
        for _ in range(50):
            await system.call("b", "main", "increment", by=1)
        first = await seen.wait_for(lambda v: v >= 1, timeout=5)  # skip the value published at ready
        values = [first] + [await seen.next(timeout=5) for _ in range(49)]
        assert values == list(range(1, 51))
        module_a = system.instances["a"]
        await asyncio.wait_for(_until(lambda: len(module_a.peer_values) >= 50), 5)
        assert module_a.peer_values[-50:] == list(range(1, 51))


async def test_errors_raise_once_and_clear():
    async with run_system(PAIR) as system:
        errors = system.watch_errors("b", "main")
        await system.flush()  # the probe's subscription is in place before the module raises directly
        b = system.instances["b"]
        b.raise_error("main", "example/Overflow", "too big")
        b.raise_error("main", "example/Overflow", "too big again")  # already active: no second event
        b.clear_error("main", "example/Overflow")
        raised = await errors.next(timeout=5)
        cleared = await errors.next(timeout=5)
        assert (raised["type"], raised["state"], raised["message"]) == ("example/Overflow", "Active", "too big")
        assert raised["origin"] == {"module_id": "b", "implementation_id": "main"}
        assert cleared["state"] == "ClearedByModule" and cleared["uuid"] == raised["uuid"]
        assert b.active_errors("main") == []
        with pytest.raises(KeyError, match="not declared"):
            b.raise_error("main", "evse_board_support/DiodeFault")


async def test_malformed_bus_payloads_are_dropped_and_nothing_dies():
    async with run_system(PAIR) as system:
        topic = system.topics.cmd("a", "main", "add")
        for junk in (b"not json", b"[]", b'{"msg_type":"Cmd"}', b'{"msg_type":"Cmd","data":{"id":5}}',
                     b'{"msg_type":"Cmd","data":{"id":"x","origin":"a/b","args":{}}}', b"\xff\xfe"):
            system.publish_raw(topic, junk)
        system.publish_raw(system.topics.var("b", "main", "value"), b"{broken")
        await system.publish_var("b", "main", "value", "not an integer")  # valid JSON, outside the schema
        await system.publish_var("b", "main", "value", 7)
        await system.flush()
        assert await system.call("a", "main", "add", a=1, b=1) == 2
        module_a = system.instances["a"]
        await asyncio.wait_for(_until(lambda: 7 in module_a.peer_values), 5)
        assert "not an integer" not in module_a.peer_values
        assert system.runtime.host.slots["a"].crashes == 0


async def test_wire_format_matches_everest_envelope():
    async with run_system(PAIR) as system:
        requests = system.watch_topic(system.topics.cmd("a", "main", "add"))
        replies = system.watch_topic(system.topics.cmd("a", "main", "add") + "/response/+")
        await system.call("a", "main", "add", a=5, b=6)
        msg_type, data = wire.decode(await requests.next(), wire.CMD)
        assert data["args"] == {"a": 5, "b": 6} and set(data) == {"id", "args", "origin"}
        msg_type, reply = wire.decode(await replies.next(), wire.CMD_RESULT)
        assert reply["type"] == "result"
        assert reply["data"] == {"id": data["id"], "retval": 11, "origin": "a"}


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
