"""Auth: turns presented tokens into authorizations for EVSEs.

One token at a time per id goes through: Processing -> (stop by same token | validate -> master pass /
parent stop | pick an EVSE -> authorize_response -> wait for TransactionStarted). Every step is
published on `token_validation_status`. What the module knows about each EVSE comes only from the
EVSE's session events (see EvseSlot).
"""

from __future__ import annotations

import asyncio
import itertools
from functools import partial
from typing import Any

from everpy.core.clock import TimerHandle
from everpy.core.exceptions import CommandError
from everpy.core.module import Module, Remote, command

from .selection import (
    EvseSlot,
    Selection,
    SelectionAlgorithm,
    Token,
    allowed_evse_ids,
    choose_evse,
    id_token_value,
    token_value,
)

INOPERATIVE = "evse_manager/Inoperative"  # raised by an EVSE while a fault stops it from charging


class Auth(Module):
    async def init(self) -> None:
        self.connection_timeout: float = self.config["connection_timeout"]
        self.prevalidated_sources = {part.strip() for part in self.config["prevalidated_token_sources"].split(",")
                                     if part.strip()}
        self.master_pass_group_id: str | None = self.config["master_pass_group_id"].casefold() or None
        self.algorithm = SelectionAlgorithm(self.config["selection_algorithm"])
        self.prefer_authorization = self.config["prioritize_authorization_over_stopping_transaction"]
        self.evses: list[Remote] = self.connections("evse_manager")
        self.slots = [EvseSlot(index=i, evse_id=i + 1) for i in range(len(self.evses))]
        self._plug_counter = itertools.count(1)
        self._change_waiters: set[asyncio.Event] = set()  # tokens waiting for a car to plug in
        self._in_progress: set[str] = set()
        self._auth_timers: dict[int, TimerHandle] = {}
        self._assign_lock = asyncio.Lock()  # one token at a time picks and claims an EVSE

        for provider in self.connections("token_provider"):
            provider.subscribe("provided_token", partial(self._on_provided_token, provider.module_id))
        for validator in self.connections("token_validator"):
            validator.subscribe("validate_result_update", self._on_validate_result_update)
        for index, evse in enumerate(self.evses):
            evse.subscribe("session_event", partial(self._on_session_event, index))
            if not self.config["ignore_connector_faults"]:
                evse.subscribe_error(partial(self._on_inoperative, index), INOPERATIVE)

    async def ready(self) -> None:
        # Commands are served only after global ready, so the EVSE ids are asked for here.
        await asyncio.gather(*(self._learn_evse_id(slot) for slot in self.slots))

    async def _learn_evse_id(self, slot: EvseSlot) -> None:
        try:
            evse = await self.evses[slot.index].call("get_evse", timeout=10)
        except CommandError as exc:
            self.log.warning("get_evse of %s failed (%s); using EVSE id %d", self.evses[slot.index], exc, slot.evse_id)
            return
        slot.evse_id = int(evse["id"])

    # -- auth interface --------------------------------------------------------------------------
    @command("main", "set_connection_timeout")
    def set_connection_timeout(self, connection_timeout: int) -> None:
        self.connection_timeout = connection_timeout

    @command("main", "set_master_pass_group_id")
    def set_master_pass_group_id(self, master_pass_group_id: str) -> None:
        self.master_pass_group_id = master_pass_group_id.casefold() or None

    @command("main", "withdraw_authorization")
    async def withdraw_authorization(self, request: dict[str, Any]) -> str:
        evse_id = request.get("evse_id")
        wanted = id_token_value(request.get("id_token"))
        slots = self.slots
        if evse_id is not None:
            slots = [slot for slot in self.slots if slot.evse_id == evse_id]
            if not slots:
                return "EvseNotFound"
        matching = [
            slot
            for slot in slots
            if slot.authorized_token is not None and (wanted is None or token_value(slot.authorized_token) == wanted)
        ]
        if not matching:
            return "AuthorizationNotFound"
        for slot in matching:
            await self._withdraw(slot, "Withdrawn")
        return "Accepted"

    # -- tokens ------------------------------------------------------------------------------------
    def _on_provided_token(self, source: str, token: Any) -> None:
        problem = _token_problem(token)
        if problem:
            self.log.error("ignoring malformed token from a provider: %s (%r)", problem, token)
            return
        if token.get("prevalidated") and source not in self.prevalidated_sources:
            self.log.warning("token %s from %s claims to be prevalidated, but %s is not among "
                             "prevalidated_token_sources; validating it", token_value(token), source, source)
            token = {**token, "prevalidated": False}
        value = token_value(token)
        assert value is not None
        if value in self._in_progress:
            self.log.info("token %s is already being handled; ignoring the repeat", value)
            return
        self._in_progress.add(value)
        self.spawn(self._handle_token(token), name=f"token {value}")

    async def _handle_token(self, token: Token) -> None:
        try:
            await self._process(token)
        finally:
            self._in_progress.discard(token_value(token) or "")

    async def _process(self, token: Token) -> None:
        self._publish(token, "Processing")
        running = self._slot_with_transaction_of(token)
        if running is not None and token["authorization_type"] != "OCPP":
            await self._stop_transaction(running, "Local", token)
            self._publish(token, "UsedToStop", evse_id=running.evse_id)
            return
        if not self._token_can_do_anything(token):
            self.log.info("token %s rejected: no EVSE available", token_value(token))
            self._publish(token, "Rejected")
            return

        results = await self._validate(token)
        accepted = next((r for r in results if r.get("authorization_status") == "Accepted"), None)
        if accepted is None:
            self._publish(token, "Rejected", validation_results=results)
            return
        parent = id_token_value(accepted.get("parent_id_token")) or id_token_value(token.get("parent_id_token"))

        if self.master_pass_group_id is not None and parent == self.master_pass_group_id:
            await self._use_master_pass(token, results)
            return
        group_slot = self._slot_with_transaction_of_group(parent)
        if group_slot is not None and not (self.prefer_authorization and self._any_slot_free_for(token, accepted)):
            await self._stop_transaction(group_slot, "Local", token)
            self._publish(token, "UsedToStop", evse_id=group_slot.evse_id, validation_results=results)
            return
        await self._assign(token, accepted, parent, results)

    def _token_can_do_anything(self, token: Token) -> bool:
        """Worth validating: an EVSE could take it, or a transaction runs that it may stop (as a master
        pass or a member of the transaction's group). Only the validation result tells the token's
        parent id token (e.g. OCPP's parentIdTag), so a running transaction is always reason enough."""
        return self._any_slot_free_for(token, None) or any(slot.transaction_token is not None for slot in self.slots)

    def _any_slot_free_for(self, token: Token, validation_result: dict[str, Any] | None) -> bool:
        allowed = allowed_evse_ids(token, validation_result)
        return any(slot.free and (allowed is None or slot.evse_id in allowed) for slot in self.slots)

    async def _validate(self, token: Token) -> list[dict[str, Any]]:
        """Ask each validator in turn until one accepts; a failing validator counts as Unknown."""
        if token.get("prevalidated"):
            return [{"authorization_status": "Accepted"}]
        results: list[dict[str, Any]] = []
        for validator in self.connections("token_validator"):
            try:
                result = await validator.call("validate_token", provided_token=token)
            except CommandError as exc:
                self.log.warning("validator %s failed for %s: %s", validator, token_value(token), exc)
                result = {"authorization_status": "Unknown"}
            if not isinstance(result, dict) or "authorization_status" not in result:
                self.log.error("validator %s gave a malformed result %r; counted as Unknown", validator, result)
                result = {"authorization_status": "Unknown"}
            results.append(result)
            if result["authorization_status"] == "Accepted":
                break
        return results

    async def _use_master_pass(self, token: Token, results: list[dict[str, Any]]) -> None:
        """A master pass stops every transaction and never starts one."""
        running = [slot for slot in self.slots if slot.transaction_token is not None]
        for slot in running:
            await self._stop_transaction(slot, "MasterPass", token)
        status = "UsedToStop" if running else "Rejected"
        self._publish(token, status, validation_results=results)

    async def _assign(self, token: Token, accepted: dict[str, Any], parent: str | None, results: list[Any]) -> None:
        allowed = allowed_evse_ids(token, accepted)
        reservation_id = accepted.get("reservation_id")
        deadline = self.clock.monotonic() + self.connection_timeout
        while True:
            wake = asyncio.Event()  # set by any slot change, or by the deadline
            self._change_waiters.add(wake)
            try:
                async with self._assign_lock:
                    choice = choose_evse(self.slots, self.algorithm, allowed, reservation_id, self._plugged_after())
                    if isinstance(choice, EvseSlot):
                        await self._authorize(choice, token, accepted, parent, results)
                        return
                if choice is Selection.NONE_FREE:
                    self._publish(token, "Rejected", validation_results=results)
                    return
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    self.log.info("no car plugged in within %ss for %s", self.connection_timeout, token_value(token))
                    self._publish(token, "TimedOut", validation_results=results)
                    return
                timer = self.clock.call_later(remaining, wake.set)
                await wake.wait()
                timer.cancel()
            finally:
                self._change_waiters.discard(wake)

    def _plugged_after(self) -> float | None:
        """With several EVSEs and plug_in_timeout_enabled, cars older than the timeout are not matched."""
        if self.config["plug_in_timeout_enabled"] and len(self.slots) > 1:
            return self.clock.monotonic() - self.connection_timeout
        return None

    async def _authorize(
        self, slot: EvseSlot, token: Token, accepted: dict[str, Any], parent: str | None, results: list[Any]
    ) -> None:
        """Claim the slot and hand the token to its EVSE.

        Accepted is published before the call: a plugged-in car may start its transaction (and so
        UsedToStart be published) before authorize_response returns.
        """
        slot.authorized_token = token
        slot.authorized_parent = parent
        self._publish(token, "Accepted", evse_id=slot.evse_id, validation_results=results)
        self._auth_timers[slot.index] = self.clock.call_later(
            self.connection_timeout, lambda: self.spawn(self._on_auth_timeout(slot, token))
        )
        try:
            await self.evses[slot.index].call("authorize_response", provided_token=token, validation_result=accepted)
        except CommandError as exc:
            self.log.error("EVSE %d: authorize_response failed: %s", slot.evse_id, exc)
            self._clear_authorization(slot)
            self._publish(token, "Rejected", evse_id=slot.evse_id)

    async def _on_auth_timeout(self, slot: EvseSlot, token: Token) -> None:
        if slot.authorized_token is token:
            self.log.info("EVSE %d: no transaction within %ss; withdrawing", slot.evse_id, self.connection_timeout)
            await self._withdraw(slot, "TimedOut")

    async def _withdraw(self, slot: EvseSlot, status: str) -> None:
        token = slot.authorized_token
        self._clear_authorization(slot)
        try:
            await self.evses[slot.index].call("withdraw_authorization")
        except CommandError as exc:
            self.log.warning("EVSE %d: withdraw_authorization failed: %s", slot.evse_id, exc)
        if token is not None:
            self._publish(token, status, evse_id=slot.evse_id)

    def _clear_authorization(self, slot: EvseSlot) -> None:
        slot.authorized_token = None
        slot.authorized_parent = None
        timer = self._auth_timers.pop(slot.index, None)
        if timer is not None:
            timer.cancel()
        self._notify_change()

    async def _stop_transaction(self, slot: EvseSlot, reason: str, token: Token) -> None:
        try:
            await self.evses[slot.index].call("stop_transaction", request={"reason": reason, "id_tag": token})
        except CommandError as exc:
            self.log.error("EVSE %d: stop_transaction failed: %s", slot.evse_id, exc)

    def _slot_with_transaction_of(self, token: Token) -> EvseSlot | None:
        value = token_value(token)
        return next((s for s in self.slots if token_value(s.transaction_token) == value), None)

    def _slot_with_transaction_of_group(self, parent: str | None) -> EvseSlot | None:
        """The EVSE whose running transaction's token has this parent id token. A token without a
        parent belongs to no group, and a transaction whose parent is unknown to none."""
        if parent is None:
            return None
        return next((s for s in self.slots if s.transaction_token is not None and s.transaction_parent == parent), None)

    # -- what the EVSEs tell -------------------------------------------------------------------
    def _on_session_event(self, index: int, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            self.log.error("ignoring malformed session_event from %s: %r", self.evses[index], event)
            return
        slot = self.slots[index]
        name = event["event"]
        if name == "SessionStarted":
            slot.session_active = True
            if (event.get("session_started") or {}).get("reason") == "EVConnected":
                self._car_waits(slot)
        elif name == "AuthRequired" and not slot.waiting_for_auth:
            self._car_waits(slot)
        elif name == "TransactionStarted":
            slot.waiting_for_auth = False
            self._transaction_started(slot, (event.get("transaction_started") or {}).get("id_tag"))
        elif name == "TransactionFinished":
            slot.transaction_token = None
            slot.transaction_parent = None
        elif name in ("SessionFinished", "PluginTimeout", "Deauthorized"):
            if name == "SessionFinished":
                slot.session_active = slot.waiting_for_auth = False
            if slot.authorized_token is not None:
                self.spawn(self._withdraw(slot, "TimedOut" if name == "PluginTimeout" else "Withdrawn"))
        elif name in ("Enabled", "Disabled"):
            slot.enabled = name == "Enabled"
        elif name == "ReservationStart":
            slot.reserved = True
            slot.reservation_id = _reservation_id_of(event)
        elif name == "ReservationEnd":
            slot.reserved = False
            slot.reservation_id = None
        self._notify_change()

    def _on_inoperative(self, index: int, error: dict[str, Any]) -> None:
        slot = self.slots[index]
        slot.faulted = error.get("state") == "Active"
        self.log.info("EVSE %d %s", slot.evse_id, "is inoperative" if slot.faulted else "works again")
        self._notify_change()

    def _car_waits(self, slot: EvseSlot) -> None:
        slot.session_active = slot.waiting_for_auth = True
        slot.plug_order = next(self._plug_counter)
        slot.plugged_at = self.clock.monotonic()

    def _transaction_started(self, slot: EvseSlot, id_tag: Token | None) -> None:
        granted = slot.authorized_token
        if granted is not None and token_value(granted) == token_value(id_tag):
            slot.transaction_parent = slot.authorized_parent
            self._clear_authorization(slot)
            self._publish(granted, "UsedToStart", evse_id=slot.evse_id)
        else:
            slot.transaction_parent = id_token_value((id_tag or {}).get("parent_id_token"))
        slot.transaction_token = id_tag if id_tag is not None else granted

    def _on_validate_result_update(self, update: Any) -> None:
        """A validator changed its mind about a token in use: tell the EVSE holding it."""
        if not isinstance(update, dict) or "validation_result" not in update:
            self.log.error("ignoring malformed validate_result_update %r", update)
            return
        slot = next((s for s in self.slots if s.evse_id == update.get("connector_id")), None)
        token = None if slot is None else (slot.transaction_token or slot.authorized_token)
        if slot is None or token is None:
            self.log.info("validate_result_update for EVSE %s without a token in use", update.get("connector_id"))
            return
        parent = id_token_value(update["validation_result"].get("parent_id_token"))
        if parent and slot.transaction_token is not None:
            slot.transaction_parent = parent  # e.g. the parentIdTag of the CSMS's answer to the start
        self.spawn(self._forward_result(slot, token, update["validation_result"]))

    async def _forward_result(self, slot: EvseSlot, token: Token, result: dict[str, Any]) -> None:
        try:
            await self.evses[slot.index].call("authorize_response", provided_token=token, validation_result=result)
        except CommandError as exc:
            self.log.warning("EVSE %d: forwarding updated validation result failed: %s", slot.evse_id, exc)

    def _notify_change(self) -> None:
        for wake in self._change_waiters:
            wake.set()

    def _publish(self, token: Token, status: str, evse_id: int | None = None, validation_results: Any = None) -> None:
        message: dict[str, Any] = {"token": token, "status": status}
        if evse_id is not None:
            message["evse_id"] = evse_id
        if validation_results:
            message["validation_results"] = validation_results
        self.log.info("token %s: %s%s", token_value(token), status, f" (EVSE {evse_id})" if evse_id else "")
        self.publish("main", "token_validation_status", message)


def _token_problem(token: Any) -> str | None:
    if not isinstance(token, dict):
        return "not an object"
    id_token = token.get("id_token")
    if not isinstance(id_token, dict) or not isinstance(id_token.get("value"), str) or not id_token["value"]:
        return "id_token.value missing or empty"
    if not isinstance(token.get("authorization_type"), str):
        return "authorization_type missing"
    return None


def _reservation_id_of(event: dict[str, Any]) -> int | None:
    """ReservationStart may name its reservation (top level or a reservation_start block)."""
    for source in (event.get("reservation_start") or {}, event):
        value = source.get("reservation_id")
        if isinstance(value, int):
            return value
    return None
