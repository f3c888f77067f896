"""The OCPP 1.6J station: the 1.6 functional blocks wired on the shared session and store, behind the
version-neutral :class:`everpy.ocpp.interface.ChargePointInterface`.

This file only wires: each block gets a narrow context and the few blocks it needs; the session gets
the 1.6 binding (dialect, boot payload, heartbeat key) and message policy.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from everpy.core.clock import Clock
from everpy.ocpp.blocks import BlockContext, Jobs, handlers_of
from everpy.ocpp.certificates import CertificateStore
from everpy.ocpp.rpc import CallTimeout, Dialect, InvalidResponse, OcppCallError
from everpy.ocpp.security import ConnectionSecurity
from everpy.ocpp.session import NotOnline, Session, SessionSettings
from everpy.ocpp.settings import StationSettings as Settings
from everpy.ocpp.station import Station
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.authorization import Authorization
from everpy.ocpp.v16.availability import Availability
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.configuration_messages import ConfigurationMessages
from everpy.ocpp.v16.connectors import KEEP, SESSION_STATUS, Connectors
from everpy.ocpp.v16.dialect import DIALECT
from everpy.ocpp.v16.firmware import Firmware
from everpy.ocpp.v16.local_auth import LocalAuth
from everpy.ocpp.v16.remote_control import RemoteControl
from everpy.ocpp.v16.repository import Repository16
from everpy.ocpp.v16.reservation import Reservations
from everpy.ocpp.v16.security import (
    CERTIFICATE_USES,
    CRITICAL_EVENTS,
    CSMS_ROOT,
    SecurityEvents,
    SecurityExtension,
    SecuritySettings16,
)
from everpy.ocpp.v16.smart_charging import SmartCharging
from everpy.ocpp.v16.status import StatusNotifications
from everpy.ocpp.v16.transactions import TransactionQueue, Transactions
from everpy.ocpp.v16.trigger import Trigger
from everpy.ocpp.values import EvseRef, parse_time


class ChargePoint16:
    """ChargePointInterface for OCPP 1.6J."""

    def __init__(self, station: Station, store: OcppStore, settings: Settings, clock: Clock,
                 log: logging.Logger) -> None:
        self.station, self.store, self.settings, self.clock, self.log = station, store, settings, clock, log
        # The 1.6 tables first: registering them may find a file they do not fit and start the store afresh,
        # which must happen before anything has read the store.
        self.repository = Repository16(store)
        self.config = Configuration(store, settings.initial_configuration, log)
        self.config.set_read_only("NumberOfConnectors", str(len(station.evse_ids())))
        self.jobs = Jobs(log)
        self.security_settings = SecuritySettings16(
            self.config, settings.charge_point_id, settings.central_system_uri, settings.csms_ca_file,
            settings.basic_auth_raw_key, settings.certificate_store_dir, settings.client_cert_file,
            settings.client_key_file)
        self.certificates = CertificateStore(Path(settings.certificate_store_dir),
                                             self.config.int("CertificateStoreMaxLength"), CERTIFICATE_USES)
        self.connection_security = ConnectionSecurity(self.security_settings, self.certificates, CSMS_ROOT,
                                                      "InvalidCentralSystemCertificate", log,
                                                      lambda kind, info: self.events.record(kind, info))
        self.connectors = Connectors(station.evse_ids())
        self.session = Session(self, self.connection_security, store, SessionSettings(
            settings.reconnect_min_s, settings.reconnect_max_s, settings.response_timeout_s,
            settings.boot_retry_default_s), clock, log, self._publish_state)
        ctx: BlockContext[Configuration] = BlockContext(self.session, self.config, store, station, clock, log,
                                                        self.jobs)
        self.events = SecurityEvents(ctx, CRITICAL_EVENTS)
        self.status = StatusNotifications(ctx, self.connectors, settings.response_timeout_s, settings.status_pacing)
        self.transactions = Transactions(ctx, self.repository, self.connectors)
        self.session.policy = TransactionQueue(ctx, self.transactions)
        self.local_auth = LocalAuth(ctx, self.repository)
        self.reservations = Reservations(ctx, self.connectors, self.status)
        self.authorization = Authorization(ctx, self.repository, self.local_auth, self.reservations)
        self.availability = Availability(ctx, self.connectors, self.status)
        self.smart_charging = SmartCharging(ctx, self.connectors, self.transactions)
        self.firmware = Firmware(ctx, self.connectors)
        self.remote = RemoteControl(ctx, self.connectors, self.transactions, self.smart_charging,
                                    settings.reset_drain_timeout_s, self.events.record)
        self.configuration = ConfigurationMessages(ctx, self.connection_security)
        self.trigger = Trigger(ctx, self.connectors, self.status, self.transactions, self.firmware,
                               self.boot_payload)
        self.security = SecurityExtension(ctx, self.security_settings, self.certificates, self.events,
                                          self.connectors, self.firmware, self.trigger,
                                          settings.serial_number or settings.charge_point_id)
        self.session.add_handlers(handlers_of(
            self.authorization, self.availability, self.configuration, self.firmware, self.local_auth, self.remote,
            self.reservations, self.security, self.smart_charging, self.trigger))
        self.transactions.start_answered.subscribe(self.authorization.start_answered)
        self.transactions.stop_answered.subscribe(lambda answer: self.authorization.cache(*answer))
        self.transactions.ended.subscribe(self.availability.transaction_ended)
        self.transactions.ended.subscribe(self.firmware.transaction_ended)
        self.config.on_change(self._config_changed)
        self._started = False
        self._restored = False  # start() told the charger everything; from now on a returning EVSE is resynced
        self._resyncs: dict[int, asyncio.Lock] = {}

    # -- the session's binding -----------------------------------------------------------------------
    dialects: tuple[Dialect, ...] = (DIALECT,)  # the subprotocols offered, preferred first

    def boot_payload(self) -> dict[str, Any]:
        payload = {"chargePointVendor": self.settings.vendor, "chargePointModel": self.settings.model}
        if self.settings.serial_number:
            payload["chargePointSerialNumber"] = self.settings.serial_number
        if self.settings.firmware_version:
            payload["firmwareVersion"] = self.settings.firmware_version
        return payload

    def boot_accepted(self, result: dict[str, Any]) -> None:
        self.station.publish("boot_notification_response", {
            "status": result["status"], "current_time": result["currentTime"], "interval": result["interval"]})
        if result["interval"] > 0:
            self.config.set("HeartbeatInterval", str(min(result["interval"], 86400)))

    def refuses_before_acceptance(self, boot_status: str, action: str) -> bool:
        """1.6 lets the Central System configure a Pending station and names no refusal: nothing is gated."""
        return False

    def heartbeat_interval(self) -> int:
        return self.config.int("HeartbeatInterval")

    def ping_interval(self) -> int | None:
        return self.config.int("WebSocketPingInterval") or None

    async def wait_heartbeat_change(self) -> None:
        await self.config.wait_change("HeartbeatInterval")

    async def after_connect(self) -> None:
        await self.status.after_connect()

    async def take_time(self, current_time: str) -> None:
        """With time_from_csms: set the system clock when it is more than a second off the CSMS's time."""
        if self.settings.time_from_csms and abs(parse_time(current_time) - self.clock.time()) > 1.0:
            if await self.station.set_system_time(current_time):
                self.log.warning("system clock set to the CSMS's time %s", current_time)

    def quarantined(self, what: str, reason: str) -> None:
        self.events.record("PersistedStateQuarantined", f"{what}: {reason}"[:255], critical=False)

    def _report_quarantine(self) -> None:
        for kind, reason in self.store.new_quarantine_events():
            self.quarantined(kind, reason)

    def _publish_state(self, state: str) -> None:
        self.station.publish("connection_status", {
            "state": state, "connected": state not in ("Disconnected", "Connecting"),
            "security_profile": self.config.int("SecurityProfile"),
            "csms_url": self.settings.central_system_uri,
            "queued_transaction_messages": self.store.queue_length(),
        })

    def _config_changed(self, name: str, value: str) -> None:
        if name == "ClockAlignedDataInterval":
            self.transactions.restart_aligned()
        if name == "ConnectionTimeOut":
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
        await self.reservations.restore()
        await self.smart_charging.apply()
        self._report_quarantine()
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
        self.smart_charging.cancel_timers()

    # -- ChargePointInterface: what the charger reports ---------------------------------------------------
    async def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        c = self.connectors[evse_id]
        kind = event["event"]
        if kind == "TransactionStarted":
            details = event.get("transaction_started", {})
            reservation_id = details.get("reservation_id")
            id_tag = details.get("id_tag", {}).get("id_token", {}).get("value", "")
            if reservation_id is None:
                reservation_id = self.reservations.used_by(c.id, id_tag)
            self.transactions.transaction_started(c, event, reservation_id)
            if reservation_id is not None:
                self.reservations.ended(c.id, reservation_id)
        elif kind == "TransactionFinished":
            await self.transactions.transaction_finished(c, event)
        elif kind == "ReservationEnd":
            self.reservations.ended(evse_id, event.get("reservation_end", {}).get("reservation_id"))
        status = SESSION_STATUS.get(kind, KEEP)
        if status != KEEP:
            c.session_status = status
        await self.status.send(evse_id)

    async def on_evse_reappeared(self, evse_id: int) -> None:
        """The EVSE is back (its module restarted, a satellite's link returned): OCPP re-reads what it runs
        and tells it again what OCPP wants of it (availability, reservation)."""
        if not self._restored:
            return  # start() is about to read and tell everything
        c = self.connectors[evse_id]
        async with self._resyncs.setdefault(evse_id, asyncio.Lock()):
            info = await self.station.session_info(evse_id)
            if info is None:
                self.log.warning("EVSE %d came back but its session could not be read; keeping what OCPP knows",
                                 evse_id)
            else:
                self.transactions.resync(c, info)
                if not info.get("session_id"):
                    c.session_status = None
                elif c.session_status is None:
                    c.session_status = "Preparing"  # a session OCPP missed: its next event says more
            await self.availability.resync(evse_id)
            await self.reservations.resync(evse_id)
            await self.status.send(evse_id)

    def on_powermeter(self, evse_id: int, reading: dict[str, Any]) -> None:
        self.transactions.on_powermeter(evse_id, reading)

    def on_limits(self, evse_id: int, limits: dict[str, Any]) -> None:
        self.transactions.on_limits(evse_id, limits)

    async def on_error(self, evse_id: int, error: dict[str, Any]) -> None:
        c = self.connectors[evse_id]
        key = (error.get("type", ""), error.get("sub_type", ""))
        if error.get("state", "Active") == "Active":
            c.errors[key] = error
        else:
            c.errors = {k: v for k, v in c.errors.items() if k[0] != key[0] or key[1] not in ("", k[1])}
        await self.status.send(evse_id)

    async def on_firmware_update_status(self, status: dict[str, Any]) -> None:
        await self.firmware.on_firmware_update_status(status)

    async def on_log_status(self, status: dict[str, Any]) -> None:
        await self.firmware.on_log_status(status)

    # -- ChargePointInterface: what local users ask ---------------------------------------------------
    def security_event(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        self.events.record(kind, info, critical)

    def get_configuration(self, keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        return self.config.readable(keys)

    def change_configuration(self, key: str, value: str) -> str:
        return self.configuration.change(key, value)

    def get_variables(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for request in requests:
            name = request["component_variable"]["variable"]["name"]
            known, _ = self.config.readable([name])
            result: dict[str, Any] = {"component_variable": request["component_variable"],
                                      "attribute_type": request.get("attribute_type", "Actual")}
            if known and result["attribute_type"] == "Actual":
                result |= {"status": "Accepted", "value": known[0]["value"]}
            else:
                result["status"] = "UnknownVariable" if not known else "NotSupportedAttributeType"
            results.append(result)
        return results

    def set_variables(self, requests: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        statuses = {"Accepted": "Accepted", "Rejected": "Rejected", "RebootRequired": "RebootRequired",
                    "NotSupported": "UnknownVariable"}
        results = []
        for request in requests:
            name = request["component_variable"]["variable"]["name"]
            status = self.configuration.change(name, request["value"])
            self.log.info("%s set %s: %s", source, name, status)
            results.append({"component_variable": request["component_variable"], "status": statuses[status],
                            "attribute_type": request.get("attribute_type", "Actual")})
        return results

    async def change_availability(self, evse: EvseRef | None, operative: bool) -> dict[str, Any]:
        return await self.availability.change(0 if evse is None else evse.evse_id, operative)

    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        return await self.authorization.validate_token(provided_token)

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
        return self.config.int("ConnectionTimeOut")

