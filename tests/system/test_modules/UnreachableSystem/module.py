"""A `system` implementation whose every command fails, like a board that lost its link."""

from __future__ import annotations

from typing import Any

from everpy import Module, command


class BoardGone(RuntimeError):
    pass


def _fails(name: str) -> Any:
    @command("main", name)
    def handler(self: Module, **_args: Any) -> None:
        raise BoardGone("board does not answer")

    return handler


class UnreachableSystem(Module):
    update_firmware = _fails("update_firmware")
    allow_firmware_installation = _fails("allow_firmware_installation")
    upload_logs = _fails("upload_logs")
    is_reset_allowed = _fails("is_reset_allowed")
    reset = _fails("reset")
    set_system_time = _fails("set_system_time")
    get_boot_reason = _fails("get_boot_reason")
