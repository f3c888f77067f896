"""Entry point of a module that runs in its own process (``process: own``); started by the runtime."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from everpy.core.bus import BrokerAddress, Bus
from everpy.core.host import ModuleHost, ModuleInitFailed
from everpy.core.loading import load_system
from everpy.core.logs import parse_level_overrides, setup_logging
from everpy.core.runtime import CHILD_PASSWORD_ENV, CHILD_USER_ENV


async def run_child(args: argparse.Namespace) -> int:
    # The parent validated these files fully already; skip the metaschema pass to start faster.
    system = load_system(Path(args.config), args.modules_dir, args.definitions_dir, check_schemas=False)
    host_name, _, port = args.broker.rpartition(":")
    # the login the runtime made for this module (taken out of the environment: modules need not see it)
    user, password = os.environ.pop(CHILD_USER_ENV, None), os.environ.pop(CHILD_PASSWORD_ENV, None)
    bus = Bus(BrokerAddress(host_name, int(port), username=user, password=password), f"everpy-{args.module}")
    await bus.connect()
    host = ModuleHost(
        run_config=system.run_config,
        definitions=system.definitions,
        manifests=system.manifests,
        module_types=system.module_types,
        bus=bus,
        module_ids=[args.module],
        on_crash="exit",
        validate=not args.no_validate,
    )
    loop = asyncio.get_running_loop()
    orderly_stop = asyncio.Event()  # SIGTERM from the runtime (or its death, see subprocesses.py)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, orderly_stop.set)
    try:
        await host.start()
    except ModuleInitFailed as exc:
        logging.getLogger("everpy.child").error("%s", exc)
        await host.stop()
        await bus.close()
        return 71
    crashed = asyncio.ensure_future(host.stopped.wait())
    asked = asyncio.ensure_future(orderly_stop.wait())
    await asyncio.wait({crashed, asked}, return_when=asyncio.FIRST_COMPLETED)
    crashed.cancel()
    asked.cancel()
    if not host.stopped.is_set():  # asked to stop, not crashed: the module says goodbye first
        await host.stopping()
    await host.stop()
    await bus.close()
    return host.exit_code or 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="everpy-child")
    parser.add_argument("--config", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--modules-dir", action="append", default=[], type=Path)
    parser.add_argument("--definitions-dir", action="append", default=[], type=Path)
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--log", action="append", default=[], metavar="MODULE=LEVEL")
    args = parser.parse_args()
    setup_logging(per_module=parse_level_overrides(args.log))
    raise SystemExit(asyncio.run(run_child(args)))


if __name__ == "__main__":
    main()
