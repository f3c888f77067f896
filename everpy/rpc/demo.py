"""Run a main board and N simulated satellite boards on one machine, each board its own `everpy run`
process with its own private mosquitto, linked over loopback exactly as separate boards would be.

    python -m everpy.rpc.demo --satellites 3 [--csms] [--workdir run/multi-board]

Configs are generated from config/main-with-satellites.yaml and config/satellite.yaml into the work dir
(satellite i: serial SAT-000i, any free port, mDNS on loopback, MQTT prefix sat<i> so that
`everpy monitor --prefix sat1` shows that satellite's bus). Ctrl-C stops every board.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
RUN_EVERPY = "import sys; from everpy.cli import main; sys.exit(main())"
LOOPBACK = {"mdns_interfaces": "lo", "mdns_allow_loopback": True, "mdns_deny_interfaces": ""}


def satellite_serial(index: int, prefix: str = "SAT") -> str:
    return f"{prefix}-{index:04d}"


def rename_module(config: dict[str, Any], old: str, new: str) -> None:
    """Renames a module id in a run config, connections to it included."""
    modules = config["active_modules"]
    modules[new] = modules.pop(old)
    for entry in modules.values():
        for connections in entry.get("connections", {}).values():
            for connection in connections:
                if connection["module_id"] == old:
                    connection["module_id"] = new


def satellite_config(template: dict[str, Any], index: int, workdir: Path, serial: str = "") -> dict[str, Any]:
    config = copy.deepcopy(template)
    modules = config["active_modules"]
    # Module ids of EVSEs must be unique across the charger: the energy tree keys requests by them.
    evse = next(module_id for module_id, entry in modules.items() if entry["module"] == "EvseManager")
    rename_module(config, evse, f"evse{index + 1}")
    modules["agent"]["config_module"].update({"serial": serial or satellite_serial(index), "port": 0,
                                              "bind_host": "127.0.0.1", **LOOPBACK})
    # EVSE numbers are charger-wide (Auth and OCPP address EVSEs by them): main board 1, satellite i -> i + 1
    modules[f"evse{index + 1}"]["config_module"].update({"connector_id": index + 1,
                                                        "evse_id": f"DE*PNX*E{index + 1:05d}*1"})
    board_dir = workdir / f"sat{index}"
    modules["system"]["config_module"].update({"state_dir": str(board_dir / "system"),
                                               "work_dir": str(board_dir / "system-work"),
                                               "log_paths": str(board_dir / "logs")})
    (board_dir / "logs").mkdir(parents=True, exist_ok=True)
    for module_id, entry in modules.items():  # each satellite's simulated meter keeps its own register
        if entry["module"] == "BoardSupportSimulator":
            entry.setdefault("config_module", {})["state_file"] = str(board_dir / f"meter-{module_id}.json")
    config.setdefault("settings", {})["mqtt_everest_prefix"] = f"sat{index}"
    return config


def main_config(template: dict[str, Any], count: int, workdir: Path,
                serials: list[str] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(template)
    modules = config["active_modules"]
    controller = {k: v for k, v in modules["sat1"]["config_module"].items() if k != "serial"}
    for name in [m for m in modules if modules[m]["module"] == "SatelliteController"]:
        del modules[name]
    sats = [f"sat{i}" for i in range(1, count + 1)]
    for i, name in enumerate(sats, start=1):
        serial = serials[i - 1] if serials else satellite_serial(i)
        modules[name] = {"module": "SatelliteController", "config_module": {**controller, "serial": serial, **LOOPBACK}}
    evses = [{"module_id": "evse", "implementation_id": "evse"},
             *({"module_id": s, "implementation_id": "evse_manager"} for s in sats)]
    modules["auth"]["connections"]["evse_manager"] = evses
    modules["ocpp"]["connections"]["evse_manager"] = evses
    modules["system_aggregator"]["connections"]["boards"] = [
        {"module_id": "system", "implementation_id": "main"},
        *({"module_id": s, "implementation_id": "system"} for s in sats)]
    modules["system_aggregator"]["connections"]["satellites"] = [
        {"module_id": s, "implementation_id": "satellite"} for s in sats]
    modules["grid_connection"]["connections"]["energy_consumer"] = [
        {"module_id": "evse", "implementation_id": "energy_grid"},
        *({"module_id": s, "implementation_id": "energy"} for s in sats)]
    main_dir = workdir / "main"
    modules["system"]["config_module"].update({"state_dir": str(main_dir / "system"),
                                               "work_dir": str(main_dir / "system-work"),
                                               "log_paths": str(main_dir / "logs")})
    modules["system_aggregator"]["config_module"].update({"state_dir": str(main_dir / "aggregator"),
                                                          "work_dir": str(main_dir / "aggregator-work")})
    modules["ocpp"]["config_module"]["database_path"] = str(main_dir / "ocpp-{id}.db")
    (main_dir / "logs").mkdir(parents=True, exist_ok=True)
    return config


async def relay(name: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"[{name:>5}] {line.decode(errors='replace')}")
        sys.stdout.flush()


async def run(count: int, workdir: Path, csms: bool, serial_prefix: str = "SAT") -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    sat_template = yaml.safe_load((REPO_CONFIG / "satellite.yaml").read_text())
    main_template = yaml.safe_load((REPO_CONFIG / "main-with-satellites.yaml").read_text())
    boards: list[tuple[str, list[str]]] = []
    if csms:
        boards.append(("csms", ["csms", "--token-file", str(workdir / "csms-token")]))
    for i in range(1, count + 1):
        path = workdir / f"sat{i}.yaml"
        path.write_text(yaml.safe_dump(satellite_config(sat_template, i, workdir, satellite_serial(i, serial_prefix))))
        boards.append((f"sat{i}", ["run", str(path)]))
    path = workdir / "main.yaml"
    serials = [satellite_serial(i, serial_prefix) for i in range(1, count + 1)]
    path.write_text(yaml.safe_dump(main_config(main_template, count, workdir, serials)))
    boards.append(("main", ["run", str(path)]))
    processes = []
    relays = []
    for name, args in boards:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_EVERPY, *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        processes.append(process)
        assert process.stdout is not None
        relays.append(asyncio.ensure_future(relay(name, process.stdout)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = [asyncio.ensure_future(p.wait()) for p in processes]
    await asyncio.wait([asyncio.ensure_future(stop.wait()), *exited], return_when=asyncio.FIRST_COMPLETED)
    for process in reversed(processes):  # main board first, satellites after, CSMS last
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
    await asyncio.gather(*relays, return_exceptions=True)
    return max((p.returncode or 0) for p in processes) if not stop.is_set() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--satellites", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("run/multi-board"))
    parser.add_argument("--csms", action="store_true", help="also start the development CSMS (everpy csms)")
    parser.add_argument("--serial-prefix", default="SAT",
                        help="satellite serials are <prefix>-0001, ...; use another prefix for a second demo")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.satellites, args.workdir, args.csms, args.serial_prefix))


if __name__ == "__main__":
    sys.exit(main())
