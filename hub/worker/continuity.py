"""Every raw record processed, in offset order, after each rebalance: a guard against skipped offsets.

Faust 0.15.3 can lose records it had fetched when a rebalance clears its in-memory queues
(faust-streaming issue #596): the partition then goes on past them, and its offset commits either
stop for good (a gap of more than one offset) or step over the lost records (a gap of one, #606).

Raw topics are neither compacted nor written in transactions, so their offsets have no holes. After
each assignment the worker expects, per partition, the group's committed offset (or the log start)
first, then each next offset. A record beyond that means records were skipped: the worker asks for
a fresh start, which reads again from the committed offsets (replays are deduplicated).

Topics the hub writes in transactions itself (the stock feed) have holes: each commit writes a
marker, which takes an offset and is never delivered. Those are not checked for gaps; their
position is the consumer's own (``advance``), which librdkafka moves past the markers, so that the
liveness guard does not take a marker for a record waiting.
"""

from __future__ import annotations

from collections.abc import Mapping

Partition = tuple[str, int]

# The exit status of a worker that asks its supervisor for a fresh start (EX_TEMPFAIL).
EXIT_RESTART = 75


class OffsetGap(RuntimeError):
    """Records of a partition were skipped: the worker must start afresh."""


class ContinuityGuard:
    def __init__(self, gapped: frozenset[str] = frozenset()) -> None:
        self.expected: dict[Partition, int] = {}
        self.gapped = gapped  # topics written in transactions: their offsets have holes

    def reset(self, starts: Mapping[Partition, int]) -> None:
        """A new assignment: where each partition must resume."""
        self.expected = dict(starts)

    def check(self, topic: str, partition: int, offset: int) -> None:
        """Record that ``offset`` is being processed; ``OffsetGap`` when records before it were
        skipped. An offset below the expected one is a re-read (harmless: deduplicated)."""
        want = self.expected.get((topic, partition))
        if want is not None and offset > want and topic not in self.gapped:
            raise OffsetGap(
                f"{topic}[{partition}]: got offset {offset}, expected {want}: "
                f"{offset - want} records were skipped"
            )
        self.expected[(topic, partition)] = max(offset + 1, want or 0)

    def advance(self, positions: Mapping[Partition, int]) -> None:
        """The consumer's positions of partitions of gapped topics (past their markers)."""
        for partition, offset in positions.items():
            if partition[0] not in self.gapped:
                continue  # a hole there is a gap: only records move it
            want = self.expected.get(partition)
            if want is not None and offset > want:
                self.expected[partition] = offset
