"""The public example key of the SIL configs keys no link unless a config says it is a simulation: the
satellite agent refuses to start with it, with a message saying how to give every board its own key."""

from __future__ import annotations

import pytest

from everpy.core.exceptions import ModuleStartupError
from everpy.rpc.satellite import DEVELOPMENT_KEY, DevelopmentKeyRefused, link_key
from everpy.testing import run_system
from tests.multiboard.boards import satellite_config

EXAMPLE_HEX = DEVELOPMENT_KEY.hex()


def test_the_example_key_is_refused_unless_allowed():
    with pytest.raises(DevelopmentKeyRefused, match="own key"):
        link_key({"psk": EXAMPLE_HEX})
    assert link_key({"psk": EXAMPLE_HEX, "allow_development_key": True}) == DEVELOPMENT_KEY
    own = "a1" * 32
    assert link_key({"psk": own}) == bytes.fromhex(own)


async def test_a_satellite_agent_with_the_example_key_does_not_start():
    config = satellite_config("SAT-KEY1", psk=EXAMPLE_HEX)
    with pytest.raises(ModuleStartupError, match="public example key"):
        async with run_system(config):
            pass
