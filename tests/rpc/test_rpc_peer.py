"""Calls, notifications and errors between two everpy peers over real TCP on loopback."""

from __future__ import annotations

import asyncio

import pytest

from everpy.rpc import ConnectionLost, MethodRegistry, RpcError, RpcPeer, RpcServer, RpcTimeout, connect


async def test_call_returns_result(client: RpcPeer) -> None:
    assert await client.call("add", 2, 3) == 5
    value = {"a": [1, 2.5, None, True, "ü"], "b": b"\x00\xff", "n": -(2**63)}
    assert await client.call("echo", value) == value


async def test_responses_come_back_out_of_order(client: RpcPeer) -> None:
    order: list[str] = []

    async def timed(name: str, seconds: float) -> None:
        await client.call("sleep_then", seconds, name)
        order.append(name)

    await asyncio.gather(timed("slow", 0.3), timed("fast", 0.0))
    assert order == ["fast", "slow"]


async def test_unknown_method_is_an_error_response(client: RpcPeer) -> None:
    with pytest.raises(RpcError) as caught:
        await client.call("no_such_method", 1)
    assert caught.value.kind == "NoSuchMethod"
    assert await client.call("add", 1, 1) == 2  # connection still usable


async def test_wrong_arity_is_invalid_params(client: RpcPeer) -> None:
    with pytest.raises(RpcError) as caught:
        await client.call("add", 1)
    assert caught.value.kind == "InvalidParams"


async def test_handler_exception_becomes_error_response(client: RpcPeer) -> None:
    with pytest.raises(RpcError) as caught:
        await client.call("fail", "boom")
    assert caught.value.kind == "HandlerError"
    assert "ValueError: boom" in caught.value.message
    assert await client.call("add", 1, 1) == 2


async def test_unpackable_result_becomes_error_response(client: RpcPeer) -> None:
    with pytest.raises(RpcError) as caught:
        await client.call("unpackable")
    assert caught.value.kind == "ResultNotSerialisable"


async def test_handler_may_answer_with_its_own_error_kind(server: RpcServer, client: RpcPeer) -> None:
    def refuse() -> None:
        raise RpcError("Busy", "try later", {"retry_after": 2})

    server.registry.register("refuse", refuse)
    with pytest.raises(RpcError) as caught:
        await client.call("refuse")
    error = caught.value
    assert (error.kind, error.message, error.data) == ("Busy", "try later", {"retry_after": 2})


async def test_call_timeout_keeps_the_connection(client: RpcPeer) -> None:
    with pytest.raises(RpcTimeout):
        await client.call("sleep_then", 2, "late", timeout=0.05)
    assert await client.call("add", 1, 1) == 2  # the late answer is dropped, nothing is confused


async def test_unpackable_param_raises_locally_and_sends_nothing(client: RpcPeer) -> None:
    with pytest.raises(TypeError):
        await client.call("echo", object())
    assert await client.call("add", 1, 1) == 2


async def test_server_pushes_notifications_to_clients_in_order(server: RpcServer) -> None:
    received: list[asyncio.Queue[int]] = [asyncio.Queue(), asyncio.Queue()]
    peers = []
    for queue in received:
        registry = MethodRegistry()
        registry.register("tick", queue.put_nowait)
        peers.append(await connect("127.0.0.1", server.port, registry))
    try:
        for peer in peers:
            assert await peer.call("add", 0, 0) == 0  # connected and known to the server
        for n in range(100):
            server.broadcast("tick", n)
        for queue in received:
            assert [await asyncio.wait_for(queue.get(), 10) for _ in range(100)] == list(range(100))
    finally:
        for peer in peers:
            await peer.aclose()


async def test_notifications_keep_their_order_even_with_async_handlers() -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def record(n: int) -> None:
        await asyncio.sleep(0.001 if n % 2 else 0)  # uneven handler durations must not reorder
        seen.append(n)
        if n == 49:
            done.set()

    registry = MethodRegistry()
    registry.register("record", record)
    server = RpcServer(registry)
    await server.start("127.0.0.1", 0)
    peer = await connect("127.0.0.1", server.port)
    try:
        for n in range(50):
            peer.notify("record", n)
        await asyncio.wait_for(done.wait(), 10)
        assert seen == list(range(50))
    finally:
        await peer.aclose()
        await server.close()


async def test_both_sides_call_each_other_on_one_connection() -> None:
    client_registry = MethodRegistry()
    client_registry.register("whoami", lambda: "client")
    server_side: asyncio.Future[RpcPeer] = asyncio.get_running_loop().create_future()
    server_registry = MethodRegistry()

    async def ask_back() -> str:
        # a handler calling the other side while its own request is open: no deadlock
        return "server+" + await server_side.result().call("whoami")

    server_registry.register("ask_back", ask_back)
    server = RpcServer(server_registry, on_connect=server_side.set_result)
    await server.start("127.0.0.1", 0)
    peer = await connect("127.0.0.1", server.port, client_registry)
    try:
        assert await peer.call("ask_back") == "server+client"
        assert await server_side.result().call("whoami") == "client"
    finally:
        await peer.aclose()
        await server.close()


async def test_pending_calls_fail_with_connection_lost_when_the_server_goes(server: RpcServer,
                                                                           client: RpcPeer) -> None:
    pending = asyncio.ensure_future(client.call("sleep_then", 30, "never"))
    assert await client.call("add", 1, 1) == 2  # the slow call is now in flight at the server
    closed = asyncio.Event()
    client.on_close(lambda _peer: closed.set())
    await server.close()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 10)
    await asyncio.wait_for(closed.wait(), 10)
    with pytest.raises(ConnectionLost):
        await client.call("add", 1, 1)
    with pytest.raises(ConnectionLost):
        client.notify("echo", 1)


async def test_connect_to_a_closed_port_raises_connection_lost() -> None:
    server = RpcServer()
    await server.start("127.0.0.1", 0)
    port = server.port
    await server.close()
    with pytest.raises(ConnectionLost):
        await connect("127.0.0.1", port, connect_timeout=5)


async def test_many_concurrent_calls_match_their_answers(client: RpcPeer) -> None:
    results = await asyncio.gather(*(client.call("add", n, 1000) for n in range(500)))
    assert results == [n + 1000 for n in range(500)]


async def test_registry_refuses_duplicate_names() -> None:
    registry = MethodRegistry()
    registry.register("a", lambda: 1)
    with pytest.raises(ValueError):
        registry.register("a", lambda: 2)
    assert "a" in registry and registry.names() == ["a"]


@pytest.mark.parametrize(("error", "kind", "message"), [
    ("plain text", "Remote", "plain text"),
    (0, "Remote", "0"),  # falsy error objects are still errors
    ({"type": "X", "message": "m"}, "X", "m"),
    (["from msgpack-rpc-python"], "Remote", "from msgpack-rpc-python"),
])
def test_error_objects_of_any_shape_are_understood(error: object, kind: str, message: str) -> None:
    parsed = RpcError.from_wire(error)
    assert (parsed.kind, parsed.message, parsed.raw) == (kind, message, error)
