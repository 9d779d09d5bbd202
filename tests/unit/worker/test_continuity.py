"""The guard that notices records skipped after a rebalance."""

from __future__ import annotations

import pytest

from hub.worker.continuity import ContinuityGuard, OffsetGap


def test_consecutive_offsets_from_the_committed_one_pass():
    guard = ContinuityGuard()
    guard.reset({("raw.a", 0): 40})
    for offset in range(40, 45):
        guard.check("raw.a", 0, offset)
    assert guard.expected[("raw.a", 0)] == 45


def test_starting_past_the_committed_offset_is_a_gap():
    guard = ContinuityGuard()
    guard.reset({("raw.a", 0): 40})
    with pytest.raises(OffsetGap, match=r"raw.a\[0\]: got offset 42, expected 40: 2 records"):
        guard.check("raw.a", 0, 42)


def test_a_hole_in_the_middle_is_a_gap_even_of_one_record():
    guard = ContinuityGuard()
    guard.reset({("raw.a", 0): 0})
    guard.check("raw.a", 0, 0)
    with pytest.raises(OffsetGap, match="1 records were skipped"):
        guard.check("raw.a", 0, 2)


def test_rereading_older_offsets_is_allowed_and_still_expects_the_next_new_one():
    guard = ContinuityGuard()
    guard.reset({("raw.a", 0): 10})
    for offset in (10, 11, 12, 5, 6):
        guard.check("raw.a", 0, offset)
    guard.check("raw.a", 0, 13)
    with pytest.raises(OffsetGap):
        guard.check("raw.a", 0, 20)


def test_a_new_assignment_replaces_what_was_expected():
    guard = ContinuityGuard()
    guard.reset({("raw.a", 0): 10})
    guard.check("raw.a", 0, 10)
    guard.reset({("raw.a", 0): 3})  # the group committed up to 3 only: read again from 3
    guard.check("raw.a", 0, 3)
    guard.reset({("raw.a", 0): 11})
    with pytest.raises(OffsetGap):
        guard.check("raw.a", 0, 12)


def test_partitions_without_a_known_start_are_checked_from_their_first_record():
    guard = ContinuityGuard()
    guard.check("raw.c", 0, 7)
    guard.check("raw.c", 0, 8)
    with pytest.raises(OffsetGap):
        guard.check("raw.c", 0, 10)


def test_a_topic_written_in_transactions_has_holes_and_the_consumers_position_steps_markers():
    guard = ContinuityGuard(frozenset({"hub.stock.levels"}))
    guard.reset({("hub.stock.levels", 0): 10, ("raw", 0): 0})
    guard.check("hub.stock.levels", 0, 10)
    guard.check("hub.stock.levels", 0, 12)  # 11 was a commit marker
    assert guard.expected[("hub.stock.levels", 0)] == 13
    guard.advance({("hub.stock.levels", 0): 14, ("raw", 0): 5})  # past the next marker
    assert guard.expected == {("hub.stock.levels", 0): 14, ("raw", 0): 0}
    guard.advance({("hub.stock.levels", 0): 12})  # never back
    assert guard.expected[("hub.stock.levels", 0)] == 14
    with pytest.raises(OffsetGap):
        guard.check("raw", 0, 7)
