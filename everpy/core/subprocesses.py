"""How the runtime starts its helper processes (the private mosquitto, `process: own` modules).

Two guarantees for each of them:

* a session of its own: a Ctrl-C in the terminal sends SIGINT to the foreground process group, and
  only the runtime must get it; the runtime then stops its helpers in order (modules first, broker
  last). Were they in its group, they would all stop at once and modules would lose the bus mid-stop.
* it dies with the runtime: a parent-death signal (Linux prctl PR_SET_PDEATHSIG), so a `kill -9` of
  the runtime (or an OOM kill) leaves no orphaned mosquitto or module holding ports and hardware.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("everpy.runtime")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError) as exc:
        log.warning("no prctl (%s): helper processes will outlive a killed runtime", exc)
        return None
    return prctl


# Looked up once in the parent: after fork only the call itself runs.
_PRCTL = _load_prctl()


def own_session(death_signal: signal.Signals) -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec / subprocess.Popen: a session of its own and
    ``death_signal`` when this process dies (where the OS supports it)."""
    options: dict[str, Any] = {"start_new_session": True}
    if _PRCTL is not None:
        options["preexec_fn"] = _die_with(os.getpid(), death_signal)
    return options


def _die_with(parent_pid: int, death_signal: signal.Signals) -> Callable[[], None]:
    prctl = _PRCTL
    assert prctl is not None

    def set_death_signal() -> None:  # runs in the forked child, before exec
        if prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died between fork and prctl: nobody will signal us
            os.kill(os.getpid(), death_signal)

    return set_death_signal
