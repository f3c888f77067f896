"""Malformed, oversized and random input from a raw socket: errors or a closed connection, never a dead
server (after every case a fresh well-behaved client still gets answers)."""

from __future__ import annotations

import asyncio
import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_testkit import RawClient

from everpy.rpc import RpcPeer, RpcServer, connect
from everpy.rpc.protocol import BadMessage, Notification, Request, Response, classify


async def assert_server_alive(server: RpcServer) -> None:
    peer = await connect("127.0.0.1", server.port)
    try:
        assert await peer.call("add", 40, 2) == 42
    finally:
        await peer.aclose()


@pytest.mark.parametrize("message", [
    [0, 7, 42, []],            # method name not a string
    [0, 7, "add", {"a": 1}],   # params not an array
    [0, 7, "add", 1],
    [0, 7, "add"],             # wrong arity, id readable
    [0, 7, "add", [1, 2], 3],
])
async def test_invalid_request_with_readable_id_gets_an_error_response(server: RpcServer, raw: RawClient,
                                                                      message: list) -> None:
    await raw.send_obj(message)
    answer = await raw.receive()
    assert answer[:2] == [1, 7] and answer[2]["type"] == "InvalidRequest" and answer[3] is None
    await raw.send_obj([0, 8, "add", [1, 2]])  # same connection still served
    assert await raw.receive() == [1, 8, None, 3]


@pytest.mark.parametrize("message", [
    "hello", 42, None, {"0": 1}, [], [3, 1, "x", []], [True, 1, "add", []], [0, -1, "add", []],
    [0, 2**32, "add", []], [0, "id", "add", []], [1, 1], [2, "x"], [2, 5, []], [0.0, 1, "add", []],
])
async def test_non_rpc_messages_close_the_connection(server: RpcServer, raw: RawClient, message: object) -> None:
    await raw.send_obj(message)
    await raw.expect_closed()
    await assert_server_alive(server)


@pytest.mark.parametrize("data", [
    b"\xc1",                         # never-used msgpack byte
    b"\x91" * 5000,                  # nesting deeper than the unpacker allows
], ids=["reserved-byte", "deep-nesting"])
async def test_undecodable_bytes_close_the_connection(server: RpcServer, raw: RawClient, data: bytes) -> None:
    await raw.send(data)
    await raw.expect_closed()
    await assert_server_alive(server)


async def test_non_utf8_str_from_old_spec_peers_round_trips(server: RpcServer, raw: RawClient) -> None:
    # old msgpack "raw" (str type) carrying arbitrary bytes, as msgpack-python 0.5 sends bytes
    await raw.send(b"\x94\x00\x01\xa4echo\x91\xa2\x00\xff")  # [0, 1, "echo", [raw 00 ff]]
    expected = b"\x94\x01\x01\xc0\xa2\x00\xff"  # [1, 1, nil, raw 00 ff]: same bytes, still str-typed
    async with asyncio.timeout(10):
        assert await raw.reader.readexactly(len(expected)) == expected


async def test_oversized_frame_closes_the_connection_with_a_log_line(server: RpcServer, raw: RawClient,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    # the fixture server allows 64 KiB frames
    await raw.send_obj([0, 1, "echo", [b"x" * (64 * 1024)]])
    await raw.expect_closed()
    assert any("exceeds the limit" in r.getMessage() for r in caplog.records)
    await assert_server_alive(server)


async def test_oversized_frame_is_refused_before_it_is_complete(server: RpcServer, raw: RawClient) -> None:
    # header announces 10 MB; the server must not wait for (or buffer) all of it
    await raw.send(b"\x94\x00\x01\xa4echo\x91\xc6" + (10_000_000).to_bytes(4, "big") + b"x" * 200_000)
    await raw.expect_closed()
    await assert_server_alive(server)


async def test_frame_just_under_the_limit_is_served(server: RpcServer, client: RpcPeer) -> None:
    payload = b"x" * (64 * 1024 - 100)
    assert await client.call("echo", payload) == payload


async def test_frames_split_at_every_byte_are_reassembled(server: RpcServer, raw: RawClient) -> None:
    data = msgpack.packb([0, 3, "add", [1, 2]]) + msgpack.packb([0, 4, "echo", ["ü"]])
    for i in range(len(data)):
        await raw.send(data[i:i + 1])
    assert await raw.receive() == [1, 3, None, 3]
    assert await raw.receive() == [1, 4, None, "ü"]


async def test_stray_response_and_bad_notification_are_dropped(server: RpcServer, raw: RawClient) -> None:
    await raw.send_obj([1, 999, None, "nobody asked"])
    await raw.send_obj([2, "no_such_notification", [1]])
    await raw.send_obj([2, "add", [1]])  # notification with wrong arity
    await raw.send_obj([0, 5, "add", [2, 2]])
    assert await raw.receive() == [1, 5, None, 4]


async def test_seeded_random_byte_streams_never_kill_the_server(server: RpcServer) -> None:
    rng = random.Random(20261121)
    valid = msgpack.packb([0, 1, "add", [1, 2]])
    for _ in range(60):
        raw = await RawClient.open(server.port)
        kind = rng.randrange(3)
        if kind == 0:  # pure noise
            data = rng.randbytes(rng.randrange(1, 300))
        elif kind == 1:  # a valid frame with flipped bytes
            data = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:  # truncated valid frames followed by noise
            data = valid[: rng.randrange(len(valid))] + rng.randbytes(rng.randrange(20))
        await raw.send(data)
        await raw.close()
    await assert_server_alive(server)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=10) | st.binary(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=20,
)
rpc_like = st.one_of(
    msgpack_values,
    st.tuples(st.sampled_from([0, 1, 2, 3, -1]), msgpack_values, msgpack_values, msgpack_values).map(list),
    st.tuples(st.sampled_from([0, 1, 2]), msgpack_values, msgpack_values).map(list),
    st.tuples(st.just(0), st.integers(0, 2**32 - 1), st.sampled_from(["add", "echo", "fail", "x"]),
              st.lists(msgpack_values, max_size=3)).map(list),
)


@given(rpc_like)
@settings(max_examples=200, deadline=None, database=None)
def test_classify_accepts_exactly_the_spec(obj: object) -> None:
    message = classify(obj)
    is_list = isinstance(obj, list)
    if isinstance(message, Request):
        assert is_list and len(obj) == 4 and obj[0] == 0 and isinstance(message.params, list)
        assert 0 <= message.msgid < 2**32 and isinstance(message.method, str)
    elif isinstance(message, Response):
        assert is_list and len(obj) == 4 and obj[0] == 1 and 0 <= message.msgid < 2**32
    elif isinstance(message, Notification):
        assert is_list and len(obj) == 3 and obj[0] == 2 and isinstance(message.params, list)
    else:
        assert isinstance(message, BadMessage) and message.reason


@given(st.lists(rpc_like, min_size=1, max_size=4))
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_fuzzed_messages_get_answers_or_a_close_and_the_server_lives(server: RpcServer,
                                                                          messages: list) -> None:
    raw = await RawClient.open(server.port)
    try:
        await raw.send(b"".join(msgpack.packb(m, use_bin_type=True) for m in messages))
        await raw.send_obj([0, 4242, "add", [1, 1]])
        while True:  # either the probe is answered, or the connection was closed for a bad message
            try:
                answer = await raw.receive()
            except EOFError:
                break
            assert isinstance(answer, list) and answer[0] == 1
            if answer[1] == 4242:
                assert answer == [1, 4242, None, 2]
                break
    finally:
        await raw.close()
    await assert_server_alive(server)
