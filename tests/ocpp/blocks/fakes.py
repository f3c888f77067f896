"""A fake Station and a fake sender, for testing one functional block alone (no bus, no websocket).

The store is a real OcppStore on a temporary file, with the 1.6 tables of a Repository16 (what the
blocks of transactions and id tags are given besides the context); time is a FakeClock. FakeStation records every call
the block makes of the charger and answers from ``answers`` (default True/None).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from everpy.core.clock import FakeClock
from everpy.ocpp.blocks import BlockContext, Jobs
from everpy.ocpp.rpc import OcppCallError
from everpy.ocpp.store import OcppStore
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.repository import Repository16
from everpy.ocpp.values import EvseRef, IdToken, ResetRequest

LOG = logging.getLogger("everpy.test.blocks")


class FakeStation:
    def __init__(self, evse_ids: list[int] | None = None) -> None:
        self.ids = evse_ids or [1]
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.published: list[tuple[str, Any]] = []
        self.errors: list[tuple[str, str]] = []
        self.answers: dict[str, Any] = {}
        self.locks = True
        self.evse_reset = True  # can_reset_evse
        self.sessions: dict[int, dict[str, Any] | None] = {}
        self.meter: dict[int, dict[str, Any] | None] = {}

    def _record(self, name: str, *args: Any, default: Any = True) -> Any:
        self.calls.append((name, args))
        return self.answers.get(name, default)

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    def evse_ids(self) -> list[int]:
        return list(self.ids)

    async def set_available(self, evse_id: int, available: bool) -> bool:
        return bool(self._record("set_available", evse_id, available))

    async def stop_transaction(self, evse_id: int, reason: str) -> bool:
        return bool(self._record("stop_transaction", evse_id, reason))

    async def pause_charging(self, evse_id: int) -> bool:
        return bool(self._record("pause_charging", evse_id))

    async def has_lock(self, evse: EvseRef) -> bool:
        return self.locks

    async def unlock(self, evse: EvseRef) -> bool:
        return bool(self._record("unlock", evse))

    async def reserve(self, evse_id: int, reservation_id: int) -> bool:
        return bool(self._record("reserve", evse_id, reservation_id))

    async def cancel_reservation(self, evse_id: int) -> None:
        self._record("cancel_reservation", evse_id)

    async def session_info(self, evse_id: int) -> dict[str, Any] | None:
        return self.sessions.get(evse_id)

    def provide_token(self, token: IdToken, evse_ids: list[int] | None, prevalidated: bool) -> None:
        self._record("provide_token", token, evse_ids, prevalidated)

    def validation_changed(self, evse_id: int, result: dict[str, Any]) -> None:
        self._record("validation_changed", evse_id, result)

    async def set_connection_timeout(self, seconds: int) -> None:
        self._record("set_connection_timeout", seconds)

    async def apply_limits(self, evse_id: int, schedule: list[dict[str, Any]]) -> None:
        self._record("apply_limits", evse_id, schedule)

    async def read_meter(self, evse_id: int) -> dict[str, Any] | None:
        return self.meter.get(evse_id)

    async def set_system_time(self, timestamp: str) -> bool:
        return bool(self._record("set_system_time", timestamp))

    async def reset(self, request: ResetRequest) -> None:
        self._record("reset", request)

    def can_reset_evse(self) -> bool:
        return self.evse_reset


    async def update_firmware(self, request: dict[str, Any]) -> str:
        return str(self._record("update_firmware", request, default="Accepted"))

    async def allow_firmware_installation(self) -> None:
        self._record("allow_firmware_installation")

    async def upload_logs(self, request: dict[str, Any]) -> tuple[str, str | None]:
        return tuple(self._record("upload_logs", request, default=("Accepted", "log.tar")))  # type: ignore[return-value]

    async def data_transfer(self, vendor_id: str, message_id: str | None, data: str | None) -> dict[str, Any]:
        return dict(self._record("data_transfer", vendor_id, message_id, data, default={"status": "Accepted"}))

    def publish(self, var: str, value: Any) -> None:
        self.published.append((var, value))

    def raise_error(self, kind: str, message: str) -> None:
        self.errors.append((kind, message))


class FakeSender:
    """Records what a block sends; ``answers[action]`` is the CALLRESULT (or an OcppCallError to raise)."""

    def __init__(self, store: OcppStore) -> None:
        self.store = store
        self.online = True
        self.accepted = True
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.reconnects = 0
        self.boot_requests = 0

    def of(self, action: str) -> list[dict[str, Any]]:
        return [payload for a, payload in self.sent if a == action]

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.sent.append((action, payload))
        answer = self.answers.get(action, {})
        if isinstance(answer, OcppCallError):
            raise answer
        return dict(answer)

    async def call_or_log(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        return await self.call(action, payload) if self.online else None

    def queue(self, action: str, payload: dict[str, Any], tx_key: str | None) -> None:
        self.store.enqueue(action, payload, f"uid-{len(self.sent)}", tx_key)
        self.sent.append((action, payload))

    async def wait_queue_empty(self, timeout: float) -> bool:
        return True

    def request_reconnect(self) -> None:
        self.reconnects += 1

    def request_boot_notification(self) -> bool:
        self.boot_requests += 1
        return not self.accepted


def block_context(tmp_path: Path, evse_ids: list[int] | None = None, keys: dict[str, str] | None = None,
                  ) -> tuple[BlockContext[Configuration], FakeStation, FakeSender, FakeClock, Repository16]:
    store = OcppStore(tmp_path / "ocpp.db", log=LOG)
    repository = Repository16(store)
    station = FakeStation(evse_ids)
    sender = FakeSender(store)
    clock = FakeClock()
    config = Configuration(store, keys or {}, LOG)
    return BlockContext(sender, config, store, station, clock, LOG, Jobs(LOG)), station, sender, clock, repository
