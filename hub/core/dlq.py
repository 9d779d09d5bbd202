"""Dead-letter policy: what a dead-lettered record carries, and when to stop dead-lettering."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hub.errors import DeadLetterFlood, InvalidEvent


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record was read, so it can be found and replayed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def dead_letter_headers(
    provenance: Provenance, error: InvalidEvent, step: str, worker: str
) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-lettered record. Key and value stay exactly as they were read."""
    headers = [
        ("hub.dlq.topic", provenance.topic),
        ("hub.dlq.partition", str(provenance.partition)),
        ("hub.dlq.offset", str(provenance.offset)),
        ("hub.dlq.step", step),
        ("hub.dlq.reason", error.reason),
        ("hub.dlq.detail", error.detail[:2000]),
        ("hub.dlq.worker", worker),
    ]
    if provenance.timestamp_ms is not None:
        headers.append(("hub.dlq.timestamp_ms", str(provenance.timestamp_ms)))
    return [(name, value.encode()) for name, value in headers]


class DeadLetterBreaker:
    """Trips when the DLQ would swallow a stream.

    ``record(valid)`` is called once per input of one stream (one raw topic partition: "in a
    row" means in that stream's order). It raises ``DeadLetterFlood`` after ``max_consecutive``
    invalid inputs in a row, or when more than ``max_ratio`` of the last ``window`` inputs were
    invalid (checked once the window is full). See ``StreamBreakers`` for several streams.
    """

    def __init__(self, max_consecutive: int, max_ratio: float, window: int) -> None:
        if max_consecutive < 1 or not 0 < max_ratio <= 1 or window < 1:
            raise ValueError(
                "max_consecutive >= 1, 0 < max_ratio <= 1 and window >= 1 are required"
            )
        self.max_consecutive = max_consecutive
        self.max_ratio = max_ratio
        self._recent: deque[bool] = deque(maxlen=window)
        self._invalid_in_window = 0
        self.consecutive = 0

    def record(self, valid: bool) -> None:
        if len(self._recent) == self._recent.maxlen and not self._recent[0]:
            self._invalid_in_window -= 1
        self._recent.append(valid)
        if valid:
            self.consecutive = 0
            return
        self._invalid_in_window += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise DeadLetterFlood(
                f"{self.consecutive} invalid events in a row: stopping instead of dead-lettering "
                "the whole stream. Inspect the DLQ topic and the source, then restart the worker."
            )
        window = self._recent.maxlen or 1
        if len(self._recent) == window and self._invalid_in_window / window > self.max_ratio:
            raise DeadLetterFlood(
                f"{self._invalid_in_window} of the last {window} events were invalid "
                f"(limit {self.max_ratio:.0%}): stopping. Inspect the DLQ topic and the source."
            )


class StreamBreakers:
    """One ``DeadLetterBreaker`` per input stream.

    A worker reads several raw topics at once, interleaved in no fixed order. A breaker shared
    by all of them never saw a flood on one topic "in a row" while the others had valid events
    (a worker catching up on the shop's history reset the count between every two bad POS
    records, and never stopped): each stream is judged on its own.
    """

    def __init__(self, max_consecutive: int, max_ratio: float, window: int) -> None:
        DeadLetterBreaker(max_consecutive, max_ratio, window)  # the limits are checked now
        self.limits = (max_consecutive, max_ratio, window)
        self.streams: dict[tuple[str, int], DeadLetterBreaker] = {}

    def record(self, stream: tuple[str, int], valid: bool) -> None:
        """``DeadLetterBreaker.record`` for ``stream`` (topic, partition); raises
        ``DeadLetterFlood`` naming the stream."""
        breaker = self.streams.get(stream)
        if breaker is None:
            breaker = self.streams[stream] = DeadLetterBreaker(*self.limits)
        try:
            breaker.record(valid)
        except DeadLetterFlood as flood:
            raise DeadLetterFlood(f"{stream[0]}[{stream[1]}]: {flood}") from None
