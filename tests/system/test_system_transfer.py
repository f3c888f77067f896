"""Downloads and uploads against real FTP and HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from everpy_modules.System.archive import pack_logs
from everpy_modules.System.transfer import (
    Location,
    TransferError,
    TransferOutcome,
    basic_auth,
    download,
    redact,
    upload,
    with_retries,
)

from .servers import FTP_PASSWORD, FTP_USER, FtpServer, HttpServer

IMAGE = bytes(range(256)) * 1000  # 256 kB, several chunks


class NoWait:
    async def sleep(self, seconds: float) -> None:
        self.slept = getattr(self, "slept", 0.0) + seconds


@pytest.fixture
def ftp(tmp_path: Path):
    with FtpServer(tmp_path / "ftp") as server:
        yield server


@pytest.fixture
async def http(tmp_path: Path):
    async with HttpServer(tmp_path / "http") as server:
        yield server


def test_location_keeps_credentials_out_of_the_url():
    location = Location.parse("ftp://us%40er:p%3Ass@example.org:2121/logs/")
    assert (location.username, location.password) == ("us@er", "p:ss")
    assert location.url_without_credentials == "ftp://example.org:2121/logs/"
    assert location.with_file_name("a.tar.gz").url_without_credentials == "ftp://example.org:2121/logs/a.tar.gz"
    assert redact("https://u:p@h/x") == "https://h/x"
    presigned = Location.parse("https://bucket.example/obj.tar.gz?X-Signature=abc")
    assert presigned.with_file_name("a.tar.gz") == presigned, "a URL with a query names its own target"


@pytest.mark.parametrize(
    ("url", "outcome"),
    [
        ("sftp://host/x", TransferOutcome.UNSUPPORTED),
        ("not a url", TransferOutcome.UNSUPPORTED),
        ("http:///nohost", TransferOutcome.BAD_LOCATION),
        ("http://host:99999/", TransferOutcome.BAD_LOCATION),
    ],
)
def test_unusable_locations_are_classified(url: str, outcome: TransferOutcome):
    with pytest.raises(TransferError) as caught:
        Location.parse(url)
    assert caught.value.outcome is outcome


async def test_http_download_streams_to_file_with_checksum(http: HttpServer, tmp_path: Path):
    (http.root / "fw.img").write_bytes(IMAGE)
    result = await download(http.url("/files/fw.img"), tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == IMAGE
    assert (result.size, result.sha256) == (len(IMAGE), hashlib.sha256(IMAGE).hexdigest())


async def test_http_download_of_missing_file_fails(http: HttpServer, tmp_path: Path):
    with pytest.raises(TransferError, match="HTTP 404") as caught:
        await download(http.url("/files/absent.img"), tmp_path / "out.img")
    assert caught.value.outcome.retryable


async def test_ftp_download_with_and_without_login(ftp: FtpServer, tmp_path: Path):
    (ftp.root / "images").mkdir()
    (ftp.root / "images" / "fw.img").write_bytes(IMAGE)
    anonymous = await download(ftp.url("/images/fw.img", user=None), tmp_path / "a.img")
    logged_in = await download(ftp.url("/images/fw.img"), tmp_path / "b.img")
    assert anonymous.sha256 == logged_in.sha256 == hashlib.sha256(IMAGE).hexdigest()


async def test_ftp_upload_into_directory_with_quoted_credentials(ftp: FtpServer, tmp_path: Path):
    (ftp.root / "incoming").mkdir()
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(IMAGE)
    sent_to = await upload(source, ftp.url("/incoming/"), file_name="diag.tar.gz")
    assert FTP_PASSWORD not in sent_to and FTP_USER not in sent_to
    stored = await ftp.wait_for_file("diag.tar.gz")
    assert stored.parent == ftp.root / "incoming"
    assert stored.read_bytes() == IMAGE


async def test_ftp_wrong_password_is_permission_denied(ftp: FtpServer, tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError) as caught:
        await upload(source, ftp.url("/", password="wrong"))
    assert caught.value.outcome is TransferOutcome.PERMISSION_DENIED


async def test_ftp_anonymous_cannot_write(ftp: FtpServer, tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError) as caught:
        await upload(source, ftp.url("/", user=None))
    assert caught.value.outcome is TransferOutcome.PERMISSION_DENIED


async def test_ftp_server_gone_is_retryable_failure(tmp_path: Path):
    with FtpServer(tmp_path / "ftp") as server:
        url = server.url("/")
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError) as caught:
        await upload(source, url, timeout_s=5)
    assert caught.value.outcome.retryable


async def test_http_put_and_post_uploads(http: HttpServer, tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(IMAGE)
    put_url = await upload(source, http.url("/upload/"), file_name="put.tar.gz", http_method="PUT")
    await upload(source, http.url("/upload/"), file_name="post.tar.gz", http_method="POST")
    assert put_url == http.url("/upload/put.tar.gz")
    assert await http.wait_for_upload("put.tar.gz") == IMAGE
    assert await http.wait_for_upload("post.tar.gz") == IMAGE
    assert http.requests == [("PUT", "/upload/put.tar.gz"), ("POST", "/upload/")]


async def test_http_basic_auth_from_url(tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"log")
    async with HttpServer(tmp_path / "http", authorization=basic_auth("cp1", "pw")) as http:
        await upload(source, f"http://cp1:pw@127.0.0.1:{http.port}/upload/", file_name="a.tar.gz")
        assert await http.wait_for_upload("a.tar.gz") == b"log"
        with pytest.raises(TransferError) as caught:
            await upload(source, f"http://cp1:bad@127.0.0.1:{http.port}/upload/", file_name="b.tar.gz")
    assert caught.value.outcome is TransferOutcome.PERMISSION_DENIED


async def test_retries_until_success_and_not_after_permission_denied(http: HttpServer, tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"log")
    http.fail_next = 2
    failures: list[int] = []
    clock = NoWait()
    await with_retries(
        lambda: upload(source, http.url("/upload/"), file_name="x.tar.gz"),
        attempts=3,
        interval_s=30,
        clock=clock,
        on_failure=lambda n, e: failures.append(n),
    )
    assert failures == [1, 2] and clock.slept == 60
    assert await http.wait_for_upload("x.tar.gz") == b"log"

    http.authorization = basic_auth("someone", "else")
    attempts: list[int] = []
    with pytest.raises(TransferError):
        await with_retries(
            lambda: upload(source, http.url("/upload/"), file_name="y.tar.gz"),
            attempts=5,
            interval_s=1,
            clock=clock,
            on_failure=lambda n, e: attempts.append(n),
        )
    assert attempts == [1]


async def test_pack_logs_filters_by_time_and_survives_missing_sources(tmp_path: Path):
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "old.log").write_text("old")
    (logs / "sub" / "new.log").write_text("new")
    import os

    os.utime(logs / "old.log", (1000, 1000))
    archive = tmp_path / "out.tar.gz"
    result = await pack_logs([logs, tmp_path / "missing"], archive, newer_than=2000)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = tar.extractfile("MANIFEST.txt").read().decode()  # type: ignore[union-attr]
        new = tar.extractfile("logs/sub/new.log").read()  # type: ignore[union-attr]
    assert names == ["logs/sub/new.log", "MANIFEST.txt"] and new == b"new"
    assert result.members == ["logs/sub/new.log"]
    assert "missing: does not exist" in manifest


def test_archive_reader_pads_a_file_that_shrank():
    from everpy_modules.System.archive import _ExactLength

    reader = _ExactLength(io.BufferedReader(io.BytesIO(b"abc")), 6)  # type: ignore[arg-type]
    assert reader.read(4) + reader.read() == b"abc\0\0\0"


async def test_https_with_a_private_ca(tmp_path: Path):
    from everpy_modules.System.transfer import tls_context

    from .servers import tls_server_context

    server_tls, ca_file = tls_server_context(tmp_path / "pki")
    async with HttpServer(tmp_path / "https", tls=server_tls) as https:
        (https.root / "fw.img").write_bytes(IMAGE)
        trusted = tls_context(str(ca_file))
        result = await download(https.url("/files/fw.img"), tmp_path / "fw.img", tls=trusted)
        assert result.sha256 == hashlib.sha256(IMAGE).hexdigest()
        await upload(tmp_path / "fw.img", https.url("/upload/"), file_name="logs.tar.gz", tls=trusted)
        assert await https.wait_for_upload("logs.tar.gz") == IMAGE
        with pytest.raises(TransferError, match="certificate verify failed"):
            await download(https.url("/files/fw.img"), tmp_path / "other.img")  # system CA store
    with pytest.raises(ValueError, match="cannot use"):
        tls_context(str(tmp_path / "missing.pem"))


async def test_presigned_put_url_is_used_as_given(http: HttpServer, tmp_path: Path):
    source = tmp_path / "logs.tar.gz"
    source.write_bytes(b"log")
    sent_to = await upload(source, http.url("/upload/object-7.tar.gz?sig=a%2Fb%3D"), file_name="ignored.tar.gz")
    assert sent_to == http.url("/upload/object-7.tar.gz?sig=a%2Fb%3D")
    assert await http.wait_for_upload("object-7.tar.gz") == b"log"


async def test_truncated_http_body_is_a_retryable_failure(tmp_path: Path):
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(TransferError) as caught:
            await download(f"http://127.0.0.1:{port}/fw.img", tmp_path / "fw.img")
    assert caught.value.outcome.retryable


async def test_big_ftp_transfers_do_not_block_the_event_loop(ftp: FtpServer, tmp_path: Path):
    (ftp.root / "big.img").write_bytes(bytes(32 * 1024 * 1024))
    longest_gap = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest_gap
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = loop.time()
            longest_gap = max(longest_gap, now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    result = await download(ftp.url("/big.img"), tmp_path / "big.img")
    await upload(tmp_path / "big.img", ftp.url("/"), file_name="back.img")
    done.set()
    await ticking
    assert result.size == 32 * 1024 * 1024
    assert longest_gap < 0.25, f"event loop stalled for {longest_gap:.3f} s"


async def test_sil_installer_checks_the_image_only(tmp_path: Path):
    from everpy_modules.System.commands import run_command

    installer = "{python} -m everpy_modules.System.sil_installer"
    (tmp_path / "fw.img").write_bytes(IMAGE)
    (tmp_path / "empty.img").write_bytes(b"")
    good = await run_command(installer, str(tmp_path / "fw.img"), timeout_s=30)
    assert good.ok and hashlib.sha256(IMAGE).hexdigest() in good.output
    for bad in ("empty.img", "missing.img"):
        result = await run_command(installer, str(tmp_path / bad), timeout_s=30)
        assert result.returncode == 1, result.output
    not_started = await run_command("/nonexistent/installer", "x", timeout_s=30)
    assert not not_started.ok and "cannot start" in not_started.output


async def test_interrupted_downloads_resume_over_http_and_ftp(http: HttpServer, ftp: FtpServer, tmp_path: Path):
    (http.root / "fw.img").write_bytes(IMAGE)
    (ftp.root / "fw.img").write_bytes(IMAGE)
    expected = hashlib.sha256(IMAGE).hexdigest()
    for name, url in (("http.img", http.url("/files/fw.img")), ("ftp.img", ftp.url("/fw.img"))):
        partial = tmp_path / name
        partial.write_bytes(IMAGE[:100_000])  # what an interrupted attempt left
        result = await download(url, partial, resume=True)
        assert (result.size, result.sha256) == (len(IMAGE), expected)
        assert partial.read_bytes() == IMAGE
    assert http.ranges == ["bytes=100000-"]

    stale = tmp_path / "stale.img"
    stale.write_bytes(b"x" * (len(IMAGE) + 10))  # longer than the file on the server: 416, start over
    result = await download(http.url("/files/fw.img"), stale, resume=True)
    assert result.sha256 == expected and stale.read_bytes() == IMAGE

    big = os.urandom(4 * 1024 * 1024)  # big enough to arrive in many pieces before the drop
    (http.root / "big.img").write_bytes(big)
    cut = tmp_path / "cut.img"
    http.cut_next = 1
    with pytest.raises(TransferError):
        await download(http.url("/files/big.img"), cut)
    kept = cut.stat().st_size
    assert 0 < kept <= len(big) // 2
    assert (await download(http.url("/files/big.img"), cut, resume=True)).sha256 == hashlib.sha256(big).hexdigest()
    assert http.ranges[-1] == f"bytes={kept}-"
