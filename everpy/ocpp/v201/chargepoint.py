"""The OCPP 2.0.1 station: the 2.0.1 functional blocks wired on the shared session and store, behind the
version-neutral :class:`everpy.ocpp.interface.ChargePointInterface`.

This file only wires: each block gets a narrow context and the few blocks it needs; the session gets
the 2.0.1 binding (dialect, boot payload, heartbeat variable) and message policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

from everpy.core.clock import Clock
from everpy.ocpp.blocks import BlockContext, Jobs, handlers_of
from everpy.ocpp.certificates import CertificateStore
from everpy.ocpp.rpc import CallTimeout, Dialect, InvalidResponse, OcppCallError
from everpy.ocpp.security import ConnectionSecurity
from everpy.ocpp.session import NotOnline, Session, SessionSettings
from everpy.ocpp.settings import StationSettings
from everpy.ocpp.station import Station
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v201.authorization import Authorization
from everpy.ocpp.v201.availability import Availability, StatusNotifications
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.diagnostics import DataTransfers, Diagnostics
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.firmware import Firmware
from everpy.ocpp.v201.network import NetworkProfiles, SecuritySettings201
from everpy.ocpp.v201.provisioning import Provisioning
from everpy.ocpp.v201.remote_control import RemoteControl, Trigger
from everpy.ocpp.v201.reservation import Reservations
from everpy.ocpp.v201.security import CERTIFICATE_USES, CSMS_ROOT, Certificates, security_events
from everpy.ocpp.v201.smart_charging import SmartCharging
from everpy.ocpp.v201.transactions import TransactionQueue, Transactions
from everpy.ocpp.v201.variables import DEFINITIONS
from everpy.ocpp.v201.variables.comm import (
    HEARTBEAT_INTERVAL,
    RETRY_BACKOFF_RANDOM_RANGE,
    RETRY_BACKOFF_REPEAT_TIMES,
    RETRY_BACKOFF_WAIT_MINIMUM,
    WEBSOCKET_PING_INTERVAL,
)
from everpy.ocpp.v201.variables.security import IDENTITY, SECURITY_PROFILE
from everpy.ocpp.v201.variables.tx import EV_CONNECTION_TIMEOUT
from everpy.ocpp.values import EvseRef, parse_time

VERSION = "2.0.1"
MAX_HEARTBEAT_S = 86400


class ChargePoint201:
    """ChargePointInterface for OCPP 2.0.1."""

    def __init__(self, station: Station, store: OcppStore, settings: StationSettings, clock: Clock,
                 log: logging.Logger) -> None:
        if store.ocpp_version != VERSION:
            raise ValueError(f"ChargePoint201 needs a store opened for OCPP {VERSION}, not {store.ocpp_version}")
        self.station, self.store, self.settings, self.clock, self.log = station, store, settings, clock, log
        self.evses = Evses(station.evse_ids())
        self.model = DeviceModel(store, DEFINITIONS, self.evses.connectors(), settings.initial_configuration, log)
        self.model.set_internal(IDENTITY, settings.charge_point_id)
        self.jobs = Jobs(log)
        self.security_settings = SecuritySettings201(
            self.model, settings.charge_point_id, settings.central_system_uri, settings.csms_ca_file,
            settings.certificate_store_dir, settings.client_cert_file, settings.client_key_file,
            settings.basic_auth_raw_key)
        self.certificate_store = CertificateStore(Path(settings.certificate_store_dir), 50, CERTIFICATE_USES)
        self.connection_security = ConnectionSecurity(self.security_settings, self.certificate_store, CSMS_ROOT,
                                                      "InvalidCsmsCertificate", log,
                                                      lambda kind, info: self.events.record(kind, info),
                                                      lambda connected: self.network.attempt(connected))
        self.session = Session(self, self.connection_security, store, SessionSettings(
            settings.reconnect_min_s, settings.reconnect_max_s, settings.response_timeout_s,
            settings.boot_retry_default_s, backoff=self.backoff), clock, log, self._publish_state)
        ctx: BlockContext[DeviceModel] = BlockContext(self.session, self.model, store, station, clock, log, self.jobs)
        self.events = security_events(ctx)
        self.network = self.security_settings.profiles = NetworkProfiles(
            ctx, settings.central_system_uri, self.connection_security.prerequisites_met)
        self.network.choose()
        self.status = StatusNotifications(ctx, self.evses, settings.status_pacing)
        self.authorization = Authorization(ctx, self.evses)
        self.transactions = Transactions(ctx, self.evses, self.authorization)
        self.session.policy = TransactionQueue(ctx, self.transactions)
        self.availability = Availability(ctx, self.evses, self.status)
        self.reservations = Reservations(ctx, self.evses, self.status)
        self.smart_charging = SmartCharging(ctx, self.evses, self.transactions)
        self.firmware = Firmware(ctx, self.evses, self.events, self.availability, self.status)
        self.diagnostics = Diagnostics(ctx, self.events, self.authorization)
        self.data_transfers = DataTransfers(ctx)
        self.certificates = Certificates(ctx, self.events, self.certificate_store, self.security_settings,
                                         settings.serial_number or settings.charge_point_id, settings.csms_ca_file)
        self.provisioning = Provisioning(ctx, self.evses, self.transactions, self.events)
        self.remote = RemoteControl(ctx, self.evses, self.transactions, self.authorization, self.smart_charging)
        self.trigger = Trigger(ctx, self.evses, self.status, self.transactions, self.firmware, self.diagnostics,
                               self.certificates, self.boot_payload)
        self.session.add_handlers(handlers_of(
            self.authorization, self.availability, self.certificates, self.data_transfers, self.diagnostics,
            self.firmware, self.network, self.provisioning, self.remote, self.reservations, self.smart_charging,
            self.trigger, self.transactions))
        self.transactions.ended.subscribe(self.availability.transaction_ended)
        self.transactions.started.subscribe(lambda evse_id: self.reservations.transaction_started(
            evse_id, self.transactions.conditions[evse_id].id_token))
        self.transactions.ended.subscribe(self.firmware.transaction_ended)
        self.model.on_change(self._model_changed)
        self._started = False
        self._restored = False  # start() told the charger everything; from now on a returning EVSE is resynced
        self._resyncs: dict[int, asyncio.Lock] = {}

    # -- the session's binding -----------------------------------------------------------------------
    dialects: tuple[Dialect, ...] = (DIALECT,)  # the subprotocols offered, preferred first

    def boot_payload(self) -> dict[str, Any]:
        station: dict[str, Any] = {"model": self.settings.model, "vendorName": self.settings.vendor}
        if self.settings.serial_number:
            station["serialNumber"] = self.settings.serial_number
        if self.settings.firmware_version:
            station["firmwareVersion"] = self.settings.firmware_version
        return {"reason": self.provisioning.boot_reason(), "chargingStation": station}

    def boot_accepted(self, result: dict[str, Any]) -> None:
        self.station.publish("boot_notification_response", {
            "status": result["status"], "current_time": result["currentTime"], "interval": result["interval"]})
        if result["interval"] > 0:
            self.model.set_internal(HEARTBEAT_INTERVAL, str(min(result["interval"], MAX_HEARTBEAT_S)))
        self.provisioning.boot_accepted()

    def refuses_before_acceptance(self, boot_status: str, action: str) -> bool:
        """B02.FR.xx/B03.FR.xx: a Rejected station answers every CSMS request SecurityError; a Pending one is
        configured by the CSMS but starts and stops no transaction for it (TC_B_30)."""
        return boot_status == "Rejected" or action in ("RequestStartTransaction", "RequestStopTransaction")

    def heartbeat_interval(self) -> int:
        return self.model.int(HEARTBEAT_INTERVAL)

    def ping_interval(self) -> int | None:
        return self.model.int(WEBSOCKET_PING_INTERVAL) or None

    async def wait_heartbeat_change(self) -> None:
        await self.model.wait_change(HEARTBEAT_INTERVAL)

    async def after_connect(self) -> None:
        if self.provisioning.outage_exceeded_threshold():
            await self.status.after_connect()
        else:  # a short outage (B04): only the statuses that changed meanwhile
            for evse_id in self.evses.ids():
                await self.status.send(evse_id)
        await self.reservations.after_connect()

    async def take_time(self, current_time: str) -> None:
        """With time_from_csms: set the system clock when it is more than a second off the CSMS's time."""
        if self.settings.time_from_csms and abs(parse_time(current_time) - self.clock.time()) > 1.0:
            if await self.station.set_system_time(current_time):
                self.log.warning("system clock set to the CSMS's time %s", current_time)

    def quarantined(self, what: str, reason: str) -> None:
        self.events.record("PersistedStateQuarantined", f"{what}: {reason}"[:255], critical=False)

    def backoff(self, failures: int) -> float:
        """OCPP 2.0.1 B10: RetryBackOffWaitMinimum doubled per failure at most RetryBackOffRepeatTimes times,
        plus a random part of up to RetryBackOffRandomRange seconds."""
        doublings = min(failures - 1, self.model.int(RETRY_BACKOFF_REPEAT_TIMES))
        return (self.model.int(RETRY_BACKOFF_WAIT_MINIMUM) * 2 ** doublings
                + random.uniform(0, self.model.int(RETRY_BACKOFF_RANDOM_RANGE)))

    def _publish_state(self, state: str) -> None:
        self.provisioning.connection_state(state)
        self.station.publish("connection_status", {
            "state": state, "connected": state not in ("Disconnected", "Connecting"),
            "security_profile": self.model.int(SECURITY_PROFILE),
            "csms_url": self.settings.central_system_uri,
            "queued_transaction_messages": self.store.queue_length(),
        })

    def _model_changed(self, address: Any, value: str) -> None:
        if address.ref == EV_CONNECTION_TIMEOUT:
            self.jobs.spawn(self.station.set_connection_timeout(int(value)))

    # -- ChargePointInterface: life cycle --------------------------------------------------------------
    async def start(self) -> None:
        """Once per process: a restart of the OCPP service (stop/restart) keeps running transactions."""
        if self._started:
            return
        self._started = True
        for problem in self.store.startup_problems():
            self.events.record("StoreProblem", problem, critical=False)
        await self.transactions.recover()
        await self.availability.restore()
        await self.firmware.restore()
        await self.reservations.restore()
        await self.smart_charging.apply()
        for kind, reason in self.store.new_quarantine_events():
            self.quarantined(kind, reason)
        self.events.record("StartupOfTheDevice", "the OCPP service started")
        self._restored = True

    async def run(self) -> None:
        await self.start()
        await self.session.run()

    async def stop(self) -> None:
        await self.session.stop()

    def resume(self) -> None:
        self.session.resume()

    async def drain(self, timeout_s: float) -> bool:
        return await self.session.drain(timeout_s)

    def close(self) -> None:
        self.session.halt()
        self.jobs.cancel_all()
        self.transactions.cancel_timers()
        self.status.cancel_timers()
        self.reservations.cancel_timers()
        self.smart_charging.cancel_timers()
        self.certificates.cancel_timers()

    # -- ChargePointInterface: what the charger reports ---------------------------------------------------
    async def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        self.evses.session_event(evse_id, event)
        kind = event["event"]
        if kind == "ReservationEnd":
            end = event.get("reservation_end", {})
            self.reservations.ended(evse_id, end.get("reservation_id"), end.get("reason"))
        await self.transactions.on_session_event(evse_id, event)
        await self.status.send(evse_id)

    async def on_evse_reappeared(self, evse_id: int) -> None:
        """The EVSE is back (its module restarted, a satellite's link returned): OCPP re-reads what it runs
        and tells it again what OCPP wants of it (availability, reservation)."""
        if not self._restored:
            return  # start() is about to read and tell everything
        async with self._resyncs.setdefault(evse_id, asyncio.Lock()):
            info = await self.station.session_info(evse_id)
            if info is None:
                self.log.warning("EVSE %d came back but its session could not be read; keeping what OCPP knows",
                                 evse_id)
            else:
                self.transactions.resync(evse_id, info)
                evse = self.evses[evse_id]
                evse.plugged = bool(info.get("session_id"))
                evse.session_id = info.get("session_id") or None
            await self.availability.resync(evse_id)
            await self.reservations.resync(evse_id)
            await self.status.send(evse_id)

    def on_powermeter(self, evse_id: int, reading: dict[str, Any]) -> None:
        self.evses[evse_id].reading = reading
        self.transactions.on_powermeter(evse_id, reading)

    def on_limits(self, evse_id: int, limits: dict[str, Any]) -> None:
        self.transactions.on_limits(evse_id, limits)

    async def on_error(self, evse_id: int, error: dict[str, Any]) -> None:
        self.evses.error(evse_id, error)
        await self.status.send(evse_id)

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None:
        await self.firmware.on_firmware_update_status(status)

    async def on_log_status(self, status: dict[str, Any]) -> None:
        await self.diagnostics.on_log_status(status)

    # -- ChargePointInterface: what local users ask ---------------------------------------------------
    def security_event(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        self.events.record(kind, info, critical)

    def get_configuration(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """1.6-style keys read as ``Component.Variable[instance]`` of the device model."""
        return self.provisioning.readable(keys)

    def change_configuration(self, key: str, value: str) -> str:
        return self.provisioning.change(key, value)

    def get_variables(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.provisioning.local_get(requests)

    def set_variables(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        return self.provisioning.local_set(requests, source)

    async def change_availability(self, evse: EvseRef | None, operative: bool) -> dict[str, Any]:
        status = await self.availability.change(0 if evse is None else evse.evse_id,
                                                None if evse is None else evse.connector_id, operative)
        return {"status": status}

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        return self.reservations.restrict_provided(await self.authorization.validate_token(provided_token),
                                                   provided_token)

    async def data_transfer(self, request: dict[str, Any]) -> dict[str, Any]:
        payload = {"vendorId": request["vendor_id"]}
        for ours, theirs in (("message_id", "messageId"), ("data", "data")):
            if ours in request:
                payload[theirs] = request[ours]
        try:
            answer = await self.session.call("DataTransfer", payload)
        except (NotOnline, CallTimeout):
            return {"status": "Offline"}
        except (OcppCallError, InvalidResponse) as error:
            self.log.warning("DataTransfer failed: %s", error)
            return {"status": "Rejected"}
        result = {"status": answer["status"]}
        if "data" in answer:
            result["data"] = answer["data"]
        return result

    def connection_timeout(self) -> int:
        return self.model.int(EV_CONNECTION_TIMEOUT)
