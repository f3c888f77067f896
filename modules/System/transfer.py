"""File transfer for firmware downloads and log uploads: http(s) through aiohttp, ftp(s) through ftplib.

ftplib blocks, so every FTP session runs in a worker thread (asyncio.to_thread); HTTP bodies are
streamed and the file side is read/written off the event loop as well.

Failures are raised as TransferError with an outcome that tells the caller whether a retry can help
and which OCPP log status describes it.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ftplib
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
import yarl

CHUNK_SIZE = 64 * 1024
HTTP_SCHEMES = ("http", "https")
FTP_SCHEMES = ("ftp", "ftps")
HTTP_UPLOAD_METHODS = ("PUT", "POST")
FTP_PERMISSION_CODES = ("530", "532", "550", "553")

T = TypeVar("T")


class TransferOutcome(enum.Enum):
    """Why a transfer failed; the value is the matching OCPP log status."""

    FAILED = "UploadFailure"  # network or server trouble: worth retrying
    PERMISSION_DENIED = "PermissionDenied"  # credentials refused: a retry gives the same answer
    BAD_LOCATION = "BadMessage"  # the URL itself is unusable
    UNSUPPORTED = "NotSupportedOperation"  # a scheme we do not speak

    @property
    def retryable(self) -> bool:
        return self is TransferOutcome.FAILED


class TransferError(Exception):
    def __init__(self, message: str, outcome: TransferOutcome = TransferOutcome.FAILED) -> None:
        super().__init__(message)
        self.outcome = outcome


class Sleeper(Protocol):
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Location:
    """A parsed transfer URL with the credentials split off (so they never end up in a log line)."""

    scheme: str
    host: str
    port: int | None
    path: str
    username: str | None
    password: str | None
    url_without_credentials: str

    @classmethod
    def parse(cls, url: str) -> Location:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise TransferError(f"unusable URL: {exc}", TransferOutcome.BAD_LOCATION) from exc
        scheme = parts.scheme.lower()
        if scheme not in HTTP_SCHEMES + FTP_SCHEMES:
            raise TransferError(
                f"unsupported URL scheme {scheme!r} (expected http, https, ftp or ftps)",
                TransferOutcome.UNSUPPORTED,
            )
        if not parts.hostname:
            raise TransferError(f"URL has no host: {redact(url)}", TransferOutcome.BAD_LOCATION)
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if port is not None:
            netloc += f":{port}"
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port,
            path=parts.path,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            url_without_credentials=urlunsplit((scheme, netloc, parts.path, parts.query, "")),
        )

    @property
    def request_url(self) -> yarl.URL:
        """The URL exactly as given (no re-quoting: a pre-signed URL's signature covers its spelling)."""
        return yarl.URL(self.url_without_credentials, encoded=True)

    @property
    def has_query(self) -> bool:
        return "?" in self.url_without_credentials

    def with_file_name(self, file_name: str) -> Location:
        """The location of `file_name` inside this directory-like location.

        A URL with a query string (e.g. a pre-signed upload URL) already names its target and is kept."""
        if self.has_query:
            return self
        path = self.path if self.path.endswith("/") else self.path + "/"
        base = self.url_without_credentials
        base = base if base.endswith("/") else base + "/"
        return replace(self, path=path + file_name, url_without_credentials=base + quote(file_name))


def redact(url: str) -> str:
    """The URL without user info, for log lines and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# ---------------------------------------------------------------------------------------------
# Download


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str


async def download(
    url: str,
    destination: Path,
    *,
    timeout_s: float = 300.0,
    tls: ssl.SSLContext | None = None,
    resume: bool = False,
) -> DownloadResult:
    """Fetch `url` into `destination`; returns the size and SHA-256 of the whole file.

    `tls` verifies https/ftps servers (None = the system's CA store). With `resume`, what an interrupted
    attempt left in `destination` is kept and only the rest is fetched (HTTP Range, FTP REST) when the
    server supports it; otherwise the file is fetched whole again.
    """
    location = Location.parse(url)
    try:
        offset = await asyncio.to_thread(_existing_size, destination) if resume else 0
        if location.scheme in HTTP_SCHEMES:
            return await _http_download(location, destination, offset, timeout_s, tls)
        return await asyncio.to_thread(_ftp_download, location, destination, offset, timeout_s, tls)
    except OSError as exc:  # the local file, not the network (network errors are TransferErrors already)
        raise TransferError(f"cannot write {destination}: {_describe(exc)}") from exc


async def _http_download(
    location: Location, destination: Path, offset: int, timeout_s: float, tls: ssl.SSLContext | None
) -> DownloadResult:
    headers = _auth_headers(location)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(location.request_url, headers=headers, ssl=tls or True) as response:
                if offset and response.status == 416:  # the file on the server changed or is shorter: start over
                    return await _http_download(location, destination, 0, timeout_s, tls)
                _check_http_status(response.status, location)
                resumed = response.status == 206 and _content_range_start(response) == offset
                sink = await asyncio.to_thread(_PartialFile, destination, offset if resumed else 0)
                try:
                    # iter_any: keep whatever arrived, so a dropped connection leaves a file to resume from.
                    async for chunk in response.content.iter_any():
                        await asyncio.to_thread(sink.write, chunk)
                finally:
                    await asyncio.to_thread(sink.close)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransferError(f"download of {location.url_without_credentials} failed: {_describe(exc)}") from exc
    return sink.result()


def _ftp_download(
    location: Location, destination: Path, offset: int, timeout_s: float, tls: ssl.SSLContext | None
) -> DownloadResult:
    directories, file_name = _ftp_path(location)
    if not file_name:
        raise TransferError(f"FTP URL names no file: {location.url_without_credentials}", TransferOutcome.BAD_LOCATION)
    with _ftp_session(location, timeout_s, tls) as ftp:
        for directory in directories:
            _ftp_step(ftp.cwd, directory)
        sink = _PartialFile(destination, offset)
        try:
            _ftp_step(ftp.retrbinary, f"RETR {file_name}", sink.write, CHUNK_SIZE, offset or None)
        except TransferError:
            if not offset or sink.size > offset:
                raise
            # The server refused REST before sending anything: fetch the file whole on this connection.
            sink.close()
            sink = _PartialFile(destination, 0)
            _ftp_step(ftp.retrbinary, f"RETR {file_name}", sink.write, CHUNK_SIZE)
        finally:
            sink.close()
    return sink.result()


class _PartialFile:
    """`destination` kept up to `offset` bytes (hashed on open) and extended by write(); blocking I/O."""

    def __init__(self, destination: Path, offset: int) -> None:
        self.path = destination
        self.digest = hashlib.sha256()
        self.size = 0
        self.handle = destination.open("r+b" if offset else "wb")
        while self.size < offset:
            block = self.handle.read(min(CHUNK_SIZE, offset - self.size))
            if not block:
                break
            self.digest.update(block)
            self.size += len(block)
        self.handle.seek(self.size)
        self.handle.truncate()

    def write(self, block: bytes) -> None:
        self.digest.update(block)
        self.size += len(block)
        self.handle.write(block)

    def close(self) -> None:
        self.handle.close()

    def result(self) -> DownloadResult:
        return DownloadResult(self.path, self.size, self.digest.hexdigest())


def _existing_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_range_start(response: aiohttp.ClientResponse) -> int | None:
    """Start of `Content-Range: bytes <start>-<end>/<total>`, None if absent or malformed."""
    value = response.headers.get("Content-Range", "")
    unit, _, span = value.partition(" ")
    start = span.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


# ---------------------------------------------------------------------------------------------
# Upload


async def upload(
    file: Path,
    directory_url: str,
    *,
    file_name: str | None = None,
    http_method: str = "PUT",
    timeout_s: float = 300.0,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Send `file` into the directory `directory_url` as `file_name`; returns the URL used (no credentials).

    HTTP PUT goes to `<directory_url>/<file_name>`; HTTP POST sends a multipart form (field `file`) to
    `directory_url` itself; FTP stores `<file_name>` inside the URL's directory.
    """
    name = file_name or file.name
    location = Location.parse(directory_url)
    if location.scheme in FTP_SCHEMES:
        try:
            await asyncio.to_thread(_ftp_upload, location, file, name, timeout_s, tls)
        except OSError as exc:  # the local file; network errors are TransferErrors already
            raise TransferError(f"cannot read {file}: {_describe(exc)}") from exc
        return location.with_file_name(name).url_without_credentials
    if http_method not in HTTP_UPLOAD_METHODS:
        raise ValueError(f"http_method must be one of {HTTP_UPLOAD_METHODS}, not {http_method!r}")
    target = location.with_file_name(name) if http_method == "PUT" else location
    await _http_upload(target, file, name, http_method, timeout_s, tls)
    return target.url_without_credentials


async def _http_upload(
    location: Location, file: Path, name: str, method: str, timeout_s: float, tls: ssl.SSLContext | None
) -> None:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        source = await asyncio.to_thread(file.open, "rb")
        try:
            # aiohttp reads file objects in its executor, so the body streams without blocking the loop.
            if method == "PUT":
                body: object = source
                headers = {"Content-Type": "application/octet-stream"}
            else:
                form = aiohttp.FormData()
                form.add_field("file", source, filename=name, content_type="application/octet-stream")
                body, headers = form, {}
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.request(
                    method,
                    location.request_url,
                    data=body,
                    headers={**headers, **_auth_headers(location)},
                    ssl=tls or True,
                ) as response:
                    _check_http_status(response.status, location)
        finally:
            await asyncio.to_thread(source.close)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise TransferError(f"upload to {location.url_without_credentials} failed: {_describe(exc)}") from exc


def _ftp_upload(location: Location, file: Path, name: str, timeout_s: float, tls: ssl.SSLContext | None) -> None:
    directories, last = _ftp_path(location)
    if last:
        # "ftp://host/dir" without a trailing slash still means the directory "dir".
        directories.append(last)
    with _ftp_session(location, timeout_s, tls) as ftp, file.open("rb") as source:
        for directory in directories:
            _ftp_step(ftp.cwd, directory)
        _ftp_step(ftp.storbinary, f"STOR {name}", source, CHUNK_SIZE)


# ---------------------------------------------------------------------------------------------
# Retries


def tls_context(ca_file: str) -> ssl.SSLContext | None:
    """Verification context trusting `ca_file` (PEM) instead of the system store; None for "" (blocking read)."""
    if not ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"cannot use {ca_file!r} as TLS CA file: {error}") from error


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    interval_s: float,
    clock: Sleeper,
    on_failure: Callable[[int, TransferError], None] | None = None,
) -> T:
    """Run `attempt` up to `attempts` times while it fails with a retryable TransferError."""
    attempts = max(1, attempts)
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except TransferError as error:
            if on_failure is not None:
                on_failure(number, error)
            if not error.outcome.retryable or number == attempts:
                raise
        await clock.sleep(interval_s)
    raise AssertionError("unreachable: the loop returns or raises")


# ---------------------------------------------------------------------------------------------
# Helpers


def _auth_headers(location: Location) -> dict[str, str]:
    if location.username is None:
        return {}
    return {"Authorization": basic_auth(location.username, location.password or "")}


def _check_http_status(status: int, location: Location) -> None:
    if status in (401, 403):
        raise TransferError(
            f"{location.url_without_credentials} refused access (HTTP {status})",
            TransferOutcome.PERMISSION_DENIED,
        )
    if not 200 <= status < 300:
        raise TransferError(f"{location.url_without_credentials} answered HTTP {status}")


def _ftp_path(location: Location) -> tuple[list[str], str]:
    """Directories to change into (relative to the login directory, as RFC 1738 says) and the last part."""
    segments = [unquote(segment) for segment in location.path.split("/")[1:]]
    if not segments:
        return [], ""
    return [segment for segment in segments[:-1] if segment], segments[-1]


class _ftp_session:
    """Connected and logged-in FTP client; closed on exit. Errors become TransferErrors."""

    def __init__(self, location: Location, timeout_s: float, tls: ssl.SSLContext | None) -> None:
        self.location = location
        self.timeout_s = timeout_s
        self.tls = tls
        self.ftp: ftplib.FTP | None = None

    def __enter__(self) -> ftplib.FTP:
        location = self.location
        ftp = (
            ftplib.FTP_TLS(context=self.tls or ssl.create_default_context())
            if location.scheme == "ftps"
            else ftplib.FTP()
        )
        self.ftp = ftp
        _ftp_step(ftp.connect, location.host, location.port or 21, self.timeout_s)
        _ftp_step(ftp.login, location.username or "anonymous", location.password or "")
        if isinstance(ftp, ftplib.FTP_TLS):
            _ftp_step(ftp.prot_p)
        return ftp

    def __exit__(self, *exc_info: object) -> None:
        if self.ftp is None:
            return
        try:
            self.ftp.quit()
        except ftplib.all_errors:
            self.ftp.close()


def _ftp_step(operation: Callable[..., T], *args: object) -> T:
    try:
        return operation(*args)
    except ftplib.error_perm as exc:
        code = str(exc)[:3]
        outcome = TransferOutcome.PERMISSION_DENIED if code in FTP_PERMISSION_CODES else TransferOutcome.FAILED
        raise TransferError(f"FTP server refused: {exc}", outcome) from exc
    except ftplib.all_errors as exc:
        raise TransferError(f"FTP transfer failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization value (aiohttp's helper for it moved between 3.9 and 3.12)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
