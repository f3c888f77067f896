"""RFC 3339 times as they arrive in system requests."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(text: str) -> float:
    """RFC 3339 text to epoch seconds; a time without zone is taken as UTC. ValueError if unparsable."""
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def is_timestamp(value: object) -> bool:
    try:
        parse_timestamp(str(value))
    except ValueError:
        return False
    return True
