"""The websockets adapter works with both APIs: the asyncio one (websockets >= 13) and the legacy one,
which is all Yocto scarthgap's websockets 12.0 has."""

from __future__ import annotations

import base64

import pytest

from everpy.ocpp import transport


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # websockets.legacy, on purpose
@pytest.mark.parametrize("new_api", [True, False], ids=["asyncio-api", "legacy-api"])
async def test_client_and_server_on_either_api(monkeypatch, new_api: bool):
    if new_api and not transport.NEW_API:
        pytest.skip(f"websockets {transport.WEBSOCKETS_VERSION} has no asyncio API")
    monkeypatch.setattr(transport, "NEW_API", new_api)
    seen: list[tuple[str, str]] = []

    async def handler(connection, path, headers):
        seen.append((path, headers.get("Authorization", "")))
        await connection.send(f"echo {await connection.recv()}")

    def check(path, headers):
        if "Authorization" not in headers:
            return transport.Refusal(401, "no")
        return None

    server = await transport.serve(handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], check=check)
    port = transport.server_port(server)
    try:
        with pytest.raises(transport.InvalidHandshake):
            await transport.connect(f"ws://127.0.0.1:{port}/ocpp/CP9", subprotocols=["ocpp1.6"])
        auth = "Basic " + base64.b64encode(b"CP9:secret").decode()
        connection = await transport.connect(f"ws://127.0.0.1:{port}/ocpp/CP9", subprotocols=["ocpp1.6"],
                                             headers={"Authorization": auth})
        assert connection.subprotocol == "ocpp1.6"
        await connection.send("hello")
        assert await connection.recv() == "echo hello"
        await connection.close()
        assert seen == [("/ocpp/CP9", auth)]
    finally:
        server.close()
        await server.wait_closed()
