"""Log records that repeat (a broker that went away) are let through with a growing back-off.

Kafka clients log every failed reconnection (librdkafka's "Connect to ipv4#… failed: Connection
refused", about 20 times a second per client while Kafka is down; aiokafka's "Unable connect to
node …" before): a worker left like that for an hour wrote 250,000 lines. The worker's
confluent-kafka clients log through Python's logging (``KAFKA_LOG``), and the filter lets the first
record of a kind through, then one per back-off period (1 s doubling to 60 s), each saying how
many like it were held back; a kind unseen for a while starts over.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Kind:
    next_at: float
    backoff: float
    held: int = 0
    last_seen: float = 0.0


class RepeatFilter(logging.Filter):
    """Holds back repeats of a record (same logger, level and message template) within a back-off
    that doubles from ``first`` to ``longest`` seconds, for loggers under ``prefixes`` (the hub's
    own lines, such as each dead letter, all pass). Never blocks; keeps one entry per kind."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka", "faust", "mode", "librdkafka"),
        first: float = 1.0,
        longest: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.first, self.longest, self.clock = first, longest, clock
        self.kinds: dict[tuple[str, int, str], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        now = self.clock()
        key = (record.name, record.levelno, _kind_of(record))
        kind = self.kinds.get(key)
        if kind is None or now - kind.last_seen > 2 * self.longest:
            self.kinds[key] = _Kind(next_at=now + self.first, backoff=self.first, last_seen=now)
            return True
        kind.last_seen = now
        if now < kind.next_at:
            kind.held += 1
            return False
        if kind.held:
            record.msg = f"{record.msg} ({kind.held} more like this held back)"
        kind.held = 0
        kind.backoff = min(kind.backoff * 2, self.longest)
        kind.next_at = now + kind.backoff
        return True


def _kind_of(record: logging.LogRecord) -> str:
    """What makes two records alike: the message template, or for librdkafka (whose records all
    share one template) the message with its numbers left out (ports, milliseconds)."""
    if record.name.startswith("librdkafka"):
        return _NUMBERS.sub("#", record.getMessage())
    return str(record.msg)


_NUMBERS = re.compile(r"\d+")
# The logger every confluent-kafka client of the worker logs through (its ``logger`` setting).
KAFKA_LOG = logging.getLogger("librdkafka")


def quiet_repeats(handlers: list[logging.Handler]) -> RepeatFilter:
    """Install one ``RepeatFilter`` on each of ``handlers`` (a filter on a handler sees the
    records of every logger that reaches it)."""
    repeat = RepeatFilter()
    for handler in handlers:
        handler.addFilter(repeat)
    return repeat
