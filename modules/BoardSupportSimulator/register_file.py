"""The simulated meter's energy register on disk, so that it survives a restart as a real meter's does.

The file holds the per-phase import registers as JSON, ``{"energy_Wh_import": {"L1": .., "L2": .., "L3": ..}}``.
It is replaced atomically (a temporary file in the same folder, fsync, rename): a crash or power cut
leaves the old or the new content, never half of it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

PHASES = ("L1", "L2", "L3")
# Far above any real charger's lifetime (1 TWh); a larger value is a broken file, not a reading.
MAX_REGISTER_WH = 1e12


class BadRegisterFile(ValueError):
    """The file exists but does not hold a plausible register (the message says why)."""


def read_register(path: Path) -> list[float]:
    """The per-phase registers kept in `path`, Wh.

    Raises FileNotFoundError if there is none yet, BadRegisterFile if the content cannot be a reading
    (not JSON, wrong shape, not finite, negative, or beyond MAX_REGISTER_WH), OSError if unreadable.
    """
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise BadRegisterFile(f"not JSON: {error}") from error
    registers = data.get("energy_Wh_import") if isinstance(data, dict) else None
    if not isinstance(registers, dict):
        raise BadRegisterFile('no "energy_Wh_import" object')
    values: list[float] = []
    for phase in PHASES:
        value = registers.get(phase)
        # bool is an int in Python, but `true` is no meter reading
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRegisterFile(f"{phase} is {value!r}, not a number")
        if not math.isfinite(value) or value < 0:
            raise BadRegisterFile(f"{phase} is {value!r} (a register is finite and never negative)")
        values.append(float(value))
    if sum(values) > MAX_REGISTER_WH:
        raise BadRegisterFile(f"total {sum(values):g} Wh is beyond {MAX_REGISTER_WH:g} Wh")
    return values


def write_register(path: Path, per_phase: Sequence[float]) -> None:
    """Replace `path` atomically with `per_phase` (Wh); OSError if that fails (the old file is then kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"energy_Wh_import": dict(zip(PHASES, per_phase, strict=True))})
    # One temporary name per process: two runs sharing a working directory must not rename each other's
    # half-written file. (Opened as usual, so the file gets the umask's mode, like the rest of run/.)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
