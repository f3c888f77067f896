"""Stand-in EVSE for the OCPP tests (temporary, replaced by the real EvseManager once it lands)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from everpy import Module


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OcppEvseStandIn(Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.plugged = False
        self.enabled = True
        self.session: str | None = None
        self.transaction = False
        self.energy_wh = 1000.0
        self.reserved: int | None = None
        self._changed = asyncio.Event()
        self.set_fallback_handler("evse", self._command)

    # -- driven by the test ----------------------------------------------------------------------------
    def reading(self) -> dict[str, Any]:
        return {"timestamp": _now(), "energy_Wh_import": {"total": self.energy_wh},
                "power_W": {"total": 11000.0 if self.transaction else 0.0},
                "current_A": {"L1": 16.0, "L2": 16.0, "L3": 16.0}, "voltage_V": {"L1": 230.0, "L2": 230.0, "L3": 230.0}}

    def set_energy(self, wh: float) -> None:
        self.energy_wh = wh
        self.publish("evse", "powermeter", self.reading())

    def event(self, kind: str, **details: Any) -> None:
        self.publish("evse", "session_event", {"uuid": self.session or "", "event": kind, "timestamp": _now(),
                                               "connector_id": 1, **details})

    def plug_in(self) -> None:
        self.plugged = True
        self.session = str(uuid.uuid4())
        self.event("SessionStarted", session_started={"reason": "EVConnected"})
        self.event("AuthRequired")

    def unplug(self) -> None:
        self.plugged = False
        if self.transaction:
            self._finish("EVDisconnected")
        self.event("SessionFinished")
        self.session = None

    def swipe(self, id_tag: str) -> None:
        self.publish("rfid", "provided_token", {"id_token": {"value": id_tag, "type": "ISO14443"},
                                                "authorization_type": "RFID"})

    def raise_fault(self, name: str) -> None:
        self.raise_error("evse", f"evse_manager/{name}", message=f"{name} injected")

    def clear_fault(self, name: str) -> None:
        self.clear_error("evse", f"evse_manager/{name}")

    def _start(self, token: dict[str, Any]) -> None:
        self.transaction = True
        self.event("TransactionStarted", transaction_started={"id_tag": token, "meter_value": self.reading()})
        self.event("ChargingStarted")

    def _finish(self, reason: str) -> None:
        self.transaction = False
        self.event("StoppingCharging")
        self.event("TransactionFinished", transaction_finished={"reason": reason, "meter_value": self.reading()})

    # -- evse_manager commands ---------------------------------------------------------------------------
    def _command(self, cmd: str, args: dict[str, Any]) -> Any:
        self.calls.append((cmd, args))
        self._changed.set()
        if cmd == "get_evse":
            return {"id": self.config["evse_id"], "connectors": [{"id": 1}]}
        if cmd == "authorize_response":
            accepted = args["validation_result"]["authorization_status"] == "Accepted"
            if accepted and self.plugged and not self.transaction:
                self._start(args["provided_token"])
            return None
        if cmd == "stop_transaction":
            if not self.transaction:
                return False
            self._finish(args["request"]["reason"])
            return True
        if cmd == "enable_disable":
            self.enabled = args["cmd_source"]["enable_state"] != "Disable"
            self.event("Enabled" if self.enabled else "Disabled")
            return self.enabled
        if cmd == "force_unlock":
            return True
        if cmd == "reserve":
            if self.session is not None or self.reserved is not None:
                return False
            self.reserved = args["reservation_id"]
            self.event("ReservationStart")
            return True
        if cmd == "cancel_reservation":
            if self.reserved is not None:
                self.event("ReservationEnd", reservation_end={"reservation_id": self.reserved, "reason": "Cancelled"})
            self.reserved = None
            return None
        return True

    async def wait_for_call(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for cmd, args in self.calls:
                    if cmd == name:
                        return args
                self._changed.clear()
                await self._changed.wait()
