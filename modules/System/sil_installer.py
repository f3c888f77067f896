"""Firmware "installer" for simulation: checks that the image is a readable, non-empty file, installs nothing.

Usage: python3 -m everpy_modules.System.sil_installer <image>   (in a System config: "{python} -m ...")
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: sil_installer <image>", file=sys.stderr)
        return 2
    image = Path(argv[0])
    try:
        content = image.read_bytes()
    except OSError as exc:
        print(f"cannot read {image}: {exc}", file=sys.stderr)
        return 1
    if not content:
        print(f"{image} is empty", file=sys.stderr)
        return 1
    print(f"would install {image} ({len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
