"""Repairs: the truth read from a source by ``hub repair``, applied over whatever a key was marked.

Step name ``repair``. ``hub repair`` reads the source rows behind the keys it is asked to repair
in a snapshot, notes where that snapshot stands in the source's log (``hub.sources``), and writes
one request per row to the control topic ``hub.repairs``. The worker applies each with
``Engine.repair``: the row replaces the kept one and the keys it repairs are published whatever
their marks said, if the marks are still what ``hub repair`` saw. A key no source row produces
any more is dropped (a tombstone).

A request is JSON:

    {"kind": "row", "system", "table", "key": {column: value}, "row": {column: value} | null,
     "expect": [{"topic_id", "key", "position"}], "position", "snapshot", "committed_at", "id"}
    {"kind": "drop", "system", "topic_id", "key": "<unified key>", "expect", "position",
     "snapshot", "committed_at", "id"}

``expect`` names the keys to repair with the position their marks had when ``hub repair``
looked: a key whose mark moved since is left to the usual rules, so a request applied late (a
worker replaying the topic) changes nothing. Rows only looked up carry no ``expect``.

``snapshot`` (PostgreSQL only) is the snapshot the rows were read in: there, a position cannot
split the changes the read saw from those it did not (a transaction's changes sort by the commit
before it), so the keys' mark is the snapshot until a change from a transaction it did not see.

``row`` holds the values as the system's connector would encode them; null when the row no longer
exists (a delete).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hub.core.debezium import ChangeEvent, SourceInfo
from hub.core.engine import Engine, Outcome
from hub.errors import InvalidEvent

STEP = "repair"
REPAIRS_TOPIC = "hub.repairs"  # the id of the control topic the requests travel on


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str
    position: str = Field(min_length=1)
    committed_at: datetime
    id: str = Field(description="Names the hub repair run that asked for it (logs, dead letters).")


class Expected(BaseModel):
    """A key to repair, and the position its mark had when ``hub repair`` looked (None: none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic_id: str
    key: str
    position: str | None


class RowRepair(_Request):
    kind: Literal["row"] = "row"
    table: str
    key: dict[str, Any] = Field(min_length=1)
    row: dict[str, Any] | None
    expect: list[Expected] = Field(
        default_factory=list, description="The keys this row repairs; empty for a looked-up row."
    )
    snapshot: str | None = Field(
        default=None,
        pattern=r"^\d+:\d+:[\d,]*$",
        description="PostgreSQL: the snapshot the row was read in (pg_current_snapshot()).",
    )

    def event(self) -> ChangeEvent:
        source = SourceInfo("hub-repair", f"raw.{self.system}", "", self.table, self.position,
                            self.committed_at, snapshot=False)  # fmt: skip
        if self.row is None:
            return ChangeEvent("d", self.key, None, source, self.key)
        return ChangeEvent("r", None, self.row, source, self.key)


class DropRepair(_Request):
    kind: Literal["drop"] = "drop"
    topic_id: str
    key: str = Field(min_length=1)
    expect: str | None = Field(description="The position of the key's mark when hub repair looked.")
    snapshot: str | None = Field(default=None, pattern=r"^\d+:\d+:[\d,]*$")


Request = Annotated[RowRepair | DropRepair, Field(discriminator="kind")]
_REQUEST: TypeAdapter[RowRepair | DropRepair] = TypeAdapter(Request)


def encode(request: RowRepair | DropRepair) -> bytes:
    return request.model_dump_json().encode()


def decode(value: bytes | None) -> RowRepair | DropRepair:
    """Parse one request; ``InvalidEvent("bad_repair")`` when it is not one."""
    if value is None:
        raise InvalidEvent("bad_repair", "an empty repair request")
    try:
        return _REQUEST.validate_python(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise InvalidEvent("bad_repair", f"not a repair request: {exc}") from None


class Repairer:
    """Applies repair requests to an engine (pure apart from the engine's stores)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply(self, value: bytes | None, now: datetime) -> tuple[str, Outcome]:
        """The request's system and its outcome. Raises ``InvalidEvent``."""
        request = decode(value)
        if isinstance(request, DropRepair):
            if request.topic_id not in self.engine.topic_for_model.values():
                raise InvalidEvent("bad_repair", f"no unified topic {request.topic_id!r}")
            return request.system, self.engine.drop(
                request.topic_id, request.key, request.position, request.expect, request.snapshot
            )
        if not self.engine.routes(request.system, request.table):
            raise InvalidEvent("bad_repair", f"no mapping for {request.system}:{request.table}")
        expect = {(e.topic_id, e.key): e.position for e in request.expect}
        return request.system, self.engine.repair(
            request.system, request.event(), now, expect, request.snapshot
        )
