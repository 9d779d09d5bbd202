"""Repeated framework log lines are held back with a growing back-off; the hub's own all pass."""

from __future__ import annotations

import itertools
import logging

from hub.worker.logs import RepeatFilter


def record(
    name: str = "aiokafka.client", msg: str = "Unable connect to node with id %s"
) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (1,), None)


def test_a_reconnect_storm_is_logged_with_a_growing_back_off():
    now = [0.0]
    repeat = RepeatFilter(first=1.0, longest=8.0, clock=lambda: now[0])
    passed = []
    for tick in range(70 * 60):  # a minute of 70 failed reconnections a second
        now[0] = tick / 70
        rec = record()
        if repeat.filter(rec):
            passed.append((now[0], rec.getMessage()))
    # 0, ~1, ~3, ~7, ~15, ~23, … : a handful of lines instead of 4,200, each saying what it held.
    assert 8 <= len(passed) <= 12, passed
    assert passed[0][1] == "Unable connect to node with id 1"
    assert "more like this held back" in passed[1][1]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(passed)]
    assert gaps == sorted(gaps) and max(gaps) <= 8.1


def test_other_kinds_and_the_hubs_own_lines_are_not_held_back():
    repeat = RepeatFilter(clock=lambda: 0.0)
    assert repeat.filter(record())
    assert repeat.filter(record(msg="Heartbeat failed"))  # another kind
    assert all(repeat.filter(record("hub.worker", "dead-lettered %s")) for _ in range(50))
    assert not repeat.filter(record())


def test_a_kind_quiet_for_a_while_starts_over():
    now = [0.0]
    repeat = RepeatFilter(first=1.0, longest=4.0, clock=lambda: now[0])
    assert repeat.filter(record())
    now[0] = 0.5
    assert not repeat.filter(record())
    now[0] = 100.0
    rec = record()
    assert repeat.filter(rec) and "held back" not in rec.getMessage()


def test_librdkafka_records_are_told_apart_by_their_text_not_their_shared_template():
    from hub.worker.logs import RepeatFilter

    clock = [0.0]
    repeat = RepeatFilter(clock=lambda: clock[0])

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, "%s [%s] %s",
                                 ("FAIL", "rdkafka#consumer-1", text), None)  # fmt: skip

    refused = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
    assert repeat.filter(record(refused + " (after 0ms in state CONNECT)"))
    # The same failure a moment later, a number apart: held back.
    assert not repeat.filter(record(refused + " (after 1ms in state CONNECT)"))
    # Another failure of the same client: let through.
    assert repeat.filter(record("Group coordinator lookup failed: Local: Broker transport failure"))
