"""Parser for the EVerest car simulator language.

A script is commands separated by ``;`` or newlines; within a command, arguments are separated by
spaces or commas; everything is lower-cased. ``iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 30;
unplug`` plugs in, waits for PWM, charges at up to 16 A on three phases for 30 s and unplugs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ScriptError(ValueError):
    """The script does not parse; the message names the command and what is wrong with it."""


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[float, ...]

    def __str__(self) -> str:
        return " ".join([self.name, *(f"{a:g}" for a in self.args)])


@dataclass(frozen=True)
class Signature:
    arg_names: tuple[str, ...]
    description: str


# name -> argument names. Values are numbers; their ranges are checked in _check_ranges.
COMMANDS: dict[str, Signature] = {
    "sleep": Signature(("seconds",), "wait"),
    "iec_wait_pwr_ready": Signature((), "plug in (state B) and wait for a PWM that allows charging"),
    "draw_power_regulated": Signature(("current_a", "phases"), "request power (C), draw what the PWM allows"),
    "draw_power_fixed": Signature(("current_a", "phases"), "request power (C), draw a fixed current"),
    "pause": Signature((), "stop requesting power (state B)"),
    "unplug": Signature((), "unplug (state A)"),
    "plugin": Signature((), "plug in (state B)"),
    "wait_for_real_plugin": Signature((), "wait until the port reports a plugged car"),
    "error_e": Signature((), "short the pilot (state E)"),
    "diode_fail": Signature((), "fail the pilot diode"),
    "rcd_current": Signature(("milliamps",), "cause a residual current"),
}

_SEPARATORS = re.compile(r"[\s,]+")


def parse_script(text: str) -> list[Command]:
    """Parse a whole script; raises ScriptError at the first bad command (nothing is half-parsed)."""
    commands: list[Command] = []
    for position, raw in enumerate(re.split(r"[;\n]", text.lower()), start=1):
        words = [w for w in _SEPARATORS.split(raw.strip()) if w]
        if not words:
            continue
        commands.append(_parse_command(words, position, raw.strip()))
    if not commands:
        raise ScriptError("script is empty")
    return commands


def _parse_command(words: list[str], position: int, raw: str) -> Command:
    name, arg_words = words[0], words[1:]
    where = f"command {position} ({raw!r})"
    signature = COMMANDS.get(name)
    if signature is None:
        raise ScriptError(f"{where}: unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    if len(arg_words) != len(signature.arg_names):
        wanted = " ".join(signature.arg_names) or "no arguments"
        raise ScriptError(f"{where}: {name} takes {wanted}, got {len(arg_words)} argument(s)")
    try:
        args = tuple(float(a) for a in arg_words)
    except ValueError:
        raise ScriptError(f"{where}: arguments must be numbers") from None
    _check_ranges(name, args, where)
    return Command(name, args)


def _check_ranges(name: str, args: tuple[float, ...], where: str) -> None:
    if any(a != a or a in (float("inf"), float("-inf")) for a in args):
        raise ScriptError(f"{where}: arguments must be finite numbers")
    if name == "sleep" and args[0] < 0:
        raise ScriptError(f"{where}: sleep needs seconds >= 0")
    if name in ("draw_power_regulated", "draw_power_fixed"):
        current, phases = args
        if not 0 <= current <= 80:
            raise ScriptError(f"{where}: current must be 0..80 A")
        if phases not in (1, 2, 3):
            raise ScriptError(f"{where}: phases must be 1, 2 or 3")
    if name == "rcd_current" and args[0] < 0:
        raise ScriptError(f"{where}: residual current must be >= 0 mA")
