"""Source positions: distances in bytes of log, and the frontier check against forged positions."""

from __future__ import annotations

import pytest

from hub.core.engine import MemoryStore
from hub.core.positions import (
    BINLOG_FILE_BYTES,
    CLOCK_SKEW,
    FRONTIER,
    Frontiers,
    leap,
    log_point,
    visible,
)
from hub.errors import InvalidEvent

GIB = 1 << 30


def pg(lsn: int, commit: int | None = None) -> str:
    return f"pg:{commit if commit is not None else lsn:016x}:{lsn:016x}"


def mdb(number: int, pos: int, row: int = 0) -> str:
    return f"mdb:binlog.{number:06d}:{pos:016x}:{row:08x}"


def test_distances_are_bytes_of_log_within_one_log_only():
    assert log_point(pg(100, commit=250)) == ("pg", 250)
    assert leap(pg(100), pg(4196)) == 4096
    assert leap(pg(4196), pg(100)) == -4096
    assert leap(mdb(1, 500), mdb(3, 100)) == 2 * BINLOG_FILE_BYTES - 400
    assert leap(pg(1), mdb(1, 1)) is None  # another kind of log
    assert leap(mdb(1, 1).replace("binlog", "other"), mdb(1, 2)) is None  # another binlog
    assert log_point("truth") is None


def frontiers(max_leap: int = GIB, log_rate: int = 0) -> Frontiers:
    return Frontiers(MemoryStore(), max_leap, log_rate)


def test_a_position_far_ahead_of_the_frontier_is_implausible_and_moves_nothing():
    guard = frontiers()
    guard.admit("pos", pg(1000), committed_at=100.0, now=100.0)
    guard.admit("pos", pg(1000 + GIB), committed_at=100.0, now=100.0)  # at the limit: fine
    with pytest.raises(InvalidEvent, match="bytes of log ahead") as bad:
        guard.admit("pos", pg(0x7FFF_0000_0000), committed_at=100.0, now=100.0)
    assert bad.value.reason == "implausible_position"
    assert guard.newest("pos") == {"pos": pg(1000 + GIB), "at": 100.0}
    guard.admit("pos", pg(2000), committed_at=101.0, now=101.0)  # behind: a replay, not judged
    guard.admit("shop", pg(0x7FFF_0000_0000), committed_at=100.0, now=100.0)  # its own frontier


def test_the_allowance_grows_with_the_time_between_commits():
    guard = frontiers(max_leap=GIB, log_rate=10 * 1024 * 1024)  # 10 MiB/s
    guard.admit("erp", mdb(1, 100), committed_at=0.0, now=0.0)
    with pytest.raises(InvalidEvent):
        guard.admit("erp", mdb(3, 100), committed_at=10.0, now=10.0)  # 2 GiB in 10 s
    guard.admit("erp", mdb(3, 100), committed_at=3600.0, now=3600.0)  # 2 GiB in an hour: fine


def test_a_commit_in_the_future_of_the_worker_is_implausible():
    guard = frontiers()
    with pytest.raises(InvalidEvent, match="in the future") as bad:
        guard.admit("pos", pg(10), committed_at=1000.0 + CLOCK_SKEW + 60, now=1000.0)
    assert bad.value.reason == "implausible_position"
    assert guard.newest("pos") is None


def test_the_frontier_is_written_every_sixteenth_of_the_limit_and_read_back():
    guard = frontiers(max_leap=16 * 1024)
    guard.admit("pos", pg(0), committed_at=1.0, now=1.0)
    for lsn in range(100, 1024, 100):
        guard.admit("pos", pg(lsn), committed_at=1.0, now=1.0)
    assert guard.store.get(FRONTIER + "pos") == {"pos": pg(0), "at": 1.0}  # less than a step
    guard.admit("pos", pg(1024), committed_at=2.0, now=2.0)
    assert guard.store.get(FRONTIER + "pos") == {"pos": pg(1024), "at": 2.0}
    guard.admit("pos", pg(1500), committed_at=3.0, now=3.0)
    guard.reload()  # a takeover: memory forgotten, the store read back
    assert guard.newest("pos") == {"pos": pg(1024), "at": 2.0}


def test_a_rebuilt_source_starts_a_new_frontier():
    guard = frontiers()
    guard.admit("erp", mdb(9, 100), committed_at=1.0, now=1.0)
    rebuilt = mdb(1, 4).replace("binlog", "mariadb-bin")
    guard.admit("erp", rebuilt, committed_at=2.0, now=2.0)
    assert guard.newest("erp") == {"pos": rebuilt, "at": 2.0}


def test_visibility_in_a_postgres_snapshot():
    snapshot = "4294968000:4294968010:4294968003,4294968007"  # ids of epoch 1
    low = 4294968000 & 0xFFFFFFFF  # Debezium gives 32-bit ids
    assert visible(low - 1, snapshot)  # committed before xmin
    assert visible(low + 2, snapshot)  # below xmax, not running
    assert not visible(low + 3, snapshot)  # running when the snapshot was taken
    assert not visible(low + 10, snapshot)  # started after
    assert visible(0xFFFFFFF0, "4294967300:4294967310:")  # wrapped: the previous epoch's id
