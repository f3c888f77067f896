"""A small OCPP 2.0.1 CSMS on ``ocpp.v201``: the tests' 2.0.1 CSMS and ``everpy csms --ocpp 2.0.1``.

As a program it listens for stations, logs what they send in readable lines (boot, authorisation,
transactions, meter values, status) and takes remote commands over HTTP::

    curl -X POST localhost:8181/stations/CP1/RequestStartTransaction -d '{"idToken": {"idToken": "ABC",
         "type": "ISO14443"}, "remoteStartId": 1, "evseId": 1}'

In tests, :class:`Csms` records every frame and offers waits, calls, raw frames and fault injection
(from :mod:`everpy.csms.common`), plus what 2.0.1 adds: TransactionEvents per transactionId with their
seqNos (:class:`Transaction`) and reports collected per requestId (:class:`Report`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from everpy.csms.common import BaseBehaviour, CsmsServer, Received, RecordingSession, describe_reading, now

__all__ = ["Behaviour", "Csms", "Received", "Report", "Transaction"]

log = logging.getLogger("everpy.csms")

# Station messages answered in parts (tbc = "to be continued"), collected per requestId.
REPORT_ACTIONS = ("NotifyReport", "NotifyMonitoringReport", "NotifyCustomerInformation", "ReportChargingProfiles")


@dataclass
class Behaviour(BaseBehaviour):
    """How the 2.0.1 CSMS answers; tests change these fields while running."""

    id_tokens: dict[str, str] = field(default_factory=dict)  # idToken -> AuthorizationStatus
    default_id_token_status: str = "Accepted"
    group_id_tokens: dict[str, str] = field(default_factory=dict)  # idToken -> groupIdToken in idTokenInfo
    sign_certificate_status: str = "Accepted"
    # Accepted would promise a charging schedule this CSMS never computes.
    ev_charging_needs_status: str = "Rejected"


@dataclass
class Transaction:
    """Every TransactionEvent a station sent for one transactionId, resends included, in arrival order."""

    station: str
    transaction_id: str
    events: list[Received] = field(default_factory=list)

    @property
    def seq_nos(self) -> list[int]:
        return [event.payload["seqNo"] for event in self.events]

    @property
    def event_types(self) -> list[str]:
        return [event.payload.get("eventType", "") for event in self.events]

    @property
    def ended(self) -> bool:
        return "Ended" in self.event_types

    def repeated_seq_nos(self) -> list[int]:
        """seqNos that arrived more than once (resends after a CALLERROR or a lost answer)."""
        seq_nos = self.seq_nos
        return sorted({n for n in seq_nos if seq_nos.count(n) > 1})

    def missing_seq_nos(self) -> list[int]:
        """seqNos absent between 0 and the highest received: a continuous transaction has none."""
        present = set(self.seq_nos)
        return [n for n in range(max(present, default=-1) + 1) if n not in present]


@dataclass
class Report:
    """The parts of one multi-part station message (NotifyReport, ...) answering a request's requestId."""

    station: str
    action: str
    request_id: int
    parts: list[dict[str, Any]] = field(default_factory=list)  # camelCase payloads, each unique id once
    unique_ids: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return any(not part.get("tbc", False) for part in self.parts)

    @property
    def seq_nos(self) -> list[int]:
        return [part["seqNo"] for part in self.parts if "seqNo" in part]

    def items(self, key: str) -> list[Any]:
        """The lists under ``key`` (e.g. "reportData", "monitor", "chargingProfile") of all parts, joined."""
        return [item for part in self.parts for item in part.get(key, [])]


def _unit(sample: dict[str, Any]) -> str | None:
    unit_of_measure = sample.get("unit_of_measure")
    if unit_of_measure is None:  # no unit given: the measurand's own (Wh for the default energy register)
        return None if "measurand" in sample else "Wh"
    unit: str = unit_of_measure.get("unit", "Wh")  # the schema's default unit
    return unit


def _describe_meter_values(meter_values: Iterable[dict[str, Any]]) -> str:
    return ", ".join(describe_reading(sample.get("measurand"), sample.get("phase"), sample["value"], _unit(sample))
                     for meter_value in meter_values for sample in meter_value["sampled_value"])


def _transaction_key(received: Received) -> tuple[str, str, int] | None:
    """(station, transactionId, seqNo) of a TransactionEvent whose payload has them with the right types."""
    info, seq_no = received.payload.get("transactionInfo"), received.payload.get("seqNo")
    if not isinstance(info, dict) or not isinstance(info.get("transactionId"), str):
        return None
    if not isinstance(seq_no, int) or isinstance(seq_no, bool) or seq_no < 0:
        return None
    return received.station, info["transactionId"], seq_no


class _Session(RecordingSession, ChargePoint):
    """The CSMS side of one 2.0.1 station connection."""

    csms: Csms

    def _id_token_info(self, id_token: dict[str, Any]) -> dict[str, Any]:
        behaviour = self.csms.behaviour
        token = id_token["id_token"]
        info: dict[str, Any] = {"status": behaviour.id_tokens.get(token, behaviour.default_id_token_status)}
        if token in behaviour.group_id_tokens:
            info["group_id_token"] = {"id_token": behaviour.group_id_tokens[token], "type": "Central"}
        return info

    @on(Action.boot_notification)
    def on_boot(self, charging_station: dict[str, Any], reason: str, **kwargs: Any) -> Any:
        status = self.next_boot_status()
        log.info("%s boot (%s): %s %s -> %s", self.id, reason, charging_station["vendor_name"],
                 charging_station["model"], status)
        return call_result.BootNotification(current_time=now(), interval=self.csms.behaviour.boot_interval,
                                            status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> Any:
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status(self, connector_status: str, evse_id: int, connector_id: int, **kwargs: Any) -> Any:
        log.info("%s evse %d connector %d: %s", self.id, evse_id, connector_id, connector_status)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **kwargs: Any) -> Any:
        info = self._id_token_info(id_token)
        log.info("%s authorize %s -> %s", self.id, id_token["id_token"], info["status"])
        return call_result.Authorize(id_token_info=info)

    @on(Action.transaction_event)
    def on_transaction_event(self, event_type: str, trigger_reason: str, seq_no: int,
                             transaction_info: dict[str, Any], **kwargs: Any) -> Any:
        id_token, evse = kwargs.get("id_token"), kwargs.get("evse")
        info = None if id_token is None else self._id_token_info(id_token)
        log.info("%s transaction %s %s (seqNo %d, %s%s)%s%s", self.id, transaction_info["transaction_id"],
                 event_type, seq_no, trigger_reason, ", offline" if kwargs.get("offline") else "",
                 f" on evse {evse['id']}" if evse else "",
                 f" by {id_token['id_token']} -> {info['status']}" if id_token and info else "")
        if "meter_value" in kwargs:
            log.info("%s meter tx %s: %s", self.id, transaction_info["transaction_id"],
                     _describe_meter_values(kwargs["meter_value"]))
        return call_result.TransactionEvent(id_token_info=info)

    @on(Action.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **kwargs: Any) -> Any:
        log.info("%s meter evse %d: %s", self.id, evse_id, _describe_meter_values(meter_value))
        return call_result.MeterValues()

    @on(Action.notify_report)
    def on_notify_report(self, request_id: int, seq_no: int, tbc: bool = False, **kwargs: Any) -> Any:
        log.info("%s report %d part %d%s", self.id, request_id, seq_no, " (more to come)" if tbc else "")
        return call_result.NotifyReport()

    @on(Action.notify_monitoring_report)
    def on_notify_monitoring_report(self, request_id: int, seq_no: int, tbc: bool = False, **kwargs: Any) -> Any:
        log.info("%s monitoring report %d part %d%s", self.id, request_id, seq_no, " (more to come)" if tbc else "")
        return call_result.NotifyMonitoringReport()

    @on(Action.notify_customer_information)
    def on_notify_customer_information(self, request_id: int, seq_no: int, **kwargs: Any) -> Any:
        log.info("%s customer information %d part %d", self.id, request_id, seq_no)
        return call_result.NotifyCustomerInformation()

    @on(Action.report_charging_profiles)
    def on_report_charging_profiles(self, request_id: int, evse_id: int, **kwargs: Any) -> Any:
        log.info("%s charging profiles of request %d on evse %d", self.id, request_id, evse_id)
        return call_result.ReportChargingProfiles()

    @on(Action.notify_event)
    def on_notify_event(self, event_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        for event in event_data:
            log.info("%s event %s.%s = %s (%s)", self.id, event["component"]["name"], event["variable"]["name"],
                     event["actual_value"], event["trigger"])
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    def on_security_event(self, type: str, **kwargs: Any) -> Any:
        log.info("%s security event %s", self.id, type)
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **kwargs: Any) -> Any:
        status = self.csms.behaviour.sign_certificate_status
        log.info("%s asks to sign a %s certificate -> %s", self.id, kwargs.get("certificate_type", "station"),
                 status)
        return call_result.SignCertificate(status=status)

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s firmware (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.FirmwareStatusNotification()

    @on(Action.publish_firmware_status_notification)
    def on_publish_firmware_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s firmware publishing (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.PublishFirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s log upload (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.LogStatusNotification()

    @on(Action.notify_charging_limit)
    def on_notify_charging_limit(self, charging_limit: dict[str, Any], **kwargs: Any) -> Any:
        log.info("%s charging limit from %s on evse %s", self.id, charging_limit["charging_limit_source"],
                 kwargs.get("evse_id"))
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    def on_cleared_charging_limit(self, charging_limit_source: str, **kwargs: Any) -> Any:
        log.info("%s charging limit from %s cleared on evse %s", self.id, charging_limit_source, kwargs.get("evse_id"))
        return call_result.ClearedChargingLimit()

    @on(Action.notify_ev_charging_needs)
    def on_notify_ev_charging_needs(self, charging_needs: dict[str, Any], evse_id: int, **kwargs: Any) -> Any:
        status = self.csms.behaviour.ev_charging_needs_status
        log.info("%s EV on evse %d needs %s -> %s", self.id, evse_id, charging_needs["requested_energy_transfer"],
                 status)
        return call_result.NotifyEVChargingNeeds(status=status)

    @on(Action.notify_ev_charging_schedule)
    def on_notify_ev_charging_schedule(self, evse_id: int, **kwargs: Any) -> Any:
        log.info("%s EV charging schedule on evse %d", self.id, evse_id)
        return call_result.NotifyEVChargingSchedule(status="Accepted")

    @on(Action.notify_display_messages)
    def on_notify_display_messages(self, request_id: int, **kwargs: Any) -> Any:
        log.info("%s display messages of request %d", self.id, request_id)
        return call_result.NotifyDisplayMessages()

    @on(Action.reservation_status_update)
    def on_reservation_status(self, reservation_id: int, reservation_update_status: str, **kwargs: Any) -> Any:
        log.info("%s reservation %d: %s", self.id, reservation_id, reservation_update_status)
        return call_result.ReservationStatusUpdate()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        log.info("%s data transfer from vendor %s: %s", self.id, vendor_id, kwargs)
        return call_result.DataTransfer(status="Accepted", data=kwargs.get("data"))

    # This CSMS has no certificate authority and no OCSP responder: it says so instead of making one up.
    @on(Action.get_15118_ev_certificate)
    def on_get_15118_ev_certificate(self, action: str, **kwargs: Any) -> Any:
        log.info("%s asks to %s an EV contract certificate -> Failed (no PKI)", self.id, action)
        return call_result.Get15118EVCertificate(status="Failed", exi_response="",
                                                 status_info={"reason_code": "NoCertAuthority"})

    @on(Action.get_certificate_status)
    def on_get_certificate_status(self, ocsp_request_data: dict[str, Any], **kwargs: Any) -> Any:
        log.info("%s asks for an OCSP status -> Failed (no OCSP responder)", self.id)
        return call_result.GetCertificateStatus(status="Failed", status_info={"reason_code": "NoOCSPResponder"})


class Csms(CsmsServer):
    """The 2.0.1 CSMS. Beside :class:`everpy.csms.common.CsmsServer`'s waits and records it keeps
    :attr:`transactions` and :attr:`reports`, and :meth:`call` sends any request by name."""

    version = "2.0.1"
    subprotocol = "ocpp2.0.1"
    requests = call
    actions = Action
    transaction_actions = ("TransactionEvent",)
    behaviour: Behaviour

    def __init__(self, *args: Any, behaviour: Behaviour | None = None, **kwargs: Any) -> None:
        super().__init__(*args, behaviour=behaviour or Behaviour(), **kwargs)
        self.transactions: dict[tuple[str, str], Transaction] = {}  # (station, transactionId) -> its events
        self.reports: dict[tuple[str, str, int], Report] = {}  # (station, action, requestId) -> its parts

    def _session(self, station: str, connection: Any) -> _Session:
        return _Session(station, connection, self)

    def _record(self, received: Received) -> None:
        super()._record(received)
        if received.action == "TransactionEvent" and (key := _transaction_key(received)) is not None:
            station, transaction_id, _ = key
            self.transactions.setdefault((station, transaction_id), Transaction(station, transaction_id)) \
                .events.append(received)
        request_id = received.payload.get("requestId")
        if received.action in REPORT_ACTIONS and isinstance(request_id, int) and not isinstance(request_id, bool):
            report = self.reports.setdefault((received.station, received.action, request_id),
                                             Report(received.station, received.action, request_id))
            if received.unique_id not in report.unique_ids:
                report.unique_ids.add(received.unique_id)
                report.parts.append(received.payload)

    def forget(self) -> None:
        super().forget()
        self.transactions.clear()
        self.reports.clear()

    def transaction(self, transaction_id: str, station: str | None = None) -> Transaction:
        """The transaction of that id (of `station`, or of whichever station sent it); KeyError if none."""
        for (who, tx_id), transaction in self.transactions.items():
            if tx_id == transaction_id and station in (None, who):
                return transaction
        raise KeyError(f"no TransactionEvent for transaction {transaction_id}")

    async def wait_transaction(self, transaction_id: str | None = None, event_type: str = "Started",
                               station: str | None = None, timeout: float = 15.0) -> Transaction:
        """The transaction (the first one, without an id) once a TransactionEvent `event_type` of it arrived."""
        def find() -> Transaction | None:
            return next((t for (who, tx_id), t in self.transactions.items()
                         if transaction_id in (None, tx_id) and station in (None, who) and event_type in t.event_types),
                        None)

        return await self.wait_until(find, timeout)

    async def wait_report(self, request_id: int, action: str = "NotifyReport", station: str | None = None,
                          timeout: float = 15.0) -> Report:
        """The report answering `request_id` once its last part (tbc false) arrived."""
        def find() -> Report | None:
            return next((r for (who, what, rid), r in self.reports.items()
                         if rid == request_id and what == action and station in (None, who) and r.complete), None)

        return await self.wait_until(find, timeout)

    async def call(self, station: str, action: str, payload: dict[str, Any] | None = None,
                   timeout: float = 15.0) -> dict[str, Any]:
        """Send the 2.0.1 request `action` with a camelCase payload; the station's camelCase answer.

        Raises :class:`everpy.csms.common.StationCallError` (``.code``) on CALLERROR and
        :class:`everpy.csms.common.RequestError` when it cannot be sent or is not answered.
        """
        if station not in self.sessions:
            await self.wait_connected(station, timeout)
        return await self.request(station, action, payload or {}, timeout)
