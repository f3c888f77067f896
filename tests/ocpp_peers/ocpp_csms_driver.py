"""Runs the PyPI package ocpp-csms (its `CentralSystem`) as a CSMS process the tests can steer.

Runs in ocpp-csms's own venv (the package is AGPL-3.0 and a test-only dependency: it is installed, never
vendored, and never imported by the test's interpreter). Uses only the package's public API.

Usage: <venv>/bin/python ocpp_csms_driver.py '<settings JSON>'
  settings: {"password": "..." (Basic auth required), "idTags": {"BAD": "Invalid"},
             "registration": ["Pending", "Accepted"] (answers to successive BootNotifications)}
Standard output: JSON lines. {"event": "listening", "port": N}; every ocpp-csms event as
{"event": "<EventClass>", ...its fields}; {"event": "Authorize", "id_tag": ...} for each authorisation
decision; {"event": "Authenticate", ...}; DataTransfer with vendorId everpy.test is answered Accepted with
"echo:<data>"; {"event": "answer", "id": ..., "result"|"error": ...}.
Standard input: JSON lines, either a ChargePoint method
  {"id": 1, "charge_point": "CP1", "method": "async_reset", "args": {"reset_type": "Soft"}}
or any OCPP 1.6 request through ChargePoint.async_call
  {"id": 2, "charge_point": "CP1", "request": "SetChargingProfile", "params": {<snake_case fields>}}
or a control: {"id": 3, "control": "refuse"} drops every station and refuses new connections (HTTP 401)
until {"id": 4, "control": "accept"}.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from enum import Enum
from typing import Any

from ocpp.v16 import call
from ocpp_csms import (
    AuthorizationStatus,
    AvailabilityType,
    CentralSystem,
    ChargePoint,
    ChargePointEvent,
    CsmsError,
    DataTransferStatus,
    MessageTrigger,
    RegistrationStatus,
    ResetType,
)
from ocpp_csms.models import BootInfo

# ChargePoint method arguments that the package types as enums
ENUM_ARGUMENTS: dict[str, type[Enum]] = {
    "reset_type": ResetType, "availability": AvailabilityType, "message": MessageTrigger,
}


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


class Driver:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.registration_answers = list(settings.get("registration", []))
        self.refusing = False  # "refuse" control: the CSMS is away (connections dropped, then HTTP 401)

    async def authenticate(self, charge_point_id: str, password: str | None) -> bool:
        accepted = not self.refusing and ("password" not in self.settings or password == self.settings["password"])
        emit("Authenticate", charge_point_id=charge_point_id, accepted=accepted, had_password=password is not None)
        return accepted

    async def registration(self, charge_point: ChargePoint, info: BootInfo) -> RegistrationStatus:
        answer = self.registration_answers.pop(0) if self.registration_answers else "Accepted"
        return RegistrationStatus(answer)

    async def authorize(self, charge_point: ChargePoint, id_tag: str) -> AuthorizationStatus:
        status = AuthorizationStatus(self.settings.get("idTags", {}).get(id_tag, "Accepted"))
        emit("Authorize", charge_point_id=charge_point.id, id_tag=id_tag, status=status.value)
        return status

    async def data_transfer(self, charge_point: ChargePoint, message_id: str | None,
                            data: str | None) -> tuple[DataTransferStatus, str | None]:
        return DataTransferStatus.ACCEPTED, f"echo:{data or ''}"

    async def serve_request(self, central_system: CentralSystem, request: dict[str, Any]) -> None:
        request_id = request.get("id")
        if "control" in request:
            self.refusing = request["control"] == "refuse"
            if self.refusing:
                await asyncio.gather(*(cp.async_disconnect() for cp in central_system.charge_points.values()))
            emit("answer", id=request_id, result={})
            return
        try:
            charge_point = central_system.charge_points[request["charge_point"]]
            if "method" in request:
                args = {name: ENUM_ARGUMENTS[name](value) if name in ENUM_ARGUMENTS else value
                        for name, value in request.get("args", {}).items()}
                result = await getattr(charge_point, request["method"])(**args)
            else:
                result = await charge_point.async_call(getattr(call, request["request"])(**request["params"]))
        except (CsmsError, KeyError, AttributeError, TypeError, ValueError) as error:
            emit("answer", id=request_id, error={"type": type(error).__name__, "message": str(error),
                                                 "code": getattr(error, "code", None)})
            return
        emit("answer", id=request_id, result=jsonable(result))

    async def run(self) -> None:
        central_system = CentralSystem(host="127.0.0.1", port=0, authenticate=self.authenticate,
                                       registration=self.registration, authorize=self.authorize)
        central_system.set_data_transfer_handler("everpy.test", self.data_transfer)
        async with central_system:
            central_system.add_listener(
                lambda event: emit(type(event).__name__, **jsonable(event)) if isinstance(event, ChargePointEvent)
                else None)
            emit("listening", port=central_system.port)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            pending: set[asyncio.Task[None]] = set()
            async for line in reader:
                if not line.strip():
                    continue
                task = asyncio.create_task(self.serve_request(central_system, json.loads(line)))
                pending.add(task)
                task.add_done_callback(pending.discard)


if __name__ == "__main__":
    asyncio.run(Driver(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")).run())
