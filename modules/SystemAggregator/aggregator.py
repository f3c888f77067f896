"""SystemAggregator: one `system` for a charger made of several boards (main board + satellites).

Connection 0 of `boards` is the main board's own System, the others are satellites (their System
proxied by SatelliteController, or any other `system` implementation). The CSMS sees one charger:
- firmware: every board downloads; installation starts only when all have downloaded and the
  installation was allowed, satellites first, the main board last; statuses merged (firmware_merge.py);
- logs: every board uploads to a one-time location of the inbox on this board (inbox.py), one
  archive with all of them goes to the CSMS;
- reset: satellites first, then the main board; is_reset_allowed / set_system_time: all boards must agree.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everpy_modules.System.archive import pack_logs
from everpy_modules.System.log_upload import LogUploader, UploadSettings
from everpy_modules.System.transfer import tls_context

from everpy import CommandError, Module, Remote, command

from .firmware_merge import FirmwareMerge, merge_answers
from .inbox import UploadInbox

IMPL = "main"
BOARD_UNAVAILABLE = "system/BoardUnavailable"
FINAL_LOG_STATUSES = frozenset({"Uploaded", "UploadFailure", "PermissionDenied", "BadMessage", "NotSupportedOperation"})
UPDATE_STATE_FILE = "aggregated_firmware_update.json"


@dataclass
class Board:
    index: int
    remote: Remote
    satellite: Remote | None  # the link to this board (satellites only, when connected in the config)
    log_statuses: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    @property
    def name(self) -> str:
        return f"{self.index}-{self.remote.module_id}"

    @property
    def is_local(self) -> bool:
        return self.index == 0


class SystemAggregator(Module):
    async def init(self) -> None:
        satellites = self.connections("satellites")
        self.boards = [
            Board(index, remote, satellites[index - 1] if 0 < index <= len(satellites) else None)
            for index, remote in enumerate(self.connections("boards"))
        ]
        self.merge: FirmwareMerge | None = None
        self.board_request_id = 0  # the id the boards know the current update by
        self.installation_allowed = False
        self._install_task: asyncio.Task[None] | None = None
        self._update_timer: Any = None
        self._firmware_changed = asyncio.Event()
        for board in self.boards:
            board.remote.subscribe("firmware_update_status", self._firmware_status_handler(board))
            board.remote.subscribe("log_status", board.log_statuses.put_nowait)
        self.state_file = Path(self.config["state_dir"]) / UPDATE_STATE_FILE
        await self._resume_update_after_reboot()
        work_dir = Path(self.config["work_dir"])
        tls = await asyncio.to_thread(tls_context, self.config["tls_ca_file"])
        self.inbox_tls = await asyncio.to_thread(
            _inbox_tls, self.config["upload_tls_cert"], self.config["upload_tls_key"]
        )
        self.logs = LogUploader(
            UploadSettings(
                work_dir=work_dir / "outgoing",
                file_name_prefix=self.config["log_file_name_prefix"],
                default_retries=self.config["default_retries"],
                default_retry_interval_s=self.config["default_retry_interval_s"],
                http_method=self.config["http_upload_method"],
                timeout_s=self.config["transfer_timeout_s"],
                tls=tls,
            ),
            self._collect_board_logs,
            self.clock,
            self._publish_log_status,
            self.spawn,
            self.log,
        )

    # ------------------------------------------------------------------------------- firmware

    @command(IMPL, "update_firmware")
    async def update_firmware(self, firmware_update_request: dict[str, Any]) -> str:
        request_id = int(firmware_update_request["request_id"])
        # The boards get an id of our own: OCPP 1.6 uses -1 for every update, and a status of an earlier
        # update replayed by a satellite link after a reconnect must never count for this one.
        board_request_id = _fresh_request_id()
        self._end_update()
        self._install_task = None
        merge = self.merge = FirmwareMerge(request_id, len(self.boards), self._publish_firmware_status)
        self.board_request_id = board_request_id
        self.installation_allowed = False
        answers = await self._on_all(
            self.boards,
            "update_firmware",
            "Rejected",
            firmware_update_request={**firmware_update_request, "request_id": board_request_id},
        )
        answer = merge_answers(answers)
        if answer not in ("Accepted", "AcceptedCanceled"):
            self.log.warning("firmware update %d refused by a board: %s", request_id, answers)
            merge.finished = True  # boards that accepted wait for an installation permission that never comes
            return answer
        self._arm_update_timer()
        return answer

    @command(IMPL, "allow_firmware_installation")
    def allow_firmware_installation(self) -> None:
        self.installation_allowed = True
        self._maybe_start_installation()

    def _firmware_status_handler(self, board: Board) -> Callable[[dict[str, Any]], None]:
        def on_status(value: dict[str, Any]) -> None:
            merge = self.merge
            if merge is None or value.get("request_id") != self.board_request_id:
                return
            was_downloaded = merge.all_downloaded
            merge.board_status(board.index, str(value["firmware_update_status"]))
            self._firmware_changed.set()
            if merge.all_downloaded and not was_downloaded:
                self._disarm_update_timer()  # download phase over; the installation phase arms it again
            if merge.finished:
                self._end_update()
            else:
                self._maybe_start_installation()

        return on_status

    def _maybe_start_installation(self) -> None:
        merge = self.merge
        if merge is None or merge.finished or not merge.all_downloaded or not self.installation_allowed:
            return
        if self._install_task is None:  # once per update
            self._install_task = self.spawn(self._install_everywhere(merge))

    async def _install_everywhere(self, merge: FirmwareMerge) -> None:
        """Satellites first; the main board (which may reboot) only after every satellite installed."""
        self._arm_update_timer()
        satellites = [board for board in self.boards if not board.is_local]
        await self._on_all(satellites, "allow_firmware_installation", None)
        while not merge.finished and not {board.index for board in satellites} <= merge.reached("Installed"):
            self._firmware_changed.clear()
            await self._firmware_changed.wait()
        if merge.finished:
            return
        saved = {"request_id": merge.request_id, "board_request_id": self.board_request_id}
        await asyncio.to_thread(_write_json, self.state_file, saved)
        await self._on_all(self.boards[:1], "allow_firmware_installation", None)

    def _arm_update_timer(self) -> None:
        """Bound each phase (all downloads; all installations) on its own: the wait for the permission
        between them lasts as long as the running charging sessions and is not bounded here."""
        self._disarm_update_timer()
        self._update_timer = self.clock.call_later(self.config["board_update_timeout_s"], self._update_timed_out)

    def _disarm_update_timer(self) -> None:
        if self._update_timer is not None:
            self._update_timer.cancel()
            self._update_timer = None

    def _update_timed_out(self) -> None:
        merge = self.merge
        if merge is None or merge.finished:
            return
        status = "InstallationFailed" if merge.all_downloaded else "DownloadFailed"
        self.log.error("firmware update %d: not every board finished in time; reporting %s", merge.request_id, status)
        merge.fail(status)
        self._end_update()

    def _end_update(self) -> None:
        self._disarm_update_timer()
        if self._install_task is not None and not self._install_task.done():
            self._install_task.cancel()
        if self.merge is not None and self.merge.finished:
            self.state_file.unlink(missing_ok=True)

    async def _resume_update_after_reboot(self) -> None:
        """The main board installs last and may reboot: after that, only its own Installed is missing."""
        try:
            saved = await asyncio.to_thread(self.state_file.read_text)
        except FileNotFoundError:
            return
        try:
            update = json.loads(saved)
            request_id, board_request_id = int(update["request_id"]), int(update["board_request_id"])
        except (ValueError, KeyError, TypeError):
            self.log.warning("ignoring unreadable %s", self.state_file)
            return
        merge = self.merge = FirmwareMerge(request_id, len(self.boards), self._publish_firmware_status)
        self.board_request_id = board_request_id
        for board in self.boards[1:]:
            merge.board_status(board.index, "Installed")
        self._arm_update_timer()  # a main board that came back without reporting Installed failed the update

    # ------------------------------------------------------------------------------------ logs

    @command(IMPL, "upload_logs")
    def upload_logs(self, upload_logs_request: dict[str, Any]) -> dict[str, str]:
        return self.logs.request(upload_logs_request)

    async def _collect_board_logs(self, request: dict[str, Any], archive: Path) -> None:
        incoming = Path(self.config["work_dir"]) / "incoming"
        await asyncio.to_thread(_empty_directory, incoming)
        inbox = UploadInbox(
            incoming,
            bind_host=self.config["upload_bind_host"],
            port=self.config["upload_port"],
            max_bytes=self.config["max_board_upload_mb"] * 1024 * 1024,
            tls=self.inbox_tls,
        )
        async with inbox:
            outcomes = await asyncio.gather(*(self._collect_from(board, inbox, request) for board in self.boards))
        summary = "".join(f"{board.name}: {outcome}\n" for board, outcome in zip(self.boards, outcomes, strict=True))
        self.log.info("board logs collected:\n%s", summary)
        sources = sorted(await asyncio.to_thread(lambda: list(incoming.iterdir())))
        await pack_logs(sources, archive, extra_files={"BOARDS.txt": summary.encode()})

    async def _collect_from(self, board: Board, inbox: UploadInbox, request: dict[str, Any]) -> str:
        """Have one board upload into the inbox; returns what happened, for the archive's BOARDS.txt."""
        slot = inbox.expect(board.name)
        host = await self._inbox_host_for(board)
        board_request: dict[str, Any] = {
            key: request[key] for key in ("oldest_timestamp", "latest_timestamp", "type") if key in request
        }
        # A fresh id per board and collection: a late status of an earlier collection is never taken for this one.
        request_id = _fresh_request_id()
        board_request.update(
            location=inbox.location(slot, host),
            retries=2,
            retry_interval_s=self.config["board_upload_retry_interval_s"],
            request_id=request_id,
        )
        _drain(board.log_statuses)
        answer = await self._on_board(
            board, "upload_logs", {"upload_logs_status": "unreachable"}, upload_logs_request=board_request
        )
        if answer.get("upload_logs_status") not in ("Accepted", "AcceptedCanceled"):
            return f"refused ({answer.get('upload_logs_status')})"

        async def final_status() -> str:
            while True:
                status = await board.log_statuses.get()
                if status.get("request_id") == request_id and status.get("log_status") in FINAL_LOG_STATUSES:
                    if status["log_status"] != "Uploaded":
                        return str(status["log_status"])

        failed = asyncio.ensure_future(final_status())
        timeout = self.config["board_upload_timeout_s"]
        try:
            winner = await self.clock.wait_for(_first_of(slot.received, failed), timeout)
        except TimeoutError:
            return f"no upload within {timeout} s"
        finally:
            failed.cancel()
        return "uploaded" if isinstance(winner, Path) else f"upload failed ({winner})"

    async def _inbox_host_for(self, board: Board) -> str:
        if board.satellite is not None:
            try:
                address = await board.satellite.call(
                    "get_local_endpoint_address", timeout=self.config["board_command_timeout_s"]
                )
            except CommandError as error:
                self.log.warning("no link address for %s: %s", board.name, error)
            else:
                if address:
                    return str(address)
        return str(self.config["upload_host"])

    # ------------------------------------------------------------------------ reset, time, boot

    @command(IMPL, "is_reset_allowed")
    async def is_reset_allowed(self, type: str) -> bool:
        return all(await self._on_all(self.boards, "is_reset_allowed", False, type=type))

    @command(IMPL, "reset")
    async def reset(self, type: str, scheduled: bool) -> None:
        satellites = [board for board in self.boards if not board.is_local]
        await self._on_all(satellites, "reset", None, type=type, scheduled=scheduled)
        self.spawn(self._reset_main_board(type, scheduled))

    async def _reset_main_board(self, reset_type: str, scheduled: bool) -> None:
        # Give the satellites a head start: the main board going down first would cut their links mid-reset.
        await self.clock.sleep(self.config["satellite_reset_grace_s"])
        await self._on_board(self.boards[0], "reset", None, type=reset_type, scheduled=scheduled)

    @command(IMPL, "set_system_time")
    async def set_system_time(self, timestamp: str) -> bool:
        return all(await self._on_all(self.boards, "set_system_time", False, timestamp=timestamp))

    @command(IMPL, "get_boot_reason")
    async def get_boot_reason(self) -> str:
        return str(await self._on_board(self.boards[0], "get_boot_reason", "Unknown"))

    # --------------------------------------------------------------------------------- helpers

    async def _on_all(self, boards: list[Board], cmd: str, unreachable: Any, **args: Any) -> list[Any]:
        return list(await asyncio.gather(*(self._on_board(board, cmd, unreachable, **args) for board in boards)))

    async def _on_board(self, board: Board, cmd: str, unreachable: Any, **args: Any) -> Any:
        """Call one board; a board that cannot answer counts as `unreachable` and raises BoardUnavailable."""
        try:
            result = await board.remote.call(cmd, timeout=self.config["board_command_timeout_s"], **args)
        except CommandError as error:
            self.log.warning("board %s: %s failed: %s", board.name, cmd, error)
            self.raise_error(IMPL, BOARD_UNAVAILABLE, message=f"{cmd}: {error}", sub_type=board.name, severity="Medium")
            return unreachable
        self.clear_error(IMPL, BOARD_UNAVAILABLE, sub_type=board.name)
        return result

    def _publish_firmware_status(self, status: str, request_id: int) -> None:
        self.log.info("firmware update %d (all boards): %s", request_id, status)
        self.publish(IMPL, "firmware_update_status", {"firmware_update_status": status, "request_id": request_id})

    def _publish_log_status(self, status: str, request_id: int) -> None:
        self.log.info("log upload %d (all boards): %s", request_id, status)
        self.publish(IMPL, "log_status", {"log_status": status, "request_id": request_id})


async def _first_of(*awaitables: Awaitable[Any]) -> Any:
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    return next(iter(done)).result()


def _inbox_tls(cert_file: str, key_file: str) -> ssl.SSLContext | None:
    if not cert_file:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"cannot use {cert_file!r} / {key_file!r} for the log inbox: {error}") from error
    return context


def _fresh_request_id() -> int:
    return secrets.randbelow(2**31 - 1) + 1


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)


def _empty_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
