"""Fixtures of the OCPP tests: the in-repo CSMS and a station (OCPP + Auth + System + EVSE) on the bus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.csms import Csms

STANDINS = Path(__file__).parent / "standins"


def station_config(tmp_path: Path, csms_url: str, ocpp: dict[str, Any] | None = None,
                   keys: dict[str, str] | None = None) -> dict[str, Any]:
    """Run config of a one-EVSE station talking to csms_url."""
    for name in ("state", "work", "logs"):
        (tmp_path / name).mkdir(exist_ok=True)
    ocpp_config = {
        "charge_point_id": "CP1", "central_system_uri": csms_url, "database_path": str(tmp_path / "ocpp.db"),
        "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "response_timeout_s": 5.0, "boot_retry_s": 0.5,
        "reset_drain_timeout_s": 5.0,
        "configuration": json.dumps({"HeartbeatInterval": "300", "MeterValueSampleInterval": "0",
                                     "TransactionMessageRetryInterval": "0", **(keys or {})}),
        **(ocpp or {}),
    }
    return {
        "active_modules": {
            "evse": {"module": "OcppEvseStandIn"},
            "auth": {"module": "Auth", "config_module": {"connection_timeout": 30},
                     "connections": {
                         "token_provider": [{"module_id": "evse", "implementation_id": "rfid"},
                                            {"module_id": "ocpp", "implementation_id": "auth_provider"}],
                         "token_validator": [{"module_id": "ocpp", "implementation_id": "auth_validator"}],
                         "evse_manager": [{"module_id": "evse", "implementation_id": "evse"}]}},
            "system": {"module": "System", "config_module": {
                "state_dir": str(tmp_path / "state"), "work_dir": str(tmp_path / "work"),
                "log_paths": str(tmp_path / "logs"), "soft_reset_command": f"touch {tmp_path}/soft-reset",
                "hard_reset_command": f"touch {tmp_path}/hard-reset"}},
            "ocpp": {"module": "OCPP", "config_module": ocpp_config,
                     "connections": {"evse_manager": [{"module_id": "evse", "implementation_id": "evse"}],
                                     "system": [{"module_id": "system", "implementation_id": "main"}],
                                     "auth": [{"module_id": "auth", "implementation_id": "main"}]}},
        }
    }


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    async with Csms() as server:
        yield server
