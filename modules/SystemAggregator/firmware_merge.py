"""Merging the firmware update statuses of several boards into the one status a CSMS sees.

Rules (one update, N boards):
- a failure on any board fails the whole update at once; nothing is reported after it;
- Downloaded and Installed are reported when every board got there (Installed ends the update);
- every other status is progress and is reported when the first board reports it;
- each status is reported at most once.
"""

from __future__ import annotations

from collections.abc import Callable

FAILURES = frozenset({"DownloadFailed", "InstallationFailed", "InstallVerificationFailed", "InvalidSignature"})
WHEN_ALL = ("Downloaded", "Installed")
ANSWER_RANK = {"Accepted": 0, "AcceptedCanceled": 1, "Rejected": 2, "InvalidCertificate": 3, "RevokedCertificate": 4}


def merge_answers(answers: list[str]) -> str:
    """The answer for the whole charger: the worst board answer wins."""
    return max(answers, key=lambda answer: ANSWER_RANK.get(answer, len(ANSWER_RANK)))


class FirmwareMerge:
    def __init__(self, request_id: int, boards: int, publish: Callable[[str, int], None]) -> None:
        self.request_id = request_id
        self.boards = boards
        self._publish = publish
        self._reported: set[str] = set()
        self._reached: dict[str, set[int]] = {status: set() for status in WHEN_ALL}
        self.finished = False

    def reached(self, status: str) -> set[int]:
        """Boards that reported `status` (Downloaded or Installed)."""
        return set(self._reached[status])

    @property
    def all_downloaded(self) -> bool:
        return len(self._reached["Downloaded"]) == self.boards

    def board_status(self, board: int, status: str) -> None:
        if self.finished:
            return
        if status in FAILURES:
            self.fail(status)
        elif status in self._reached:
            self._reached[status].add(board)
            if status == "Installed":
                self._reached["Downloaded"].add(board)
            if len(self._reached[status]) == self.boards:
                self._report(status)
                self.finished = status == "Installed"
        else:
            self._report(status)

    def fail(self, status: str) -> None:
        """End the update with `status` (also used when a board stops answering)."""
        if not self.finished:
            self._report(status)
            self.finished = True

    def _report(self, status: str) -> None:
        if status not in self._reported:
            self._reported.add(status)
            self._publish(status, self.request_id)
