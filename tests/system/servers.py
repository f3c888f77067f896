"""Real FTP and HTTP servers for transfer tests (also usable by other test suites, e.g. multi-board).

- `FtpServer`: pyftpdlib in a background thread on a free loopback port; one user with full rights
  in `root`, anonymous read-only access. Uploads are announced through `wait_for_file`.
- `HttpServer`: aiohttp in the test's event loop on a free loopback port; serves `root` for GET,
  accepts PUT `/upload/<name>` and multipart POST `/upload/`, can demand Basic auth and can fail the
  next N requests with 503 to exercise retries.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

FTP_USER = "uploader"
FTP_PASSWORD = "s3cret:/@x"  # characters that must survive URL quoting


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Wait (bounded) until `predicate()` holds; for state that has no event to wait on."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class FtpServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmwMT")
        authorizer.add_anonymous(str(root), perm="elr")
        received = self._received = threading.Condition()
        self.stored: list[Path] = []
        stored = self.stored

        class Handler(FTPHandler):
            def on_file_received(self, file: str) -> None:
                with received:
                    stored.append(Path(file))
                    received.notify_all()

        Handler.authorizer = authorizer
        Handler.passive_ports = None
        Handler.auth_failed_timeout = 0  # pyftpdlib delays a failed login by 3 s by default
        self._server = FTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/", *, user: str | None = FTP_USER, password: str = FTP_PASSWORD) -> str:
        from urllib.parse import quote

        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
        return f"ftp://{credentials}127.0.0.1:{self.port}{path}"

    async def wait_for_file(self, name: str, timeout: float = 15.0) -> Path:
        def wait() -> Path:
            with self._received:
                found = self._received.wait_for(lambda: next((p for p in self.stored if p.name == name), None), timeout)
            if found is None:
                raise TimeoutError(f"FTP server did not receive {name}")
            return found

        return await asyncio.to_thread(wait)

    def _serve(self) -> None:
        # Closing from this thread, after the loop ended, keeps pyftpdlib's loop off closed sockets.
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self._server.close_all()

    def __enter__(self) -> FtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def tls_server_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 signed by a fresh test CA, and the CA's PEM file for clients."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(name("test CA"))
        .public_key(server_key.public_key()).serial_number(2)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, chain_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain_file, key_file)
    return context, ca_file


class HttpServer:
    def __init__(self, root: Path, *, authorization: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.tls = tls
        root.mkdir(parents=True, exist_ok=True)
        self.authorization = authorization  # expected Authorization header, e.g. basic_auth(...)
        self.fail_next = 0  # answer this many requests with 503 first
        self.cut_next = 0  # send only half of the body of this many GETs, then drop the connection
        self.ranges: list[str | None] = []  # the Range header of every GET
        self.requests: list[tuple[str, str]] = []
        self.uploads: dict[str, bytes] = {}
        self._upload_arrived = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/files/{name}", self._get)
        app.router.add_put("/upload/{name}", self._put)
        app.router.add_post("/upload/", self._post)
        self._runner = web.AppRunner(app)
        self.port = 0

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    async def wait_for_upload(self, name: str, timeout: float = 15.0) -> bytes:
        async with asyncio.timeout(timeout):
            while name not in self.uploads:
                self._upload_arrived.clear()
                await self._upload_arrived.wait()
        return self.uploads[name]

    async def __aenter__(self) -> HttpServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path))
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="try again later")
        if self.authorization is not None and request.headers.get("Authorization") != self.authorization:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="test"'})
        return None

    async def _get(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.ranges.append(request.headers.get("Range"))
        path = self.root / request.match_info["name"]
        if not path.is_file():
            return web.Response(status=404)
        if self.cut_next > 0:
            self.cut_next -= 1
            content = path.read_bytes()
            response = web.StreamResponse(headers={"Content-Length": str(len(content))})
            await response.prepare(request)
            await response.write(content[: len(content) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.FileResponse(path)  # serves Range requests with 206

    async def _put(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self._store(request.match_info["name"], await request.read())
        return web.Response(status=201)

    async def _post(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        form = await request.post()
        field = form.get("file")
        if not isinstance(field, web.FileField):
            return web.Response(status=400, text="multipart field 'file' missing")
        self._store(field.filename, field.file.read())
        return web.Response(status=200)

    def _store(self, name: str, content: bytes) -> None:
        self.uploads[name] = content
        self._upload_arrived.set()
