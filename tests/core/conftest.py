from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PROBE_DIRS = {"extra_module_dirs": [FIXTURES / "modules"], "extra_definition_dirs": [FIXTURES / "definitions"]}


@pytest.fixture
def probe_dirs() -> dict:
    return dict(PROBE_DIRS)
