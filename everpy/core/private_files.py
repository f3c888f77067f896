"""Files that hold secrets (logins, tokens, password hashes): created with their final mode, so there is no
moment in which another user could read them, and set to it again when the file was there already."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(path, mode)  # O_CREAT's mode applies to a new file only (and the umask narrows it)
