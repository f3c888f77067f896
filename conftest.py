"""Suite-wide test settings (pytest loads this before any test folder's conftest)."""

from __future__ import annotations

import pytest

# Tests that advertise or browse satellites over mDNS on the machine's own network share one pytest-xdist
# worker: two of them at once would see each other's boards (same service type, often the same serials).
SHARED_NETWORK = ("tests/multiboard/", "tests/system/test_system_multiboard.py", "tests/ocpp/test_evse_resync.py",
                  "modules/SatelliteAgent/", "modules/SatelliteController/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if path.startswith(SHARED_NETWORK):
            item.add_marker(pytest.mark.xdist_group("shared-network"))
