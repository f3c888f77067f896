"""A counter module: provides `example` (impl `main`), optionally talks to a peer counter."""

from __future__ import annotations

import asyncio

from everpy import Module, command

LIMIT = 1_000_000


class Example(Module):
    async def init(self) -> None:
        self.value = 0
        self.peer_values: list[int] = []
        for peer in self.connections("peer"):
            peer.subscribe("value", self.peer_values.append)

    async def ready(self) -> None:
        self.publish("main", "value", self.value)
        if self.config["tick_s"] > 0:
            self.spawn(self._tick(), name="ticker")

    async def _tick(self) -> None:
        while True:
            await self.clock.sleep(self.config["tick_s"])
            self._add(self.config["step"])

    def _add(self, amount: int) -> int:
        self.value += amount
        self.publish("main", "value", self.value)
        if self.value > LIMIT:
            self.raise_error("main", "example/Overflow", f"counter at {self.value}")
        return self.value

    @command("main", "add")
    def add(self, a: int, b: int) -> int:
        return a + b

    @command("main", "increment")
    def increment(self, by: int) -> int:
        return self._add(by)

    @command("main", "fail")
    def fail(self) -> None:
        raise RuntimeError("asked to fail")

    @command("main", "slow")
    async def slow(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)  # real time on purpose: used to test call timeouts
        return True

    @command("main", "peer_add")
    async def peer_add(self, a: int, b: int) -> int:
        return await self.require("peer").call("add", a=a, b=b)
