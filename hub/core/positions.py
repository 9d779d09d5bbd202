"""Source positions: how far apart two are, and which ones a source cannot have written yet.

A position (``hub.core.debezium``) sorts in log order within one source. Every change the hub
admits becomes its key's mark: a later change at an older position is a replay and is dropped. A
record at a position far ahead of anything the source has written — forged, or copied by hand
from another server — would lock its key for good. So the engine keeps, per source system, its
*frontier*: the newest position seen and when it was committed. A change is implausible, and is
dead-lettered (reason ``implausible_position``) instead of becoming a mark, when it is further
ahead of the frontier than the source could have written since: more than ``max_leap`` bytes of
log plus ``log_rate`` bytes per second between the two commit times. A source idle for a week
while its server wrote terabytes for other databases is fine; a copy of a recent event with a
made-up position is not. A commit time more than ``CLOCK_SKEW`` ahead of the worker's clock is
implausible too (no source commits in the future).

Distances are in bytes of log: PostgreSQL LSNs are byte offsets in the WAL; a MariaDB position is
a binlog file and an offset in it, and a file counts as ``BINLOG_FILE_BYTES`` (its default
``max_binlog_size``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from hub.errors import InvalidEvent

BINLOG_FILE_BYTES = 1 << 30
CLOCK_SKEW = 300.0  # seconds
FRONTIER = "frontier:"
_MARIADB = re.compile(r"^mdb:(?P<file>.*?)(?P<number>\d+):(?P<pos>[0-9a-f]{16}):[0-9a-f]{8}$")
_POSTGRES = re.compile(r"^pg:(?P<commit>[0-9a-f]{16}):(?P<lsn>[0-9a-f]{16})$")


def log_point(position: str) -> tuple[str, int] | None:
    """(log family, byte offset) of a position; None when it has no known format. The family
    names what offsets compare with (a binlog base name, or ``pg``)."""
    match = _POSTGRES.match(position)
    if match:
        return "pg", max(int(match["commit"], 16), int(match["lsn"], 16))
    match = _MARIADB.match(position)
    if match:
        return f"mdb:{match['file']}", int(match["number"]) * BINLOG_FILE_BYTES + int(
            match["pos"], 16
        )
    return None


def visible(txid: int, snapshot: str) -> bool:
    """Whether the PostgreSQL transaction ``txid`` (32 bits, as Debezium gives it) had committed
    for ``snapshot`` (``pg_current_snapshot()``: "xmin:xmax:xip,…", 64-bit ids): its changes are in
    what that snapshot read. A transaction not visible committed after the snapshot was taken."""
    low, high, running = snapshot.split(":")
    xmin, xmax = int(low), int(high)
    full = (xmax & ~0xFFFFFFFF) | (txid & 0xFFFFFFFF)  # the epoch of the snapshot's ids
    if full >= xmax + (1 << 31):
        full -= 1 << 32
    if full < xmin:
        return True
    return full < xmax and str(full) not in running.split(",")


def leap(frontier: str, position: str) -> int | None:
    """Bytes of log from ``frontier`` to ``position`` (negative: behind); None if incomparable."""
    a, b = log_point(frontier), log_point(position)
    if a is None or b is None or a[0] != b[0]:
        return None
    return b[1] - a[1]


class Store(Protocol):
    def get(self, ref: str) -> dict[str, Any] | None: ...

    def put(self, ref: str, value: dict[str, Any] | None) -> None: ...


@dataclass(slots=True)
class _Frontier:
    """One system's frontier in memory, with its log point and that of the copy last written to
    the store parsed once (the check runs for every change)."""

    pos: str
    at: float
    point: tuple[str, int] | None
    saved: tuple[str, int] | None


class Frontiers:
    """The newest position seen per source system, and the check against it.

    The frontier lives in memory and is written to ``store`` (the worker's changelogged rows) only
    when it has moved a sixteenth of ``max_leap`` since the last write: a restarted worker starts
    at most that far behind, which the check tolerates, and a steady stream costs no extra write
    per event. ``reload`` forgets what memory holds (after the store was replaced).
    """

    def __init__(self, store: Store, max_leap: int, log_rate: int) -> None:
        self.store = store
        self.max_leap = max_leap
        self.log_rate = log_rate
        self.step = max(1, max_leap // 16)
        self._newest: dict[str, _Frontier] = {}

    def reload(self) -> None:
        self._newest.clear()

    def newest(self, system: str) -> dict[str, Any] | None:
        """``{"pos": position, "at": commit time in epoch seconds}`` or None."""
        frontier = self._frontier(system)
        return None if frontier is None else {"pos": frontier.pos, "at": frontier.at}

    def _frontier(self, system: str) -> _Frontier | None:
        if system not in self._newest:
            saved = self.store.get(FRONTIER + system)
            if saved is None:
                return None
            point = log_point(saved["pos"])
            self._newest[system] = _Frontier(saved["pos"], saved["at"], point, point)
        return self._newest[system]

    def admit(self, system: str, position: str, committed_at: float, now: float) -> None:
        """Move ``system``'s frontier to ``position`` if it is newer; ``InvalidEvent`` if the
        change is implausible (the frontier then stays where it was)."""
        if committed_at > now + CLOCK_SKEW:
            raise InvalidEvent(
                "implausible_position",
                f"committed {committed_at - now:,.0f} s in the future of this worker's clock: not "
                f"a change {system} made. Check the source's and the worker's clocks",
            )
        frontier = self._frontier(system)
        point = log_point(position)
        if frontier is None:
            self._advance(system, position, committed_at, point, None)
            return
        if point is None or frontier.point is None or point[0] != frontier.point[0]:
            if point is not None:  # another binlog or log kind: the source was rebuilt
                self._advance(system, position, committed_at, point, frontier.saved)
            return
        ahead = point[1] - frontier.point[1]
        allowed = self.max_leap + self.log_rate * max(0.0, committed_at - frontier.at)
        if ahead > allowed:
            raise InvalidEvent(
                "implausible_position",
                f"{position} is {ahead:,} bytes of log ahead of the newest position seen from "
                f"{system} ({frontier.pos}), more than it can have written since "
                f"({allowed:,.0f}: HUB_WORKER_MAX_POSITION_LEAP plus HUB_WORKER_MAX_LOG_RATE per "
                "second between the commit times). A record not written by the source's "
                "connector? If the source really wrote that much, raise the limits and replay: "
                "hub dlq replay --reason implausible_position",
            )
        if ahead > 0:
            self._advance(system, position, committed_at, point, frontier.saved)

    def _advance(
        self, system: str, position: str, at: float, point: tuple[str, int] | None,
        saved: tuple[str, int] | None,
    ) -> None:  # fmt: skip
        moved = None
        if saved is not None and point is not None and saved[0] == point[0]:
            moved = point[1] - saved[1]
        if moved is None or moved >= self.step:
            self.store.put(FRONTIER + system, {"pos": position, "at": at})
            saved = point
        self._newest[system] = _Frontier(position, at, point, saved)
