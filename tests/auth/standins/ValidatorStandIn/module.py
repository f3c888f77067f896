"""Stand-in validator for Auth tests: a fixed answer table; "fail" makes the handler raise."""

from __future__ import annotations

import json
from typing import Any

from everpy import Module, command


class ValidatorFault(RuntimeError):
    """Raised on purpose: the test wants to see Auth survive a failing validator."""


class ValidatorStandIn(Module):
    async def init(self) -> None:
        self.results: dict[str, Any] = json.loads(self.config["results"])
        self.asked: list[str] = []

    @command("validator", "validate_token")
    def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        token = provided_token["id_token"]["value"]
        self.asked.append(token)
        result = self.results.get(token, {"authorization_status": "Invalid"})
        if result == "fail":
            raise ValidatorFault(f"validator broken on purpose for {token}")
        return result
