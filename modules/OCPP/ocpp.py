"""The OCPP module: the bus side of the OCPP 1.6 station logic in ``everpy.ocpp.v16``.

Connector n (OCPP 1.6 connector id) is the n-th ``evse_manager`` connection of the run config, and the
n-th ``evse_energy_sink`` connection (if any) receives its smart-charging limits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from everpy import CommandError, Module, Remote, command
from everpy.ocpp.rpc import CallTimeout, InvalidResponse, OcppCallError
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.chargepoint import ChargePoint16, NotOnline, Settings

CSMS_ENABLE_PRIORITY = 5000


def _initial_keys(text: str) -> dict[str, str]:
    """The `configuration` config entry: a JSON object of key -> string value."""
    try:
        keys = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"OCPP config 'configuration' is not valid JSON: {error}") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ValueError("OCPP config 'configuration' must be a JSON object of strings, e.g. "
                         '{"HeartbeatInterval": "60"}')
    return keys


class BusStation:
    """everpy.ocpp.station.Station over the module's requirements."""

    def __init__(self, module: OCPP) -> None:
        self.module = module
        self.evses = module.connections("evse_manager")
        self.sinks = module.connections("evse_energy_sink")
        self.log = module.log

    def connector_ids(self) -> list[int]:
        return list(range(1, len(self.evses) + 1))

    def _evse(self, connector: int) -> Remote:
        return self.evses[connector - 1]

    async def _call(self, remote: Remote, cmd: str, default: Any, **args: Any) -> Any:
        """A bus call whose failure the OCPP logic reports as "not done" (after logging why)."""
        try:
            return await remote.call(cmd, **args)
        except CommandError as error:
            self.log.error("%s.%s failed: %s", remote.module_id, cmd, error)
            return default

    async def set_available(self, connector: int, available: bool) -> bool:
        source = {"enable_source": "CSMS", "enable_state": "Enable" if available else "Disable",
                  "enable_priority": CSMS_ENABLE_PRIORITY}
        return bool(await self._call(self._evse(connector), "enable_disable", False, connector_id=0, cmd_source=source))

    async def stop_transaction(self, connector: int, reason: str) -> bool:
        return bool(await self._call(self._evse(connector), "stop_transaction", False, request={"reason": reason}))

    async def pause_charging(self, connector: int) -> bool:
        return bool(await self._call(self._evse(connector), "pause_charging", False))

    async def unlock(self, connector: int) -> bool:
        return bool(await self._call(self._evse(connector), "force_unlock", False, connector_id=1))

    async def reserve(self, connector: int, reservation_id: int) -> bool:
        return bool(await self._call(self._evse(connector), "reserve", False, reservation_id=reservation_id))

    async def cancel_reservation(self, connector: int) -> None:
        await self._call(self._evse(connector), "cancel_reservation", None)

    def provide_token(self, id_tag: str, connectors: list[int] | None, prevalidated: bool) -> None:
        token: dict[str, Any] = {"id_token": {"value": id_tag, "type": "Central"}, "authorization_type": "OCPP",
                                 "prevalidated": prevalidated}
        if connectors:
            token["connectors"] = connectors
        self.module.publish("auth_provider", "provided_token", token)

    async def set_connection_timeout(self, seconds: int) -> None:
        for auth in self.module.connections("auth"):
            await self._call(auth, "set_connection_timeout", None, connection_timeout=seconds)

    async def apply_limits(self, connector: int, schedule: list[dict[str, Any]]) -> None:
        if connector <= len(self.sinks):
            await self._call(self.sinks[connector - 1], "set_external_limits", None,
                             value={"schedule_import": schedule, "schedule_export": []})

    async def set_system_time(self, timestamp: str) -> bool:
        return bool(await self._call(self.module.require("system"), "set_system_time", False, timestamp=timestamp))

    async def reset(self, kind: str) -> None:
        await self._call(self.module.require("system"), "reset", None, type=kind, scheduled=False)

    async def update_firmware(self, request: dict[str, Any]) -> str:
        return str(await self._call(self.module.require("system"), "update_firmware", "Rejected",
                                    firmware_update_request=request))

    async def allow_firmware_installation(self) -> None:
        await self._call(self.module.require("system"), "allow_firmware_installation", None)

    async def upload_logs(self, request: dict[str, Any]) -> tuple[str, str | None]:
        answer = await self._call(self.module.require("system"), "upload_logs", None, upload_logs_request=request)
        if not answer:
            return "Rejected", None
        return str(answer.get("upload_logs_status", "Rejected")), answer.get("file_name")

    async def data_transfer(self, vendor_id: str, message_id: str | None, data: str | None) -> dict[str, Any]:
        consumers = self.module.connections("data_transfer")
        if not consumers:
            return {"status": "UnknownVendorId"}
        request: dict[str, Any] = {"vendor_id": vendor_id}
        if message_id is not None:
            request["message_id"] = message_id
        if data is not None:
            request["data"] = data
        return dict(await self._call(consumers[0], "data_transfer", {"status": "Rejected"}, request=request))

    def publish(self, var: str, value: Any) -> None:
        self.module.publish("main", var, value)


class OCPP(Module):
    cp: ChargePoint16

    async def init(self) -> None:
        config = self.config
        self.store = OcppStore(config["database_path"].replace("{id}", self.id))
        settings = Settings(
            charge_point_id=config["charge_point_id"], central_system_uri=config["central_system_uri"],
            vendor=config["vendor"], model=config["model"], serial_number=config["serial_number"],
            firmware_version=config["firmware_version"], initial_configuration=_initial_keys(config["configuration"]),
            reconnect_min_s=config["reconnect_min_s"], reconnect_max_s=config["reconnect_max_s"],
            response_timeout_s=config["response_timeout_s"], boot_retry_default_s=config["boot_retry_s"],
            reset_drain_timeout_s=config["reset_drain_timeout_s"], csms_ca_file=config["csms_ca_file"],
            client_cert_file=config["client_cert_file"], client_key_file=config["client_key_file"],
            basic_auth_raw_key=config["basic_auth_raw_key"],
            certificate_store_dir=config["certificate_store_dir"].replace("{id}", self.id),
            time_from_csms=config["time_from_csms"])
        self.station = BusStation(self)
        self.cp = ChargePoint16(self.station, self.store, settings, self.clock, self.log)
        core = self.cp.core
        for connector, evse in enumerate(self.station.evses, start=1):
            evse.subscribe("session_event", lambda event, c=connector: core.on_session_event(c, event))
            evse.subscribe("powermeter", lambda reading, c=connector: core.on_powermeter(c, reading))
            evse.subscribe("limits", lambda limits, c=connector: core.on_limits(c, limits))
            evse.subscribe_error(lambda error, c=connector: core.on_error(c, error))
        system = self.require("system")
        system.subscribe("firmware_update_status", self.cp.firmware.on_firmware_update_status)
        system.subscribe("log_status", self.cp.firmware.on_log_status)

    _runner: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        await self.station.set_connection_timeout(self.cp.config.int("ConnectionTimeOut"))
        self._runner = self.spawn(self.cp.run())

    async def shutdown(self) -> None:
        self.cp.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self.store.close()

    # -- ocpp interface ----------------------------------------------------------------------------
    @command("main", "stop")
    async def stop(self) -> bool:
        if self._runner is None or self._runner.done():
            return False
        await self.cp.stop()
        self._runner.cancel()
        return True

    @command("main", "restart")
    async def restart(self) -> bool:
        if self._runner is None or not self._runner.done():
            return False
        self.cp.resume()
        self._runner = self.spawn(self.cp.run())
        return True

    @command("main", "security_event")
    async def security_event(self, event: dict[str, Any]) -> None:
        self.cp.security.record_event(event["type"], event.get("info", ""), event.get("critical"))

    @command("main", "get_configuration")
    def get_configuration(self, keys: list[str]) -> dict[str, Any]:
        known, unknown = self.cp.config.readable(keys)
        return {"configuration_key": known, "unknown_key": unknown}

    @command("main", "change_configuration")
    def change_configuration(self, key: str, value: str) -> str:
        return self.cp.core.change_configuration(key, value)

    @command("main", "get_variables")
    def get_variables(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for request in requests:
            name = request["component_variable"]["variable"]["name"]
            known, _ = self.cp.config.readable([name])
            result: dict[str, Any] = {"component_variable": request["component_variable"],
                                      "attribute_type": request.get("attribute_type", "Actual")}
            if known and result["attribute_type"] == "Actual":
                result |= {"status": "Accepted", "value": known[0]["value"]}
            else:
                result["status"] = "UnknownVariable" if not known else "NotSupportedAttributeType"
            results.append(result)
        return results

    @command("main", "set_variables")
    def set_variables(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        statuses = {"Accepted": "Accepted", "Rejected": "Rejected", "RebootRequired": "RebootRequired",
                    "NotSupported": "UnknownVariable"}
        results = []
        for request in requests:
            name = request["component_variable"]["variable"]["name"]
            status = self.cp.core.change_configuration(name, request["value"])
            self.log.info("%s set %s: %s", source, name, status)
            results.append({"component_variable": request["component_variable"], "status": statuses[status],
                            "attribute_type": request.get("attribute_type", "Actual")})
        return results

    @command("main", "change_availability")
    async def change_availability(self, request: dict[str, Any]) -> dict[str, Any]:
        connector = request.get("evse", {}).get("id", 0)
        return await self.cp.core.change_availability(connector, request["operational_status"] == "Operative")

    # -- auth_token_validator ------------------------------------------------------------------------
    @command("auth_validator", "validate_token")
    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        return await self.cp.core.validate_token(provided_token)

    # -- ocpp_data_transfer (station -> CSMS) --------------------------------------------------------
    @command("data_transfer", "data_transfer")
    async def data_transfer(self, request: dict[str, Any]) -> dict[str, Any]:
        payload = {"vendorId": request["vendor_id"]}
        if "message_id" in request:
            payload["messageId"] = request["message_id"]
        if "data" in request:
            payload["data"] = request["data"]
        try:
            answer = await self.cp.call("DataTransfer", payload)
        except (NotOnline, CallTimeout):
            return {"status": "Offline"}
        except (OcppCallError, InvalidResponse) as error:
            self.log.warning("DataTransfer failed: %s", error)
            return {"status": "Rejected"}
        result = {"status": answer["status"]}
        if "data" in answer:
            result["data"] = answer["data"]
        return result
