"""Functional block L (firmware management) of OCPP 2.0.1: UpdateFirmware and FirmwareStatusNotification.

The System module does the work (schedule, download with retries, signing certificate and signature check,
install, reboot) and publishes every status with the request id; this block turns UpdateFirmware into its
request, forwards each status to the CSMS and decides
when the installation may begin (L01.FR.06/07): once no transaction runs and the installDateTime is reached.
While it waits with transactions running, the idle EVSEs are set Unavailable unless
ChargingStation.AllowNewSessionsPendingFirmwareUpdate is true; for the installation itself every EVSE is
Unavailable until the update ended (a reboot ends the process, and the availability block restores the
CSMS's wish at the next start).

everpy accepts secure updates only: a request without signingCertificate and signature is Rejected (TC_L_18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from everpy.core.clock import TimerHandle
from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.firmware_requests import firmware_request
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.device_model import DeviceModel
from everpy.ocpp.v201.evses import Evses
from everpy.ocpp.v201.variables.firmware import ALLOW_NEW_SESSIONS_PENDING_FIRMWARE_UPDATE
from everpy.ocpp.values import parse_time

Ctx = BlockContext[DeviceModel]
KIND = "firmware"
RECORD_ID = 0  # one update at a time: the latest one
ANSWERS = frozenset({"Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"})
# FirmwareStatusEnumType of 2.0.1: the System module publishes exactly these
STATUSES = frozenset({
    "Downloaded", "DownloadFailed", "Downloading", "DownloadScheduled", "DownloadPaused", "Idle",
    "InstallationFailed", "Installing", "Installed", "InstallRebooting", "InstallScheduled",
    "InstallVerificationFailed", "InvalidSignature", "SignatureVerified",
})  # fmt: skip
FINAL = frozenset({"Installed", "DownloadFailed", "InstallationFailed", "InstallVerificationFailed",
                   "InvalidSignature", "Idle"})  # the update is over: a trigger answers Idle
READY = frozenset({"Downloaded", "SignatureVerified"})  # the image is there; installation may wait
MAX_INT32 = 2**31 - 1


class SecurityEventLog(Protocol):
    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None: ...


class AvailabilityView(Protocol):
    async def resync(self, evse_id: int) -> None: ...


class StatusView(Protocol):
    async def send(self, evse_id: int) -> None: ...


@dataclass
class Update:
    """The latest update the CSMS asked for, as persisted: its id, last status and earliest install time."""

    request_id: int
    status: str | None = None
    install_at: float | None = None

    def record(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "status": self.status, "install_at": self.install_at}

    @staticmethod
    def from_record(data: dict[str, Any]) -> Update | None:
        request_id, status, install_at = data.get("request_id"), data.get("status"), data.get("install_at")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return None
        if status is not None and status not in STATUSES:
            return None
        if install_at is not None and (not isinstance(install_at, int | float) or isinstance(install_at, bool)):
            return None
        return Update(request_id, status, None if install_at is None else float(install_at))


def _rejected(reason_code: str, info: str) -> Reply:
    return Reply({"status": "Rejected", "statusInfo": {"reasonCode": reason_code, "additionalInfo": info[:512]}})


class Firmware:
    def __init__(self, ctx: Ctx, evses: Evses, events: SecurityEventLog, availability: AvailabilityView,
                 status: StatusView) -> None:
        self.ctx, self.evses, self.events = ctx, evses, events
        self.availability, self.status = availability, status
        self.update: Update | None = self._load()
        # statuses published while UpdateFirmware is being answered go out after the answer
        self._held_statuses: list[dict[str, Any]] | None = None
        self._ready = self.update is not None and self.update.status in READY | {"InstallScheduled"}
        self._ready_timer: TimerHandle | None = None
        self._permitted = False
        self._held_evses: dict[int, bool] = {}  # EVSE id -> its operative before the update held it

    def _load(self) -> Update | None:
        store = self.ctx.store
        for record_id, data in store.records(KIND).items():
            update = Update.from_record(data) if record_id == RECORD_ID else None
            if update is None:
                store.drop_record(KIND, record_id, data, "not a firmware update record")
            else:
                return update
        return None

    def _save(self) -> None:
        if self.update is not None:
            self.ctx.store.put_record(KIND, RECORD_ID, self.update.record())

    # -- UpdateFirmware --------------------------------------------------------------------------------
    @handles("UpdateFirmware")
    async def on_update_firmware(self, payload: dict[str, Any]) -> Reply:
        firmware = payload["firmware"]
        retries, interval = payload.get("retries"), payload.get("retryInterval")
        if (retries is not None and not 0 <= retries < MAX_INT32) or (
                interval is not None and not 0 <= interval < MAX_INT32):
            return _rejected("InvalidValue", "retries and retryInterval must not be negative")
        if not firmware.get("signingCertificate") or not firmware.get("signature"):
            return _rejected("UnsignedFirmware", "only signed firmware is installed: signingCertificate and "
                             "signature are required")
        install_time = firmware.get("installDateTime")
        # 2.0.1 retries are retries; the system counts attempts
        request = firmware_request(payload["requestId"], firmware["location"], firmware["retrieveDateTime"],
                                   None if retries is None else retries + 1, interval,
                                   install_timestamp=install_time, signing_certificate=firmware["signingCertificate"],
                                   signature=firmware["signature"])
        if self._held_statuses is None:
            self._held_statuses = []
        answer = await self.ctx.station.update_firmware(request)
        status = answer if answer in ANSWERS else "Rejected"
        if status == "InvalidCertificate":
            # not critical in Appendix 1, but L01.FR.02 has the CSMS told
            self.events.record("InvalidFirmwareSigningCertificate", "the firmware signing certificate is not trusted",
                               critical=True)
        if status in ("Accepted", "AcceptedCanceled"):
            self._cancel_ready()
            self.update = Update(payload["requestId"], None, None if install_time is None else parse_time(install_time))
            self._save()
        else:
            self.ctx.log.warning("firmware update %d not started: the system answered %s", payload["requestId"],
                                 answer)
        release = status == "AcceptedCanceled" and self._held_evses
        return Reply({"status": status}, lambda: self._answered(bool(release)))

    async def _answered(self, release: bool) -> None:
        held, self._held_statuses = self._held_statuses or [], None
        for notification in held:
            await self._send(notification)
        if release:  # the cancelled update held the EVSEs; the new one holds them again when it is ready
            await self._release()

    # -- the system's statuses ---------------------------------------------------------------------------
    async def on_firmware_update_status(self, status: dict[str, Any]) -> None:
        kind, request_id = status.get("firmware_update_status"), status.get("request_id")
        if kind not in STATUSES or not isinstance(request_id, int) or isinstance(request_id, bool):
            self.ctx.log.warning("ignoring a firmware status the system should not publish: %r", status)
            return
        if self.update is None or self.update.request_id != request_id:
            self.update = Update(request_id)
        self.update.status = kind
        self._save()
        if kind == "InvalidSignature":
            self.events.record("InvalidFirmwareSignature", f"firmware of request {request_id}",
                               critical=True)  # L01.FR.03: the CSMS is told
        notification = {"status": kind, "requestId": request_id}
        if self._held_statuses is not None:
            self._held_statuses.append(notification)
        else:
            await self._send(notification)
        if kind in READY and not self._ready and self._ready_timer is None:  # once: Downloaded, SignatureVerified
            self._schedule_ready()
        elif kind in FINAL:
            self._cancel_ready()
            await self._release()

    async def _send(self, notification: dict[str, Any]) -> None:
        # queued (persisted): an Installed or a failure must reach the CSMS also when the link is down, or
        # the station rebooted into the new image before it came back (L01)
        with self.ctx.store.atomic():
            self.ctx.sender.queue("FirmwareStatusNotification", notification, None)

    # -- when the installation may begin ------------------------------------------------------------------
    def _schedule_ready(self) -> None:
        """The installation waits for the installDateTime (the system waits for it too, after our permission:
        a transaction started meanwhile must hold it back, so the permission waits as well)."""
        self._cancel_ready()
        install_at = None if self.update is None else self.update.install_at
        delay = 0.0 if install_at is None else install_at - self.ctx.clock.time()
        if delay > 0:
            self._ready_timer = self.ctx.clock.call_later(delay, self._install_time_reached)
        else:
            self._install_time_reached()

    def _install_time_reached(self) -> None:
        self._ready_timer = None
        self._ready = True
        self._permitted = False
        self._check()

    def _cancel_ready(self) -> None:
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None
        self._ready = self._permitted = False

    def transaction_ended(self, evse_id: int) -> None:
        self._check()

    async def restore(self) -> None:
        """At start, after the transactions and availability were restored: an update that was waiting to be
        installed when the OCPP service stopped waits again (the system still waits for the permission)."""
        if self._ready:
            self._schedule_ready()

    def _check(self) -> None:
        if not self._ready or self._permitted:
            return
        if self.evses.any_transaction():
            if not self.ctx.config.bool(ALLOW_NEW_SESSIONS_PENDING_FIRMWARE_UPDATE):
                self.ctx.jobs.spawn(self._hold([e.id for e in self.evses if e.transaction_id is None]))
            return
        self._permitted = True
        self.ctx.jobs.spawn(self._permit())

    async def _permit(self) -> None:
        await self._hold(self.evses.ids())
        if self.evses.any_transaction():  # one started while the EVSEs were being disabled: wait for it too
            self._permitted = False
            return
        self.ctx.log.warning("no transaction runs: the firmware may be installed now")
        await self.ctx.station.allow_firmware_installation()

    async def _hold(self, evse_ids: list[int]) -> None:
        for evse_id in evse_ids:
            evse = self.evses[evse_id]
            if evse_id in self._held_evses or evse.transaction_id is not None:
                continue
            self._held_evses[evse_id] = evse.operative
            evse.operative = False  # not persisted: the CSMS's own wish stays the availability block's record
            if not await self.ctx.station.set_available(evse_id, False):
                self.ctx.log.warning("EVSE %d stays enabled during the firmware update", evse_id)
            await self.status.send(evse_id)

    async def _release(self) -> None:
        held, self._held_evses = self._held_evses, {}
        for evse_id, operative in held.items():
            self.evses[evse_id].operative = operative
            await self.availability.resync(evse_id)
            await self.status.send(evse_id)

    # -- TriggerMessage ---------------------------------------------------------------------------------
    async def trigger_status(self) -> str:
        """FirmwareStatusNotification: the status of the update in progress, Idle when none is (F06/L01)."""
        update = self.update
        if update is None or update.status is None or update.status in FINAL:
            payload: dict[str, Any] = {"status": "Idle"}
        else:
            payload = {"status": update.status, "requestId": update.request_id}
        self.ctx.jobs.spawn(self.ctx.sender.call_or_log("FirmwareStatusNotification", payload))
        return "Accepted"
