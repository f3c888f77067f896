"""Functional block L (firmware management) of OCPP 2.0.1 against a fake context: UpdateFirmware becomes the
system's request, each system status a FirmwareStatusNotification (after the answer), the installation waits
for the installDateTime and for the transactions to end with the EVSEs held Unavailable, security events for
an untrusted certificate or a bad signature, TriggerMessage, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everpy.ocpp.rpc import Reply
from everpy.ocpp.v201.availability import Availability, StatusNotifications
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.firmware import KIND, Firmware
from everpy.ocpp.values import rfc3339

from .fakes import Fixture, block_context

ALLOW_NEW = "ChargingStation.AllowNewSessionsPendingFirmwareUpdate"


class Events:
    def __init__(self) -> None:
        self.recorded: list[str] = []

    def record(self, kind: str, info: str = "", critical: bool | None = None) -> None:
        self.recorded.append(kind)


class L:
    def __init__(self, tmp_path: Path, variables: dict[str, str] | None = None, fixture: Fixture | None = None) -> None:
        self.f = block_context(tmp_path, [1, 2], variables, None if fixture is None else fixture.store)
        self.events = Events()
        self.status = StatusNotifications(self.f.ctx, self.f.evses)
        self.availability = Availability(self.f.ctx, self.f.evses, self.status)
        self.firmware = Firmware(self.f.ctx, self.f.evses, self.events, self.availability, self.status)

    async def update(self, request_id: int = 7, **firmware: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"requestId": request_id, "retries": 2, "retryInterval": 5, "firmware": {
            "location": "https://fw.example/fw.bin", "retrieveDateTime": rfc3339(self.f.clock.time() - 7200),
            "signingCertificate": "-----BEGIN CERTIFICATE-----x", "signature": "c2ln", **firmware}}
        payload["firmware"] = {k: v for k, v in payload["firmware"].items() if v is not None}
        DIALECT.check("UpdateFirmware", payload, response=False)
        reply: Reply = await self.firmware.on_update_firmware(payload)
        DIALECT.check("UpdateFirmware", reply.payload, response=True)
        if reply.after is not None:
            await reply.after()
        await self.f.ctx.jobs.wait_idle()
        return reply.payload

    async def system(self, *statuses: str, request_id: int = 7) -> None:
        for status in statuses:
            await self.firmware.on_firmware_update_status({"firmware_update_status": status, "request_id": request_id})
            await self.f.ctx.jobs.wait_idle()

    def notified(self) -> list[tuple[str, int | None]]:
        found = self.f.sender.of("FirmwareStatusNotification")
        for payload in found:
            DIALECT.check("FirmwareStatusNotification", payload, response=False)
        return [(p["status"], p.get("requestId")) for p in found]

    def connector_statuses(self) -> list[tuple[int, str]]:
        return [(p["evseId"], p["connectorStatus"]) for p in self.f.sender.of("StatusNotification")]

    def permissions(self) -> int:
        return len(self.f.station.called("allow_firmware_installation"))

    async def trigger(self) -> dict[str, Any]:
        mark = len(self.f.sender.sent)
        assert await self.firmware.trigger_status() == "Accepted"
        await self.f.ctx.jobs.wait_idle()
        (payload,) = [p for a, p in self.f.sender.sent[mark:] if a == "FirmwareStatusNotification"]
        DIALECT.check("FirmwareStatusNotification", payload, response=False)
        return payload


async def test_a_signed_update_is_downloaded_verified_and_installed(tmp_path):
    """TC_L_01_CS: Accepted; the system gets the location, times, certificate, signature and retries + 1
    attempts; every status goes out with the requestId; once verified (no transaction) the EVSEs are set
    Unavailable and the installation allowed; Installed frees them again; a trigger then says Idle."""
    block = L(tmp_path)
    assert await block.update() == {"status": "Accepted"}
    (request,), = block.f.station.called("update_firmware")
    assert (request["request_id"], request["location"], request["retries"], request["retry_interval_s"]) == (
        7, "https://fw.example/fw.bin", 3, 5)
    assert request["signature"] == "c2ln" and request["signing_certificate"].startswith("-----BEGIN")
    await block.system("Downloading", "Downloaded")
    assert await block.trigger() == {"status": "Downloaded", "requestId": 7}
    await block.system("SignatureVerified")
    assert block.permissions() == 1
    assert block.connector_statuses() == [(1, "Unavailable"), (2, "Unavailable")]
    assert [args for args in block.f.station.called("set_available")] == [(1, False), (2, False)]
    await block.system("Installing", "Installed")
    assert block.notified() == [("Downloading", 7), ("Downloaded", 7), ("Downloaded", 7), ("SignatureVerified", 7),
                                ("Installing", 7), ("Installed", 7)]
    assert block.connector_statuses()[2:] == [(1, "Available"), (2, "Available")]
    assert block.f.station.called("set_available")[2:] == [(1, True), (2, True)]
    assert await block.trigger() == {"status": "Idle"}
    assert block.permissions() == 1


async def test_statuses_published_before_the_answer_follow_it(tmp_path):
    """L01: the FirmwareStatusNotifications the system publishes while UpdateFirmware is answered go out after
    the answer (the CSMS would otherwise hear of a request it has not had the answer to)."""
    block = L(tmp_path)

    async def answer(request: dict[str, Any]) -> str:
        await block.firmware.on_firmware_update_status({"firmware_update_status": "Downloading", "request_id": 7})
        assert block.notified() == []
        return "Accepted"

    block.f.station.update_firmware = answer
    assert await block.update() == {"status": "Accepted"}
    assert block.notified() == [("Downloading", 7)]


async def test_an_install_time_in_the_future_holds_the_permission(tmp_path):
    """TC_L_02_CS TC_L_03_CS: DownloadScheduled and InstallScheduled go out; the installation is allowed only
    at the installDateTime."""
    block = L(tmp_path)
    assert await block.update(installDateTime=rfc3339(block.f.clock.time() + 60))
    await block.system("DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")
    await block.f.clock.advance(50)
    assert block.permissions() == 0
    await block.f.clock.advance(15)
    await block.f.ctx.jobs.wait_idle()
    assert block.permissions() == 1
    assert ("DownloadScheduled", 7) in block.notified() and ("InstallScheduled", 7) in block.notified()


async def test_a_running_transaction_holds_the_installation(tmp_path):
    """TC_L_13_CS TC_L_15_CS: AllowNewSessionsPendingFirmwareUpdate false: while EVSE 1 charges, the idle EVSE
    2 is set Unavailable and nothing is installed; when the transaction ends the installation is allowed and
    EVSE 1 becomes Unavailable too."""
    block = L(tmp_path)
    block.f.evses[1].transaction_id = "tx-1"
    await block.update()
    await block.system("Downloading", "Downloaded", "SignatureVerified")
    assert block.permissions() == 0
    assert block.connector_statuses() == [(2, "Unavailable")]
    block.f.evses[1].transaction_id = None
    block.firmware.transaction_ended(1)
    await block.f.ctx.jobs.wait_idle()
    assert block.permissions() == 1
    assert block.connector_statuses() == [(2, "Unavailable"), (1, "Unavailable")]


async def test_new_sessions_may_start_while_the_update_waits_when_allowed(tmp_path):
    """TC_L_12_CS TC_L_14_CS: AllowNewSessionsPendingFirmwareUpdate true: the idle EVSE stays Available; a
    transaction that starts meanwhile holds the installation back too; it goes ahead when all ended."""
    block = L(tmp_path, {ALLOW_NEW: "true"})
    block.f.evses[1].transaction_id = "tx-1"
    await block.update()
    await block.system("Downloading", "Downloaded")
    assert block.connector_statuses() == []
    block.f.evses[2].transaction_id = "tx-2"
    block.f.evses[1].transaction_id = None
    block.firmware.transaction_ended(1)
    await block.f.ctx.jobs.wait_idle()
    assert block.permissions() == 0
    block.f.evses[2].transaction_id = None
    block.firmware.transaction_ended(2)
    await block.f.ctx.jobs.wait_idle()
    assert block.permissions() == 1


async def test_an_unsigned_update_is_rejected(tmp_path):
    """TC_L_18_CS: no signingCertificate and signature: Rejected, nothing asked of the system."""
    block = L(tmp_path)
    answer = await block.update(signingCertificate=None, signature=None)
    assert answer["status"] == "Rejected"
    assert block.f.station.called("update_firmware") == []


async def test_an_untrusted_certificate_and_a_bad_signature_are_security_events(tmp_path):
    """TC_L_05_CS TC_L_06_CS: the system's InvalidCertificate is the answer, with the security event
    InvalidFirmwareSigningCertificate; an InvalidSignature status goes out and records InvalidFirmwareSignature,
    and nothing is installed."""
    block = L(tmp_path)
    block.f.station.answers["update_firmware"] = "InvalidCertificate"
    assert await block.update() == {"status": "InvalidCertificate"}
    assert block.events.recorded == ["InvalidFirmwareSigningCertificate"]
    block.f.station.answers["update_firmware"] = "Accepted"
    assert await block.update(request_id=8) == {"status": "Accepted"}
    await block.system("Downloading", "Downloaded", request_id=8)  # EVSEs held for the installation
    await block.system("InvalidSignature", request_id=8)
    assert block.events.recorded[-1] == "InvalidFirmwareSignature"
    assert block.notified()[-1] == ("InvalidSignature", 8)
    assert block.connector_statuses()[-2:] == [(1, "Available"), (2, "Available")]


async def test_failures_are_reported_and_end_the_update(tmp_path):
    """TC_L_07_CS TC_L_08_CS: DownloadFailed and InstallVerificationFailed / InstallationFailed go out with the
    requestId; a trigger then says Idle."""
    block = L(tmp_path)
    await block.update()
    await block.system("Downloading", "DownloadFailed")
    assert await block.trigger() == {"status": "Idle"}
    await block.update(request_id=9)
    await block.system("Downloading", "Downloaded", "InstallVerificationFailed", request_id=9)
    await block.update(request_id=10)
    await block.system("Downloading", "Downloaded", "Installing", "InstallationFailed", request_id=10)
    assert [s for s in block.notified() if s[0].endswith("Failed")] == [
        ("DownloadFailed", 7), ("InstallVerificationFailed", 9), ("InstallationFailed", 10)]


async def test_a_new_update_cancels_the_running_one(tmp_path):
    """TC_L_10_CS TC_L_11_CS: the system's AcceptedCanceled (an update that has not started installing) and
    Rejected (one that is installing) are the answers; a cancelled update's held EVSEs are freed."""
    block = L(tmp_path)
    await block.update()
    await block.system("Downloading", "Downloaded")
    block.f.station.answers["update_firmware"] = "AcceptedCanceled"
    assert await block.update(request_id=8) == {"status": "AcceptedCanceled"}
    assert block.connector_statuses()[-2:] == [(1, "Available"), (2, "Available")]
    await block.system("Downloading", "Downloaded", "Installing", request_id=8)
    block.f.station.answers["update_firmware"] = "Rejected"
    assert (await block.update(request_id=9))["status"] == "Rejected"
    assert await block.trigger() == {"status": "Installing", "requestId": 8}


async def test_hostile_values_are_refused(tmp_path):
    """Negative retries or retryInterval: Rejected; a status the system should not publish is ignored."""
    block = L(tmp_path)
    assert (await block.update_with(retries=-1))["status"] == "Rejected"
    assert (await block.update_with(retryInterval=-5))["status"] == "Rejected"
    await block.firmware.on_firmware_update_status({"firmware_update_status": "Exploded", "request_id": 1})
    await block.firmware.on_firmware_update_status({"firmware_update_status": "Installed", "request_id": "x"})
    assert block.notified() == []


async def _update_with(self: L, **top: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"requestId": 3, "firmware": {
        "location": "https://fw.example/fw.bin", "retrieveDateTime": rfc3339(self.f.clock.time()),
        "signingCertificate": "c", "signature": "s"}, **top}
    return (await self.firmware.on_update_firmware(payload)).payload


L.update_with = _update_with  # type: ignore[attr-defined]


async def test_the_update_survives_a_restart_and_bad_records_are_quarantined(tmp_path):
    """The latest update and its status are persisted: after a restart a trigger reports it, and an update
    that waited to be installed waits again (restore); a record that does not fit is quarantined."""
    block = L(tmp_path)
    block.f.evses[1].transaction_id = "tx-1"
    await block.update()
    await block.system("Downloading", "Downloaded")
    again = L(tmp_path, fixture=block.f)
    assert await again.trigger() == {"status": "Downloaded", "requestId": 7}
    await again.firmware.restore()
    await again.f.ctx.jobs.wait_idle()
    assert again.permissions() == 1  # the new fixture has no transaction running
    block.f.store.put_record(KIND, 0, {"request_id": "seven", "status": "Downloaded"})
    broken = L(tmp_path, fixture=block.f)
    assert await broken.trigger() == {"status": "Idle"}
    assert block.f.store.records(KIND) == {}
    assert any(row.kind == "record" for row in block.f.store.quarantined())


async def test_a_trigger_reports_the_download_in_progress(tmp_path):
    """TC_F_19_CS TC_F_18_CS: TriggerMessage FirmwareStatusNotification while downloading: Downloading with the
    requestId; with no update at all: Idle without one."""
    block = L(tmp_path)
    assert await block.trigger() == {"status": "Idle"}
    await block.update(request_id=12)
    await block.system("Downloading", request_id=12)
    assert await block.trigger() == {"status": "Downloading", "requestId": 12}
