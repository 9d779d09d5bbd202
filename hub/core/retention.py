"""Declared retention: a row of a table whose rows close (a till ticket paid or voided, a web
order fulfilled or cancelled) leaves the engine's state a declared time after it closed, and the
rows that looked it up (its lines) leave with it. Without it the state grows with history: every
ticket and every line ever sold stays, and a takeover reads all of them back.

Time is the source's: a row closed by a change committed at ``t`` leaves once the engine has
applied a change of its system committed at ``t + keep`` or later. A replay of the same changes
therefore expires the same rows at the same points, whatever the wall clock says, and nothing
expires while a source is idle.

Declared per system (``connectors/<system>.yaml``)::

    retention:
      pos.ticket: {when: {status: [C, V]}, keep: 15m}

A row is closed when every column named under ``when`` holds one of its values; a deleted row is
closed too. The rows due in each ``BUCKET`` seconds are listed in the state (``expiry:<bucket>``,
a ``ChunkedList``) and the buckets in use in ``expiry:buckets``, so that finding what is due reads
one entry, whatever the state holds; the engine looks every few seconds of source time.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.core.lists import ChunkedList, Store

BUCKET = 60  # seconds of source time per list of rows due
INDEX = "expiry:buckets"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RetentionSpec(BaseModel):
    """When a table's rows are closed, and how long a closed row is kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: dict[str, tuple[Any, ...]] = Field(
        min_length=1, description="column → the values that close a row (all columns must match)"
    )
    keep: timedelta = Field(
        description="how long after its closing change a row is kept: 90s, 15m, 2h, 7d"
    )

    @field_validator("keep", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            found = _DURATION.match(value)
            if found is None:
                raise ValueError(f"keep: {value!r} is not a duration like 90s, 15m, 2h or 7d")
            return timedelta(seconds=int(found[1]) * _UNITS[found[2]])
        return value

    @field_validator("keep")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("keep must be longer than zero")
        return value

    def closes(self, row: Mapping[str, Any]) -> bool:
        return all(row.get(column) in values for column, values in self.when.items())


def bucket_of(deadline: float) -> int:
    """The bucket a row due at ``deadline`` (epoch seconds) is listed in: the first bucket end at
    or after it (a row never leaves early)."""
    return math.ceil(deadline / BUCKET) * BUCKET


class Expiry:
    """The rows due to leave ``store``, by bucket."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _buckets(self) -> list[int]:
        index = self.store.get(INDEX)
        return list(index["buckets"]) if index else []

    def schedule(self, ref: str, deadline: float, before: float | None) -> None:
        """List ``ref`` as due at ``deadline``; ``before``: the deadline it was listed with
        already, if any (the same bucket is not listed twice)."""
        bucket = bucket_of(deadline)
        if before is not None and bucket_of(before) == bucket:
            return
        ChunkedList(self.store, f"expiry:{bucket}").append(ref)
        buckets = self._buckets()
        if bucket not in buckets:
            bisect.insort(buckets, bucket)
            self.store.put(INDEX, {"buckets": buckets})

    def next_due(self) -> int | None:
        buckets = self._buckets()
        return buckets[0] if buckets else None

    def take(self, clock: float) -> list[str]:
        """The rows of every bucket ended by ``clock``, their lists deleted: the caller expires
        those whose deadline (kept in the row) has passed; a row listed again later is skipped."""
        buckets = self._buckets()
        due = [b for b in buckets if b <= clock]
        if not due:
            return []
        refs: list[str] = []
        for bucket in due:
            listed = ChunkedList(self.store, f"expiry:{bucket}")
            refs += listed.items()
            listed.drop()
        rest = buckets[len(due) :]
        self.store.put(INDEX, {"buckets": rest} if rest else None)
        return refs
