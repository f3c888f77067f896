"""Packing log files into one tar.gz (runs in a worker thread: it is all blocking file I/O)."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PackResult:
    archive: Path
    members: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable or vanished while packing


async def pack_logs(
    sources: Iterable[Path],
    archive: Path,
    *,
    newer_than: float | None = None,
    older_than: float | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> PackResult:
    """Write every file under `sources` (files or directories) modified inside the window into `archive`.

    Missing sources and files that cannot be read are listed in the archive's `MANIFEST.txt` instead of
    failing the whole upload: partial logs are still worth more than none.
    """
    return await asyncio.to_thread(_pack, list(sources), archive, newer_than, older_than, dict(extra_files or {}))


def _pack(
    sources: list[Path],
    archive: Path,
    newer_than: float | None,
    older_than: float | None,
    extra_files: dict[str, bytes],
) -> PackResult:
    result = PackResult(archive)
    with tarfile.open(archive, "w:gz") as tar:
        for source in sources:
            if not source.exists():
                result.skipped.append(f"{source}: does not exist")
                continue
            for path in _files_under(source):
                try:
                    mtime = path.stat().st_mtime
                    if newer_than is not None and mtime < newer_than:
                        continue
                    if older_than is not None and mtime > older_than:
                        continue
                    arcname = _archive_name(source, path)
                    _add_file(tar, path, arcname)
                    result.members.append(arcname)
                except OSError as exc:
                    result.skipped.append(f"{path}: {exc.strerror or exc}")
        extra_files = dict(extra_files)
        extra_files["MANIFEST.txt"] = _manifest(result).encode()
        for name, content in extra_files.items():
            _add_bytes(tar, name, content)
    return result


def _files_under(source: Path) -> Iterator[Path]:
    if source.is_file():
        yield source
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _archive_name(source: Path, path: Path) -> str:
    if path == source:
        return source.name
    return f"{source.name}/{path.relative_to(source).as_posix()}"


def _manifest(result: PackResult) -> str:
    lines = [f"packed {len(result.members)} files"]
    lines += [f"skipped {entry}" for entry in result.skipped]
    return "\n".join(lines) + "\n"


def _add_file(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    with path.open("rb") as source:
        info = tar.gettarinfo(arcname=arcname, fileobj=source)
        # A log being rotated may shrink while we copy it; pad instead of leaving a torn archive.
        tar.addfile(info, _ExactLength(source, info.size))


class _ExactLength(io.RawIOBase):
    """Reads exactly `size` bytes from `source`, zero-padding if the file got shorter meanwhile."""

    def __init__(self, source: io.BufferedReader, size: int) -> None:
        self.source = source
        self.remaining = size

    def read(self, size: int = -1) -> bytes:
        wanted = self.remaining if size < 0 else min(size, self.remaining)
        data = self.source.read(wanted)
        data += bytes(wanted - len(data))
        self.remaining -= wanted
        return data


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(content))
