"""Fixtures of the OCPP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from everpy.csms import Csms


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    async with Csms() as server:
        yield server
