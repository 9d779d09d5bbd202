"""What the core hands back to its runner: records to produce, named by topic id."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class Upsert:
    """Produce ``record`` as JSON under ``key`` to the topic declared as ``topic_id``."""

    topic_id: str
    key: str
    record: BaseModel
    # The source position this output stands for; travels as the header hub.source_position.
    position: str = field(default="", compare=False)
    # A repair's PostgreSQL snapshot ("xmin:xmax:xip,…"): the key's mark until a newer change
    # (hub.core.positions.visible); travels as the header hub.repair_snapshot.
    snapshot: str | None = field(default=None, compare=False)

    def value_bytes(self) -> bytes:
        return self.record.model_dump_json().encode()


@dataclass(frozen=True, slots=True)
class Tombstone:
    """Produce a null value under ``key``: the entity no longer exists in its source."""

    topic_id: str
    key: str
    position: str = field(default="", compare=False)
    snapshot: str | None = field(default=None, compare=False)


Output = Upsert | Tombstone
