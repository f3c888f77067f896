"""Runs PyPI `ocpp-csms` (AGPL, installed in its own venv by the test, never vendored) as a CSMS and
speaks JSON lines with the Python test:
  stdout: {"event": "listening", "port"} | {"event": <event class name>, "data": {...}} |
          {"event": "result"|"error", "id", ...}
  stdin:  {"id", "station", "method", "args"} -> ChargePoint.async_<method>(**args)
This file runs only inside that venv, as a separate program.
"""

import asyncio
import dataclasses
import json
import sys

from ocpp_csms import CentralSystem
from ocpp_csms.const import AvailabilityType, MessageTrigger, ResetType

ENUM_ARGUMENTS = {"message": MessageTrigger, "availability": AvailabilityType, "reset_type": ResetType}


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def as_data(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value


async def main():
    async with CentralSystem(host="127.0.0.1", port=0, heartbeat_interval=300) as csms:
        csms.add_listener(lambda event: emit({"event": type(event).__name__, "data": as_data(event)}))
        emit({"event": "listening", "port": csms.port})
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                           sys.stdin)
        while line := await reader.readline():
            request = json.loads(line)
            try:
                station = csms.charge_points[request["station"]]
                args = {k: ENUM_ARGUMENTS[k](v) if k in ENUM_ARGUMENTS else v for k, v in request["args"].items()}
                result = await getattr(station, "async_" + request["method"])(**args)
                emit({"event": "result", "id": request["id"], "result": as_data(result)})
            except Exception as error:  # reported to the test, which decides
                emit({"event": "error", "id": request["id"], "error": f"{type(error).__name__}: {error}"})


asyncio.run(main())
