"""TokenProviderSimulator: a card reader that swipes by command, by schedule or on AuthRequired."""

from __future__ import annotations

from typing import Any

from everpy.core.module import Module, command


def parse_schedule(text: str, default_token: str) -> list[tuple[float, str]]:
    """'5:AB;10' -> [(5.0, 'AB'), (10.0, default_token)]. Raises ValueError naming the bad entry."""
    steps: list[tuple[float, str]] = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        delay_text, _, token = entry.partition(":")
        try:
            delay = float(delay_text)
        except ValueError:
            raise ValueError(f"schedule entry {entry!r}: delay {delay_text!r} is not a number") from None
        if delay < 0:
            raise ValueError(f"schedule entry {entry!r}: delay must not be negative")
        token = token.strip() or default_token
        if len(token) > 36:
            raise ValueError(f"schedule entry {entry!r}: token longer than 36 characters")
        steps.append((delay, token))
    return steps


def parse_valid_tokens(text: str) -> dict[str, str | None]:
    """'A, B:GROUP' -> {'a': None, 'b': 'GROUP'}: card (folded case) -> parent id token."""
    cards: dict[str, str | None] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        card, _, group = entry.partition(":")
        cards[card.strip().casefold()] = group.strip() or None
    return cards


class TokenProviderSimulator(Module):
    async def init(self) -> None:
        self.schedule = parse_schedule(self.config["schedule"], self.config["token"])
        self.valid_tokens = parse_valid_tokens(self.config["valid_tokens"])
        if self.config["present_on_auth_required"] and self.connections("evse"):
            self.require("evse").subscribe("session_event", self._on_session_event)

    async def ready(self) -> None:
        if self.schedule:
            self.spawn(self._run_schedule(), name="schedule")

    @command("control", "present_token")
    def present_token(self, token: str, authorization_type: str = "") -> dict[str, Any]:
        return self._present(token, authorization_type or self.config["authorization_type"])

    @command("validator", "validate_token")
    def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        card = str(provided_token["id_token"]["value"]).casefold()
        if card not in self.valid_tokens and "*" not in self.valid_tokens:
            return {"authorization_status": "Invalid"}
        result: dict[str, Any] = {"authorization_status": "Accepted"}
        group = self.valid_tokens.get(card)
        if group:
            result["parent_id_token"] = {"value": group, "type": "Central"}
        return result

    def _present(self, value: str, authorization_type: str) -> dict[str, Any]:
        provided = {
            "id_token": {"value": value, "type": self.config["id_token_type"]},
            "authorization_type": authorization_type,
        }
        self.log.info("presenting token %s (%s)", value, authorization_type)
        self.publish("main", "provided_token", provided)
        return provided

    async def _run_schedule(self) -> None:
        for delay, token in self.schedule:
            await self.clock.sleep(delay)
            self._present(token, self.config["authorization_type"])

    def _on_session_event(self, event: Any) -> None:
        if isinstance(event, dict) and event.get("event") == "AuthRequired":
            self.clock.call_later(
                self.config["auth_required_delay_s"],
                lambda: self._present(self.config["token"], self.config["authorization_type"]),
            )
