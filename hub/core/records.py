"""What the core hands back to its runner: records to produce, named by topic id."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
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
    # The record's JSON form (``model_dump(mode="json")``), when the engine made it already: the
    # digest and the value are then both made from it, with one pass over the model.
    content: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, topic_id: str, record: BaseModel, key: str, position: str) -> Upsert:
        return cls(topic_id, key, record, position, content=record.model_dump(mode="json"))

    def value_bytes(self) -> bytes:
        if self.content is not None:
            return orjson.dumps(self.content)  # the same bytes as model_dump_json (tests)
        return self.record.model_dump_json().encode()


@dataclass(frozen=True, slots=True)
class Tombstone:
    """Produce a null value under ``key``: the entity no longer exists in its source."""

    topic_id: str
    key: str
    position: str = field(default="", compare=False)
    snapshot: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Document:
    """Produce ``content`` as JSON under ``key``: a record made in its JSON form directly, without
    a model object (the availability stage makes several per change; a test holds each equal to
    its model's serialisation)."""

    topic_id: str
    key: str
    content: dict[str, Any] = field(repr=False)
    position: str = field(default="", compare=False)
    snapshot: str | None = field(default=None, compare=False)

    def value_bytes(self) -> bytes:
        return orjson.dumps(self.content)


Output = Upsert | Document | Tombstone


def content_digest(content: Mapping[str, Any]) -> str:
    """What tells two JSON contents apart (key order aside): stages keep it of what they published
    so that they publish only what changed."""
    return hashlib.blake2b(
        orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def json_time(moment: datetime) -> str:
    """A time as pydantic writes it in JSON (UTC with Z): for contents made directly as JSON."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
