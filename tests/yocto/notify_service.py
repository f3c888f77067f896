"""A minimal Type=notify service built on everpy.core.sdnotify, the way the runtime drives it.

Run as a separate process by test_sdnotify.py: READY=1 once started, watchdog pings while healthy,
STOPPING=1 on SIGTERM, then exit 0.
"""

import asyncio
import signal
import sys

from everpy.core import sdnotify


async def main() -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    watchdog = sdnotify.Watchdog.from_environment(is_healthy=lambda: True)
    if watchdog is None:
        print("no watchdog requested by the environment", file=sys.stderr)
        return 2
    watchdog.start()
    if not sdnotify.notify("READY=1", "STATUS=running"):
        return 3
    await stop.wait()
    sdnotify.notify("STOPPING=1")
    await watchdog.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
