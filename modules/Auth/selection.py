"""What Auth knows about each EVSE, and the choice of the EVSE for an accepted token.

Kept free of bus and time so the decision rules can be read and tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

Token = dict[str, Any]  # a ProvidedIdToken (types/authorization.yaml)


def token_value(token: Token | None) -> str | None:
    """The id of a ProvidedIdToken, folded to one case: id tokens compare case-insensitively."""
    if token is None:
        return None
    return str(token["id_token"]["value"]).casefold()


def id_token_value(id_token: dict[str, Any] | None) -> str | None:
    """The id of a plain IdToken (e.g. a parent id token), folded to one case."""
    if not id_token:
        return None
    return str(id_token.get("value", "")).casefold() or None


@dataclass
class EvseSlot:
    """Auth's view of one EVSE, kept up to date from its session events."""

    index: int  # position in the evse_manager connection list
    evse_id: int
    enabled: bool = True
    faulted: bool = False  # the EVSE reports evse_manager/Inoperative
    session_active: bool = False  # between SessionStarted and SessionFinished
    waiting_for_auth: bool = False  # a car is plugged in and no transaction has run in this session
    plug_order: int = 0  # grows with every plug-in anywhere; larger = plugged in more recently
    plugged_at: float = 0.0  # monotonic time of the plug-in
    reserved: bool = False
    reservation_id: int | None = None  # None while reserved: reservation id not told by the EVSE
    authorized_token: Token | None = None  # granted, waiting for the transaction to start
    authorized_parent: str | None = None
    transaction_token: Token | None = None  # token of the running transaction
    transaction_parent: str | None = None  # its parent id token, when validation told us

    @property
    def free(self) -> bool:
        """Can take a new authorization: enabled, not faulted, nothing granted, no transaction running,
        and no finished session whose car is still plugged in (that needs an unplug first)."""
        if self.session_active and not self.waiting_for_auth:
            return False
        return self.enabled and not self.faulted and self.authorized_token is None and self.transaction_token is None

    def accepts_reservation(self, reservation_id: int | None) -> bool:
        """A reserved EVSE only goes to a token validated for its reservation."""
        if not self.reserved:
            return True
        if reservation_id is None:
            return False
        return self.reservation_id is None or self.reservation_id == reservation_id


class SelectionAlgorithm(StrEnum):
    FIND_FIRST = "FindFirst"
    PLUG_EVENTS = "PlugEvents"


class Selection(Enum):
    NONE_FREE = "none_free"  # no EVSE can take the token
    WAIT_FOR_PLUG = "wait_for_plug"  # several candidates, none plugged in: wait for a car


def candidates(
    slots: list[EvseSlot],
    allowed_evse_ids: set[int] | None,
    reservation_id: int | None,
    plugged_after: float | None = None,
) -> list[EvseSlot]:
    return [
        slot
        for slot in slots
        if slot.free
        and (allowed_evse_ids is None or slot.evse_id in allowed_evse_ids)
        and slot.accepts_reservation(reservation_id)
        and not (plugged_after is not None and slot.waiting_for_auth and slot.plugged_at < plugged_after)
    ]


def choose_evse(
    slots: list[EvseSlot],
    algorithm: SelectionAlgorithm,
    allowed_evse_ids: set[int] | None = None,
    reservation_id: int | None = None,
    plugged_after: float | None = None,
) -> EvseSlot | Selection:
    """The EVSE an accepted token goes to.

    A token holding a reservation goes to the EVSE reserved for it. Otherwise, a single candidate is
    taken even without a car; among several, the car plugged in most recently that still waits for
    authorization wins. Without such a car FindFirst takes the first candidate in configuration
    order, PlugEvents waits for the next plug-in. With `plugged_after`, a car plugged in before that
    time is left alone (it has to be plugged in again).
    """
    found = candidates(slots, allowed_evse_ids, reservation_id, plugged_after)
    if not found:
        return Selection.NONE_FREE
    if reservation_id is not None:
        for slot in found:
            if slot.reserved:
                return slot
    if len(found) == 1:
        return found[0]
    waiting = [slot for slot in found if slot.waiting_for_auth]
    if waiting:
        return max(waiting, key=lambda slot: slot.plug_order)
    if algorithm is SelectionAlgorithm.FIND_FIRST:
        return found[0]
    return Selection.WAIT_FOR_PLUG


def allowed_evse_ids(token: Token, validation_result: dict[str, Any] | None) -> set[int] | None:
    """EVSE ids the token may use: the token's own list intersected with the validator's, if any."""
    allowed: set[int] | None = None
    for ids in (token.get("connectors"), (validation_result or {}).get("evse_ids")):
        if ids:
            allowed = set(ids) if allowed is None else allowed & set(ids)
    return allowed
