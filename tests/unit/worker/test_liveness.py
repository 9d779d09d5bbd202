"""The liveness judgement: records waiting and a position that does not move, per partition."""

from __future__ import annotations

import pytest

from hub.worker.liveness import Liveness

P, Q = ("raw.pos.pos.stock", 0), ("raw.shop.shop.customer", 0)


def test_a_partition_with_records_waiting_and_no_progress_is_stalled_after_the_timeout():
    live = Liveness(timeout=30)
    assert live.observe(0, {P: 10}, {P: 50}).state == "ok"
    assert live.observe(14, {P: 10}, {P: 60}).state == "ok"
    stalling = live.observe(16, {P: 10}, {P: 60})
    assert stalling.state == "stalling" and stalling.idle_for == 16
    stalled = live.observe(30, {P: 10}, {P: 70})
    assert stalled.state == "stalled"
    assert stalled.partitions[P].lag == 60
    assert "raw.pos.pos.stock[0]" in stalled.describe() and "(10, 60)" in stalled.describe()


def test_progress_or_an_idle_partition_is_never_a_stall():
    live = Liveness(timeout=30)
    for second in range(0, 300, 10):  # busy and moving: fine
        assert live.observe(second, {P: second}, {P: second + 500}).state == "ok"
    for second in range(300, 600, 10):  # nothing waits: fine however long
        assert live.observe(second, {P: 1000}, {P: 1000}).state == "ok"


def test_one_stuck_partition_is_a_stall_while_another_moves():
    live = Liveness(timeout=30)
    live.observe(0, {P: 5, Q: 0}, {P: 9, Q: 100})
    verdict = live.observe(31, {P: 5, Q: 90}, {P: 9, Q: 100})
    assert verdict.state == "stalled" and verdict.partitions[Q].idle_for == 0


def test_a_new_assignment_restarts_the_clocks_and_unknown_ends_keep_the_last_judgement():
    live = Liveness(timeout=30)
    live.observe(0, {P: 5}, {P: 9})
    live.restart()
    assert live.observe(40, {P: 5}, {P: 9}).state == "ok"
    assert live.observe(71, {P: 5}, {}).state == "stalled"  # Kafka did not answer for the end
    assert live.observe(80, {}, {}).partitions == {}  # nothing held any more


def test_the_timeout_must_be_positive():
    with pytest.raises(ValueError):
        Liveness(0)
