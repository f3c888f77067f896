"""Fixtures for the multi-board tests: boards as separate processes on loopback."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# --import-mode=importlib puts no test folder on sys.path; the tests import boards.py from here.
sys.path.insert(0, str(Path(__file__).parent))

from boards import Board


@pytest.fixture
async def boards(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Board]]]:
    """start_board(name, config, netns=None) -> a started Board; every board is stopped after the test."""
    started: list[Board] = []

    async def start_board(name: str, config: dict[str, Any], netns: str | None = None) -> Board:
        board = Board(name, config, tmp_path, netns)
        started.append(board)
        await board.start()
        return board

    yield start_board
    for board in reversed(started):
        await board.close()
