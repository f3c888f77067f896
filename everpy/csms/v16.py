"""A small OCPP 1.6J central system on the ``ocpp`` package: the tests' CSMS and the development CSMS.

As a program (``everpy csms``) it listens for stations, logs what they send in readable lines (boot,
authorisation, transactions, meter values, status) and takes remote commands over HTTP::

    curl -X POST localhost:8181/stations/CP1/RemoteStartTransaction -d '{"idTag": "ABC", "connectorId": 1}'
    curl localhost:8181/stations

In tests, :class:`Csms` records every frame and offers waits, calls, raw frames and fault injection
(all from :mod:`everpy.csms.common`). Answers are idempotent per message unique id, so a station that
resends a transaction message after a crash gets the same transaction id back and the duplicate is
visible in :meth:`Csms.duplicates`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from everpy.csms.common import BaseBehaviour, CsmsServer, Received, RecordingSession, describe_reading, now

__all__ = ["Behaviour", "Csms", "Received"]

log = logging.getLogger("everpy.csms")


@dataclass
class Behaviour(BaseBehaviour):
    """How the 1.6 CSMS answers; tests change these fields while running."""

    id_tags: dict[str, str] = field(default_factory=dict)  # id tag -> status; others get default_id_tag_status
    default_id_tag_status: str = "Accepted"
    parents: dict[str, str] = field(default_factory=dict)  # id tag -> parentIdTag in idTagInfo


def _describe_sample(sample: dict[str, Any]) -> str:
    return describe_reading(sample.get("measurand"), sample.get("phase"), sample["value"], sample.get("unit"))


class _Session(RecordingSession, ChargePoint):
    """The CSMS side of one 1.6 station connection."""

    csms: Csms

    def _id_tag_info(self, id_tag: str) -> dict[str, Any]:
        behaviour = self.csms.behaviour
        info = {"status": behaviour.id_tags.get(id_tag, behaviour.default_id_tag_status)}
        if id_tag in behaviour.parents:
            info["parent_id_tag"] = behaviour.parents[id_tag]
        return info

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any) -> Any:
        status = self.next_boot_status()
        log.info("%s boot: %s %s -> %s", self.id, charge_point_vendor, charge_point_model, status)
        return call_result.BootNotification(current_time=now(), interval=self.csms.behaviour.boot_interval,
                                            status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **kwargs: Any) -> Any:
        log.info("%s connector %s: %s%s", self.id, connector_id, status,
                 "" if error_code == "NoError" else f" ({error_code})")
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        info = self._id_tag_info(id_tag)
        log.info("%s authorize %s -> %s", self.id, id_tag, info["status"])
        return call_result.Authorize(id_tag_info=info)

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, **kwargs: Any) -> Any:
        transaction_id = next(self.csms._transaction_ids)
        info = self._id_tag_info(id_tag)
        log.info("%s transaction %d started on connector %d by %s at %d Wh", self.id, transaction_id,
                 connector_id, id_tag, meter_start)
        return call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=info)

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, transaction_id: int, reason: str = "Local", **kwargs: Any) -> Any:
        log.info("%s transaction %d stopped (%s) at %d Wh", self.id, transaction_id, reason, meter_stop)
        id_tag = kwargs.get("id_tag")
        return call_result.StopTransaction(id_tag_info=None if id_tag is None else self._id_tag_info(id_tag))

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kwargs: Any) -> Any:
        for value in meter_value:
            readings = ", ".join(_describe_sample(s) for s in value["sampled_value"])
            log.info("%s meter connector %d tx %s: %s", self.id, connector_id, kwargs.get("transaction_id"), readings)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        log.info("%s data transfer from vendor %s: %s", self.id, vendor_id, kwargs)
        return call_result.DataTransfer(status="Accepted", data=kwargs.get("data"))

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str) -> Any:
        log.info("%s firmware: %s", self.id, status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str) -> Any:
        log.info("%s diagnostics: %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s signed firmware (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, **kwargs: Any) -> Any:
        log.info("%s log upload (request %s): %s", self.id, kwargs.get("request_id"), status)
        return call_result.LogStatusNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str) -> Any:
        log.info("%s asks to sign a station certificate", self.id)
        return call_result.SignCertificate(status="Accepted")

    @on(Action.security_event_notification)
    def on_security_event(self, type: str, timestamp: str, **kwargs: Any) -> Any:
        log.info("%s security event %s", self.id, type)
        return call_result.SecurityEventNotification()


class Csms(CsmsServer):
    """The 1.6 central system; the test API is :class:`everpy.csms.common.CsmsServer`'s."""

    version = "1.6"
    subprotocol = "ocpp1.6"
    requests = call
    actions = Action
    transaction_actions = ("StartTransaction", "StopTransaction", "MeterValues")
    behaviour: Behaviour

    def __init__(self, *args: Any, behaviour: Behaviour | None = None, **kwargs: Any) -> None:
        super().__init__(*args, behaviour=behaviour or Behaviour(), **kwargs)
        self._transaction_ids = itertools.count(1)

    def _session(self, station: str, connection: Any) -> _Session:
        return _Session(station, connection, self)

    async def call(self, station: str, payload: Any) -> Any:
        """Send a request (an ``ocpp.v16.call`` dataclass); raises on CALLERROR."""
        return await self.send_request(station, payload)
