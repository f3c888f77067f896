"""The OCPP module: the bus side of the station. It implements the southbound Station over its
connections and drives a version-neutral ChargePointInterface (today OCPP 1.6J) without reaching
behind it.

Connector n (OCPP 1.6 connector id) is the n-th ``evse_manager`` connection of the run config, and the
n-th ``evse_energy_sink`` connection (if any) receives its smart-charging limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from functools import partial
from typing import Any

from everpy import CommandError, Module, Remote, command
from everpy.ocpp.interface import ChargePointInterface
from everpy.ocpp.pacing import PacingSettings
from everpy.ocpp.settings import StationSettings as Settings
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.chargepoint import ChargePoint16
from everpy.ocpp.v201.chargepoint import ChargePoint201
from everpy.ocpp.values import EvseRef, IdToken, ResetRequest

CSMS_ENABLE_PRIORITY = 5000
BUS_ATTEMPTS = 3  # a command the charger must carry out is retried before OCPP reports it not done
BUS_RETRY_S = 0.5
FRESH_READING_S = 3.0  # how long the stop waits for the meter's next reading
LINK_FAULT = "generic/CommunicationFault"  # an EVSE behind a link (a satellite) is unreachable while raised
# the station of each OCPP version the module speaks (one per run: versions never switch at run time)
CHARGE_POINTS: dict[str, type[ChargePoint16] | type[ChargePoint201]] = {"1.6": ChargePoint16, "2.0.1": ChargePoint201}


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
        self.connector_types: dict[int, str] = {}
        self._readings: dict[int, asyncio.Event] = {}
        self._latest: dict[int, dict[str, Any]] = {}
        self._closing = False

    def evse_ids(self) -> list[int]:
        return list(range(1, len(self.evses) + 1))

    def _evse(self, evse_id: int) -> Remote:
        return self.evses[evse_id - 1]

    async def _call(self, remote: Remote, cmd: str, default: Any, **args: Any) -> Any:
        """A bus call; a failure is retried (a restarting module, a stalled bus), then logged and
        answered with `default` so the OCPP logic reports "not done"."""
        for attempt in range(1, BUS_ATTEMPTS + 1):
            try:
                return await remote.call(cmd, **args)
            except CommandError as error:
                if attempt == BUS_ATTEMPTS or not error.retryable:
                    # at shutdown the other modules stop too: expected, not an error of the charger
                    self.log.log(logging.INFO if self._closing else logging.ERROR, "%s.%s failed: %s",
                                 remote.module_id, cmd, error)
                    return default
                await self.module.clock.sleep(BUS_RETRY_S * attempt)
        return default

    async def set_available(self, evse_id: int, available: bool) -> bool:
        source = {"enable_source": "CSMS", "enable_state": "Enable" if available else "Disable",
                  "enable_priority": CSMS_ENABLE_PRIORITY}
        enabled = await self._call(self._evse(evse_id), "enable_disable", None, connector_id=0, cmd_source=source)
        return enabled is not None and bool(enabled) == available  # the EVSE answers whether it is enabled now

    async def stop_transaction(self, evse_id: int, reason: str) -> bool:
        return bool(await self._call(self._evse(evse_id), "stop_transaction", False, request={"reason": reason}))

    async def pause_charging(self, evse_id: int) -> bool:
        return bool(await self._call(self._evse(evse_id), "pause_charging", False))

    async def has_lock(self, evse: EvseRef) -> bool:
        return self.connector_types.get(evse.evse_id, "IEC62196Type2Socket") != "IEC62196Type2Cable"

    async def unlock(self, evse: EvseRef) -> bool:
        return bool(await self._call(self._evse(evse.evse_id), "force_unlock", False, connector_id=evse.connector_id))

    async def reserve(self, evse_id: int, reservation_id: int) -> bool:
        return bool(await self._call(self._evse(evse_id), "reserve", False, reservation_id=reservation_id))

    async def cancel_reservation(self, evse_id: int) -> None:
        await self._call(self._evse(evse_id), "cancel_reservation", None)

    async def session_info(self, evse_id: int) -> dict[str, Any] | None:
        answer = await self._call(self._evse(evse_id), "get_session", None)
        return answer if isinstance(answer, dict) else None

    def provide_token(self, token: IdToken, evse_ids: list[int] | None, prevalidated: bool) -> None:
        provided: dict[str, Any] = {"id_token": {"value": token.value, "type": token.type},
                                    "authorization_type": "OCPP", "prevalidated": prevalidated}
        if evse_ids:
            provided["connectors"] = evse_ids
        self.module.publish("auth_provider", "provided_token", provided)

    def validation_changed(self, evse_id: int, result: dict[str, Any]) -> None:
        self.module.publish("auth_validator", "validate_result_update",
                            {"validation_result": result, "connector_id": evse_id})

    async def set_connection_timeout(self, seconds: int) -> None:
        for auth in self.module.connections("auth"):
            await self._call(auth, "set_connection_timeout", None, connection_timeout=seconds)

    async def apply_limits(self, evse_id: int, schedule: list[dict[str, Any]]) -> None:
        if evse_id <= len(self.sinks):
            await self._call(self.sinks[evse_id - 1], "set_external_limits", None,
                             value={"schedule_import": schedule, "schedule_export": []})

    def reading(self, evse_id: int, reading: dict[str, Any]) -> None:
        self._latest[evse_id] = reading
        event = self._readings.pop(evse_id, None)
        if event is not None:
            event.set()

    async def read_meter(self, evse_id: int) -> dict[str, Any] | None:
        """The meter's next reading (the one after the stop); None if none comes in time, or once the
        module is shutting down (its subscriptions are gone: no reading comes any more)."""
        if self._closing:
            return None
        event = self._readings.setdefault(evse_id, asyncio.Event())
        try:
            await self.module.clock.wait_for(event.wait(), FRESH_READING_S)
        except TimeoutError:
            return None
        return None if self._closing else self._latest.get(evse_id)

    def stop_waiting_for_readings(self) -> None:
        """Shutdown: a stop being handled takes the reading it has (the session event's) at once."""
        self._closing = True
        for event in self._readings.values():
            event.set()
        self._readings.clear()

    async def set_system_time(self, timestamp: str) -> bool:
        return bool(await self._call(self.module.require("system"), "set_system_time", False, timestamp=timestamp))

    async def reset(self, request: ResetRequest) -> None:
        if request.evse is not None:
            raise ValueError("the system interface resets the whole station only")  # can_reset_evse is False
        await self._call(self.module.require("system"), "reset", None, type=request.kind.value, scheduled=False)

    def can_reset_evse(self) -> bool:
        return False  # neither the system nor the evse_manager interface can reset one EVSE alone

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

    def raise_error(self, kind: str, message: str) -> None:
        self.module.raise_error("main", f"ocpp/{kind}", message[:500])


class OCPP(Module):
    cp: ChargePointInterface

    async def init(self) -> None:
        config = self.config
        self.station = BusStation(self)
        self.store = OcppStore(config["database_path"].replace("{id}", self.id), ocpp_version=config["ocpp_version"],
                                 log=self.log)

        def store_degraded(reason: str) -> None:
            # Raised again with the newest reason: a disk nearly full (reserve released) may turn into a store
            # in memory, and the bus error must say so.
            self.clear_error("main", "ocpp/StoreDegraded")
            self.station.raise_error("StoreDegraded", reason)

        self.store.on_degraded = store_degraded
        self.store.on_recovered = lambda: self.clear_error("main", "ocpp/StoreDegraded")
        if self.store.degraded or self.store.nearly_full:
            self.station.raise_error("StoreDegraded", self.store.degraded or self.store.nearly_full or "")
        if self.store.lost:
            self.station.raise_error("StoreLost", self.store.lost)
        elsewhere = self.store.queued_elsewhere()
        if elsewhere:
            # Never sent under this version (its payloads would be another version's messages): kept, and
            # said loudly, so whoever changed ocpp_version can change it back to deliver them.
            counts = ", ".join(f"{count} under OCPP {version}" for version, count in sorted(elsewhere.items()))
            self.station.raise_error("QueuedUnderOtherVersion", f"{counts} queued and kept but not sent: this"
                                     f" station runs OCPP {config['ocpp_version']}; set ocpp_version back to"
                                     " deliver them")
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
            time_from_csms=config["time_from_csms"],
            status_pacing=PacingSettings(config["status_burst"], config["status_interval_s"]))
        self.cp = CHARGE_POINTS[config["ocpp_version"]](self.station, self.store, settings, self.clock, self.log)
        cp = self.cp
        for evse_id, evse in enumerate(self.station.evses, start=1):
            evse.subscribe("session_event", partial(self._session_event, evse_id))
            evse.subscribe("powermeter", partial(self._powermeter, evse_id))
            evse.subscribe("limits", partial(cp.on_limits, evse_id))
            evse.subscribe("hw_capabilities", partial(self._capabilities, evse_id))
            evse.subscribe_error(partial(self._evse_error, evse_id))
            evse.subscribe_state(partial(self._evse_state, evse_id))
        system = self.require("system")
        system.subscribe("firmware_update_status", cp.on_firmware_update_status)
        system.subscribe("log_status", cp.on_log_status)

    _events_in_flight = 0
    _events_done: asyncio.Event | None = None

    def _session_event(self, evse_id: int, event: dict[str, Any]) -> Awaitable[None]:
        """Counted from the moment the bus hands the event over, so shutdown can wait for a stop being
        handled (its StopTransaction is queued at the end of the handling)."""
        self._events_in_flight += 1
        return self._handle_session_event(evse_id, event)

    async def _handle_session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        try:
            await self.cp.on_session_event(evse_id, event)
        finally:
            self._events_in_flight -= 1
            if self._events_done is not None:
                self._events_done.set()

    async def _wait_session_events(self, timeout_s: float) -> bool:
        """Until no session event is being handled, at most timeout_s; the bus hands the next one of a
        backlog over in the same step the previous one ends, so the count is checked after each wake-up."""
        deadline = self.clock.monotonic() + timeout_s
        done = self._events_done = asyncio.Event()
        while self._events_in_flight:
            done.clear()
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            try:
                await self.clock.wait_for(done.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def _evse_error(self, evse_id: int, error: dict[str, Any]) -> None:
        await self.cp.on_error(evse_id, error)
        if error.get("type") == LINK_FAULT and error.get("state", "Active") != "Active":
            # a satellite's EVSE is reachable again (the controller clears the fault after its resync)
            await self.cp.on_evse_reappeared(evse_id)

    def _evse_state(self, evse_id: int, state: str) -> Awaitable[None] | None:
        """A restarted EvseManager comes back "ready" with none of its former state (enabled, no session)."""
        return self.cp.on_evse_reappeared(evse_id) if state == "ready" else None

    def _capabilities(self, evse_id: int, capabilities: dict[str, Any]) -> None:
        self.station.connector_types[evse_id] = capabilities["connector_type"]

    def _powermeter(self, evse_id: int, reading: dict[str, Any]) -> None:
        self.station.reading(evse_id, reading)
        self.cp.on_powermeter(evse_id, reading)

    _runner: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        await self.station.set_connection_timeout(self.cp.connection_timeout())
        self._runner = self.spawn(self.cp.run())

    async def shutdown(self) -> None:
        """Orderly stop: the stops the EVSEs reported (their stopping() ran before) are queued, and while
        connected the queue gets shutdown_drain_s to be delivered; then the connection closes."""
        budget = float(self.config["shutdown_drain_s"])
        deadline = self.clock.monotonic() + budget
        self.station.stop_waiting_for_readings()
        if not await self._wait_session_events(budget):
            self.log.warning("a session event was still being handled at shutdown")
        if self._runner is not None and not self._runner.done() \
                and not await self.cp.drain(max(0.0, deadline - self.clock.monotonic())):
            self.log.warning("%d queued OCPP message(s) not delivered before shutdown; they stay queued",
                             self.store.queue_length())
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
        self.cp.security_event(event["type"], event.get("info", ""), event.get("critical"))

    @command("main", "get_configuration")
    def get_configuration(self, keys: list[str]) -> dict[str, Any]:
        known, unknown = self.cp.get_configuration(keys)
        return {"configuration_key": known, "unknown_key": unknown}

    @command("main", "change_configuration")
    def change_configuration(self, key: str, value: str) -> str:
        return self.cp.change_configuration(key, value)

    @command("main", "get_variables")
    def get_variables(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.cp.get_variables(requests)

    @command("main", "set_variables")
    def set_variables(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        return self.cp.set_variables(requests, source)

    @command("main", "change_availability")
    async def change_availability(self, request: dict[str, Any]) -> dict[str, Any]:
        evse_id = request.get("evse", {}).get("id", 0)
        evse = EvseRef(evse_id, request.get("evse", {}).get("connector_id", 1)) if evse_id else None
        return await self.cp.change_availability(evse, request["operational_status"] == "Operative")

    # -- auth_token_validator ------------------------------------------------------------------------
    @command("auth_validator", "validate_token")
    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        return await self.cp.validate_token(provided_token)

    # -- ocpp_data_transfer (station -> CSMS) --------------------------------------------------------
    @command("data_transfer", "data_transfer")
    async def data_transfer(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.cp.data_transfer(request)
