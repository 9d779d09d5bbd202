"""Is the worker making progress? A judgement that does not trust the framework.

A worker can be alive, say "ready", and consume nothing: every channel then sells from a frozen
truth. ``Liveness`` looks only at facts outside Faust: for each raw partition the worker holds,
where it will process next (the continuity guard's position, moved by the agent itself) and where
the log ends (asked of Kafka). A partition with records waiting whose position has not moved for
``timeout`` seconds is stalled; past half of it the worker reports itself as stalling. An idle
partition (nothing waiting) is never stalled.

Pure and synchronous: the watchdog thread (watchdog.py) feeds it and acts on its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Partition = tuple[str, int]


@dataclass(frozen=True)
class PartitionHealth:
    position: int
    end: int
    idle_for: float  # seconds without progress while records were waiting (0 when none wait)

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


@dataclass(frozen=True)
class Verdict:
    state: str  # "ok", "stalling" (no progress for half the timeout) or "stalled"
    partitions: dict[Partition, PartitionHealth] = field(default_factory=dict)

    @property
    def idle_for(self) -> float:
        return max((p.idle_for for p in self.partitions.values()), default=0.0)

    def describe(self) -> str:
        stuck = {f"{t}[{p}]": (h.position, h.lag) for (t, p), h in self.partitions.items() if h.lag}
        return (
            f"no progress for {self.idle_for:.0f} s with records waiting "
            f"(partition: (next offset, lag)) {stuck}"
        )


class Liveness:
    """Progress per held partition. ``observe`` is called every few seconds with fresh facts."""

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("the stall timeout must be positive")
        self.timeout = timeout
        # per partition: position, when it last moved, the last end Kafka gave
        self._seen: dict[Partition, tuple[int, float, int]] = {}

    def restart(self) -> None:
        """A new assignment (or a takeover just finished): every clock starts again."""
        self._seen.clear()

    def observe(
        self, now: float, positions: Mapping[Partition, int], ends: Mapping[Partition, int]
    ) -> Verdict:
        """``positions``: the next offset to process per held partition; ``ends``: the log end
        offsets (a partition missing from ``ends`` is judged on what was seen before)."""
        health: dict[Partition, PartitionHealth] = {}
        for partition, position in positions.items():
            last = self._seen.get(partition)
            end = ends.get(partition, last[2] if last else position)
            if last is None or last[0] != position or end <= position:
                self._seen[partition] = (position, now, end)  # moved, or nothing waits: progress
                idle = 0.0
            else:
                self._seen[partition] = (position, last[1], end)
                idle = now - last[1]
            health[partition] = PartitionHealth(position, end, idle)
        for gone in set(self._seen) - set(positions):
            del self._seen[gone]
        worst = max((h.idle_for for h in health.values()), default=0.0)
        state = (
            "stalled"
            if worst >= self.timeout
            else "stalling"
            if worst >= self.timeout / 2
            else "ok"
        )
        return Verdict(state, health)
