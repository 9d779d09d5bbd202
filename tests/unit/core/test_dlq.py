from __future__ import annotations

import pytest

from hub.core.dlq import DeadLetterBreaker, Provenance, StreamBreakers, dead_letter_headers
from hub.errors import DeadLetterFlood, InvalidEvent


def test_headers_carry_provenance_and_reason():
    headers = dict(
        dead_letter_headers(
            Provenance("raw.pos.pos.stock", 3, 42, 1700),
            InvalidEvent("bad_value", "qty='x'"),
            "normalise",
            "w1",
        )
    )
    assert headers == {
        "hub.dlq.topic": b"raw.pos.pos.stock",
        "hub.dlq.partition": b"3",
        "hub.dlq.offset": b"42",
        "hub.dlq.step": b"normalise",
        "hub.dlq.reason": b"bad_value",
        "hub.dlq.detail": b"qty='x'",
        "hub.dlq.worker": b"w1",
        "hub.dlq.timestamp_ms": b"1700",
    }


def test_breaker_trips_on_consecutive_invalid():
    breaker = DeadLetterBreaker(max_consecutive=3, max_ratio=1.0, window=100)
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)  # a good event resets the run
    breaker.record(False)
    breaker.record(False)
    with pytest.raises(DeadLetterFlood, match="3 invalid events in a row"):
        breaker.record(False)


def test_breaker_trips_on_ratio_once_window_is_full():
    breaker = DeadLetterBreaker(max_consecutive=1000, max_ratio=0.5, window=10)
    for valid in [False, True] * 4 + [False]:  # 5 of 9: window not full yet
        breaker.record(valid)
    with pytest.raises(DeadLetterFlood, match="6 of the last 10"):
        breaker.record(False)


def test_breaker_forgets_old_invalid_events():
    breaker = DeadLetterBreaker(max_consecutive=1000, max_ratio=0.5, window=4)
    for valid in [False, False, True, True, True, True, False, False, True, True]:
        breaker.record(valid)  # never more than 2 of the last 4


@pytest.mark.parametrize("args", [(0, 0.5, 10), (5, 0.0, 10), (5, 1.5, 10), (5, 0.5, 0)])
def test_breaker_rejects_nonsense_limits(args):
    with pytest.raises(ValueError):
        DeadLetterBreaker(*args)


def test_a_flood_on_one_stream_trips_although_other_streams_are_valid():
    # Regression: one breaker for all raw topics was reset by another topic's valid events
    # interleaved with the flood (a worker catching up on the shop while the POS sent garbage),
    # so the worker dead-lettered the flood and never stopped.
    breakers = StreamBreakers(max_consecutive=5, max_ratio=1.0, window=100)
    for _ in range(4):
        breakers.record(("raw.pos.stock", 0), False)
        breakers.record(("raw.shop.customer", 0), True)
    with pytest.raises(DeadLetterFlood, match=r"raw\.pos\.stock\[0\]: 5 invalid events in a row"):
        breakers.record(("raw.pos.stock", 0), False)


def test_stream_breakers_check_their_limits_at_once():
    with pytest.raises(ValueError):
        StreamBreakers(0, 0.5, 10)
