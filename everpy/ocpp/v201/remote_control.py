"""Functional block F (remote control) of OCPP 2.0.1: RequestStart/StopTransaction, UnlockConnector and
TriggerMessage.

Remote start (F01/F02): the token goes to the charger's Auth as prevalidated once the CSMS has the answer
(with AuthCtrlr.AuthorizeRemoteStart only after an Authorize the CSMS accepted); the transaction it starts
names the remoteStartId. Remote stop (F03) and unlock answer Accepted / Unlocked only once the charger took
the command.

TriggerMessage (F06): BootNotification and Heartbeat are sent here, after the answer; every other message
that can be triggered is a method of the block that owns it, which answers Accepted or Rejected and only
schedules its message (a job, the transaction queue), so the message follows the answer too. Those sends run
with :data:`everpy.ocpp.session.TRIGGERED`, which lets them out while the boot is Pending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.rpc import Reply
from everpy.ocpp.session import TRIGGERED
from everpy.ocpp.v16.trigger import triggered
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.auth import AUTHORIZE_REMOTE_START
from everpy.ocpp.values import EvseRef, IdToken

Ctx = BlockContext[DeviceModel]
STARTABLE = frozenset({"Available", "Occupied", "Reserved"})  # Occupied: a car plugged in first (F01)


class TransactionsView(Protocol):
    """What remote control needs of the transactions block."""

    running: dict[int, Any]

    async def stop(self, evse_id: int, reason: str) -> bool: ...

    def expect_remote_start(self, evse_id: int | None, remote_start_id: int) -> None: ...

    def transaction_of(self, transaction_id: str) -> int | None: ...


class Authorizer(Protocol):
    async def authorize(self, token: dict[str, Any]) -> dict[str, Any]: ...


class RemoteStartProfiles(Protocol):
    def accept_remote_start_profile(self, evse_id: int | None, profile: dict[str, Any] | None) -> str | None: ...


def _rejected(reason_code: str, info: str) -> Reply:
    return Reply({"status": "Rejected", "statusInfo": {"reasonCode": reason_code, "additionalInfo": info[:512]}})


class RemoteControl:
    def __init__(self, ctx: Ctx, evses: Evses, transactions: TransactionsView, authorization: Authorizer,
                 smart_charging: RemoteStartProfiles) -> None:
        self.ctx, self.evses = ctx, evses
        self.transactions, self.authorization, self.smart_charging = transactions, authorization, smart_charging

    def _authorized_transaction(self, evse_id: int) -> str | None:
        """The transaction on the EVSE if one runs that a token already authorized."""
        tx = self.transactions.running.get(evse_id)
        return tx.tx_id if tx is not None and tx.state.id_token is not None else None

    def _startable(self, evse_id: int) -> bool:
        return self.evses.status(evse_id) in STARTABLE and self._authorized_transaction(evse_id) is None

    @handles("RequestStartTransaction")
    async def on_request_start(self, payload: dict[str, Any]) -> Reply:
        if not self.ctx.sender.accepted:  # B02: no transactions while the boot is Pending
            return _rejected("NotAccepted", "the station is not registered yet")
        evse_id: int | None = payload.get("evseId")
        if evse_id is not None:
            if evse_id not in self.evses:
                return _rejected("UnknownEvse", f"no EVSE {evse_id}")
            if not self._startable(evse_id):
                return _rejected("NotAvailable", f"EVSE {evse_id} is {self.evses.status(evse_id)} or in use")
        elif not any(self._startable(e) for e in self.evses.ids()):
            return _rejected("NotAvailable", "no EVSE can start a transaction")
        profile = payload.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":  # F01 / K05
            return _rejected("InvalidProfile", "a remote start takes a TxProfile only")
        # also without a profile: this start replaces what an earlier one left waiting for its transaction
        reason = self.smart_charging.accept_remote_start_profile(evse_id, profile)
        if reason is not None:
            return _rejected("InvalidProfile", reason)
        answer: dict[str, Any] = {"status": "Accepted"}
        if evse_id is not None and (tx := self.transactions.running.get(evse_id)) is not None:
            answer["transactionId"] = tx.tx_id  # F01: the car was plugged in first, its transaction runs
        token, remote_start_id = payload["idToken"], payload["remoteStartId"]
        return Reply(answer, lambda: self._hand_over(evse_id, token, remote_start_id))

    async def _hand_over(self, evse_id: int | None, token: dict[str, Any], remote_start_id: int) -> None:
        if self.ctx.config.bool(AUTHORIZE_REMOTE_START):  # F02: the CSMS's Authorize decides first
            info = await self.authorization.authorize(token)
            if info["status"] != "Accepted":
                self.ctx.log.warning("remote start %d: token not authorized (%s), no transaction", remote_start_id,
                                     info["status"])
                return
        self.transactions.expect_remote_start(evse_id, remote_start_id)
        self.ctx.station.provide_token(IdToken(token["idToken"], token["type"]),
                                       None if evse_id is None else [evse_id], True)

    @handles("RequestStopTransaction")
    async def on_request_stop(self, payload: dict[str, Any]) -> Reply:
        evse_id = self.transactions.transaction_of(payload["transactionId"])
        if evse_id is None:  # F03: no such transaction
            return _rejected("TxNotFound", "no such transaction runs")
        if not await self.transactions.stop(evse_id, "Remote"):
            self.ctx.log.warning("EVSE %d did not take the remote stop of %s", evse_id, payload["transactionId"])
            return _rejected("InternalError", "the EVSE did not take the stop")
        return Reply({"status": "Accepted"})

    @handles("UnlockConnector")
    async def on_unlock(self, payload: dict[str, Any]) -> Reply:
        evse_id, connector_id = payload["evseId"], payload["connectorId"]
        if not self.evses.has_connector(evse_id, connector_id):
            return Reply({"status": "UnknownConnector"})
        if self._authorized_transaction(evse_id) is not None:  # F05: the CSMS stops the transaction first
            return Reply({"status": "OngoingAuthorizedTransaction"})
        evse = EvseRef(evse_id, connector_id)
        if not await self.ctx.station.has_lock(evse):
            return Reply({"status": "UnlockFailed", "statusInfo": {"reasonCode": "FixedCable"}})
        if self.evses[evse_id].transaction_id is not None:  # a transaction nobody authorized ends with it
            await self.transactions.stop(evse_id, "UnlockCommand")
        return Reply({"status": "Unlocked" if await self.ctx.station.unlock(evse) else "UnlockFailed"})


TriggerFn = Callable[[int | None, int | None], Awaitable[str]]  # (evse id, connector id) -> the answer's status


class StatusTrigger(Protocol):
    def trigger(self, evse_id: int | None, connector_id: int | None) -> str: ...


class TransactionTriggers(Protocol):
    async def trigger_transaction_event(self, evse_id: int | None) -> str: ...

    async def trigger_meter_values(self, evse_id: int | None) -> str: ...


class StatusMessageTrigger(Protocol):
    """FirmwareStatusNotification (firmware) and LogStatusNotification (diagnostics)."""

    async def trigger_status(self) -> str: ...


class CertificateTrigger(Protocol):
    async def trigger_sign_certificate(self, use: str) -> str: ...


class Trigger:
    def __init__(self, ctx: Ctx, evses: Evses, status: StatusTrigger, transactions: TransactionTriggers,
                 firmware: StatusMessageTrigger, diagnostics: StatusMessageTrigger, certificates: CertificateTrigger,
                 boot_payload: Callable[[], dict[str, Any]]) -> None:
        self.ctx, self.evses, self.status, self.transactions = ctx, evses, status, transactions
        self.firmware, self.diagnostics, self.certificates = firmware, diagnostics, certificates
        self.boot_payload = boot_payload  # what the boot loop sends; a triggered boot only asks it to send now

    def _triggers(self) -> dict[str, TriggerFn]:
        """requestedMessage -> the owner's trigger: Accepted (its message scheduled) or Rejected."""
        async def status(evse_id: int | None, connector_id: int | None) -> str:
            return self.status.trigger(evse_id, connector_id)

        return {
            "StatusNotification": status,
            "TransactionEvent": lambda evse_id, _: self.transactions.trigger_transaction_event(evse_id),
            "MeterValues": lambda evse_id, _: self.transactions.trigger_meter_values(evse_id),
            "FirmwareStatusNotification": lambda *_: self.firmware.trigger_status(),
            "LogStatusNotification": lambda *_: self.diagnostics.trigger_status(),
            "SignChargingStationCertificate": lambda *_: self.certificates.trigger_sign_certificate(
                "ChargingStationCertificate"),
            "SignV2GCertificate": lambda *_: self.certificates.trigger_sign_certificate("V2GCertificate"),
        }

    @handles("TriggerMessage")
    async def on_trigger_message(self, payload: dict[str, Any]) -> Reply:
        evse = payload.get("evse")
        evse_id = None if evse is None else evse["id"]
        connector_id = None if evse is None else evse.get("connectorId")
        if evse_id is not None and (evse_id not in self.evses or (
                connector_id is not None and not self.evses.has_connector(evse_id, connector_id))):
            return _rejected("UnknownEvse", f"no EVSE {evse_id} connector {connector_id}")
        requested = payload["requestedMessage"]
        if requested == "BootNotification":
            if self.ctx.sender.accepted:
                return _rejected("AlreadyAccepted", "the station is registered already")  # F06.FR.17
            return Reply({"status": "Accepted"}, triggered(self._request_boot))
        if requested == "Heartbeat":
            return Reply({"status": "Accepted"}, triggered(lambda: self.ctx.sender.call_or_log("Heartbeat", {})))
        trigger = self._triggers().get(requested)
        if trigger is None:
            return Reply({"status": "NotImplemented"})
        mark = TRIGGERED.set(True)  # the jobs the trigger spawns inherit it; this handler's caller does not
        try:
            status = await trigger(evse_id, connector_id)
        finally:
            TRIGGERED.reset(mark)
        return Reply({"status": status})

    async def _request_boot(self) -> None:
        if not self.ctx.sender.request_boot_notification():
            self.ctx.log.info("triggered BootNotification not sent: the station was accepted meanwhile")
