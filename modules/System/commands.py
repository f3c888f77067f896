"""Running the board-specific commands the System module is configured with (installer, reboot, reset, time).

Commands are plain argument lists (shlex-split, no shell), so a value from the CSMS that is passed as
an argument can never be interpreted by a shell.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from dataclasses import dataclass

OUTPUT_LIMIT = 4000  # characters of command output kept for log lines


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int | None  # None: could not be started or timed out
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


PYTHON_PLACEHOLDER = "{python}"  # the interpreter running everpy (SIL helpers: "{python} -m everpy_modules...")


def command_argv(command: str, *arguments: str) -> list[str]:
    argv = [sys.executable if word == PYTHON_PLACEHOLDER else word for word in shlex.split(command)]
    return argv + list(arguments)


async def run_command(
    command: str, *arguments: str, timeout_s: float, env: dict[str, str] | None = None
) -> CommandResult:
    """Run `command` with `arguments` appended; captures stdout+stderr; never raises for failures."""
    argv = command_argv(command, *arguments)
    if not argv:
        return CommandResult(argv, None, "no command configured")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        return CommandResult(argv, None, f"cannot start: {exc}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return CommandResult(argv, None, f"timed out after {timeout_s} s")
    except asyncio.CancelledError:
        # Module shutdown: do not leave the child behind (nor its pipes to a closed loop).
        if process.returncode is None:
            process.kill()
        await asyncio.shield(process.wait())
        raise
    text = output.decode(errors="replace")[-OUTPUT_LIMIT:]
    return CommandResult(argv, process.returncode, text)
