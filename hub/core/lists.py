"""Lists kept in a ``Store`` that any amount of appending costs the same per item: a head entry
holding the last, partial chunk and how many full chunks of ``CHUNK`` items are stored behind it
(``<head>#0``, ``<head>#1``, …). Each append reads and writes a bounded amount, however long the
list (each write is a changelog record); reading it all reads every chunk.

Used for the rows that looked a row up (engine) and for the rows due to expire in one time bucket
(retention)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

CHUNK = 256


class Store(Protocol):
    def get(self, ref: str) -> dict[str, Any] | None: ...

    def put(self, ref: str, value: dict[str, Any] | None) -> None: ...


class ChunkedList:
    """The list whose head is ``head`` in ``store``."""

    def __init__(self, store: Store, head: str) -> None:
        self.store, self.head = store, head

    def _head(self, head: dict[str, Any] | None = None) -> dict[str, Any]:
        head = head if head is not None else self.store.get(self.head)
        if head is None:
            return {"full": 0, "tail": []}
        if "tail" not in head:  # written by an earlier version: {item: 1, ...}
            return {"full": 0, "tail": list(head)}
        return head

    def append(self, item: str) -> None:
        head = self._head()
        self._write(head["full"], [*head["tail"], item])

    def _write(self, full: int, tail: list[str]) -> None:
        while len(tail) >= CHUNK:
            self.store.put(f"{self.head}#{full}", {"deps": tail[:CHUNK]})
            full, tail = full + 1, tail[CHUNK:]
        self.store.put(self.head, {"full": full, "tail": tail})

    def items(self) -> list[str]:
        stored = self.store.get(self.head)
        if not stored:
            return []
        head = self._head(stored)
        chunks = (self.store.get(f"{self.head}#{n}") or {} for n in range(head["full"]))
        return [item for chunk in chunks for item in chunk.get("deps", [])] + list(head["tail"])

    def drop(self) -> None:
        """Delete the list, head and chunks."""
        head = self.store.get(self.head)
        if head is None:
            return
        for n in range(head.get("full", 0)):
            self.store.put(f"{self.head}#{n}", None)
        self.store.put(self.head, None)

    def rewrite(self, items: Iterable[str]) -> None:
        """Replace the list by ``items`` (chunks no longer needed are deleted)."""
        kept = list(items)
        before = (self.store.get(self.head) or {}).get("full", 0)
        if not kept:
            self.drop()
            return
        self._write(0, kept)
        for n in range(len(kept) // CHUNK, before):
            self.store.put(f"{self.head}#{n}", None)
