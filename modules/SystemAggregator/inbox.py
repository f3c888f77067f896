"""The main board's upload inbox: where every board drops its log archive during one diagnostics request.

An HTTP(S) server (aiohttp) that runs only while a collection is under way. Each board gets its own
location `http://<host>:<port>/<token>/` with a fresh random token: the token is the credential, it
admits exactly one completed upload (failed attempts may be retried) and dies with the collection.
Any other path, a reused token or an oversized body is refused, and nothing outside the inbox
directory is ever written.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, StreamReader, web

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class UploadTooLarge(Exception):
    pass


@dataclass
class Slot:
    """One board's expected upload."""

    board: str
    directory: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    received: asyncio.Future[Path] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    busy: bool = False


class UploadInbox:
    def __init__(
        self, directory: Path, *, bind_host: str, port: int, max_bytes: int, tls: ssl.SSLContext | None = None
    ) -> None:
        self.directory = directory
        self.tls = tls
        self.bind_host = bind_host
        self.port = port
        self.max_bytes = max_bytes
        self._slots: dict[str, Slot] = {}
        app = web.Application(client_max_size=max_bytes)
        app.router.add_put("/{token}/{name}", self._put)
        app.router.add_post("/{token}/", self._post)
        self._runner = web.AppRunner(app, access_log=None)

    async def __aenter__(self) -> UploadInbox:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind_host, self.port, ssl_context=self.tls)
        await site.start()
        addresses = self._runner.addresses  # (host, port, ...) of each listening socket of the site above
        assert addresses, "the upload inbox site listens on no socket"
        self.port = addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
        for slot in self._slots.values():
            if not slot.received.done():
                slot.received.cancel()

    def expect(self, board: str) -> Slot:
        """A fresh one-time location for `board`."""
        slot = Slot(board, self.directory / SAFE_NAME.sub("_", board))
        self._slots[slot.token] = slot
        return slot

    def location(self, slot: Slot, host: str) -> str:
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}/{slot.token}/"

    # -----------------------------------------------------------------------------------------

    def _claim(self, token: str) -> Slot | None:
        slot = self._slots.get(token)
        if slot is None or slot.busy or slot.received.done():
            return None
        slot.busy = True
        return slot

    async def _put(self, request: web.Request) -> web.Response:
        slot = self._claim(request.match_info["token"])
        if slot is None:
            return web.Response(status=403, text="unknown or used upload location")
        try:
            return await self._store(slot, request.match_info["name"], request.content)
        finally:
            slot.busy = False

    async def _post(self, request: web.Request) -> web.Response:
        slot = self._claim(request.match_info["token"])
        if slot is None:
            return web.Response(status=403, text="unknown or used upload location")
        try:
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    return await self._store(slot, part.filename or "upload.tar.gz", part)
            return web.Response(status=400, text="multipart field 'file' missing")
        finally:
            slot.busy = False

    async def _store(self, slot: Slot, name: str, body: StreamReader | BodyPartReader) -> web.Response:
        target = slot.directory / (SAFE_NAME.sub("_", Path(name).name).lstrip(".") or "upload")
        partial = target.with_name(target.name + ".part")
        await asyncio.to_thread(slot.directory.mkdir, parents=True, exist_ok=True)
        sink = await asyncio.to_thread(partial.open, "wb")
        try:
            size = 0
            while chunk := await _read_chunk(body):
                size += len(chunk)
                if size > self.max_bytes:
                    raise UploadTooLarge
                await asyncio.to_thread(sink.write, chunk)
        except UploadTooLarge:
            await asyncio.to_thread(sink.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            return web.Response(status=413, text=f"upload larger than {self.max_bytes} bytes")
        except BaseException:
            await asyncio.to_thread(sink.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(sink.close)
        await asyncio.to_thread(partial.replace, target)
        slot.received.set_result(target)
        return web.Response(status=201)


async def _read_chunk(body: StreamReader | BodyPartReader) -> bytes:
    if isinstance(body, BodyPartReader):
        return await body.read_chunk(64 * 1024)
    return await body.read(64 * 1024)
