"""Version-neutral values the OCPP layer passes between the charger and each OCPP version.

OCPP 1.6 addresses a connector by one number; 2.0.1 by an EVSE and a connector on it. everpy's charger
has EVSEs with one connector each, so a 1.6 connector id is the EVSE id with connector 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum


@dataclass(frozen=True)
class EvseRef:
    """An EVSE (1-based; 0 = the whole station) and a connector on it (1-based; 0 = any)."""

    evse_id: int
    connector_id: int = 1


@dataclass(frozen=True)
class IdToken:
    """An identifier presented for authorisation and its kind (ISO14443, Central, eMAID, ...)."""

    value: str
    type: str = "Central"


class ResetKind(Enum):
    SOFT = "Soft"
    HARD = "Hard"


class ResetWhen(Enum):
    IMMEDIATE = "Immediate"  # stop running transactions, then reset
    ON_IDLE = "OnIdle"  # reset once no transaction runs


@dataclass(frozen=True)
class ResetRequest:
    kind: ResetKind
    when: ResetWhen = ResetWhen.IMMEDIATE
    evse: EvseRef | None = None  # None: the whole station


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (the RPC layer has checked its format)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
