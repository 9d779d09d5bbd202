from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.connectors import load_definitions
from hub.core.engine import Engine, MemoryStore
from hub.topics import registry

FIXTURES = Path(__file__).parent / "fixtures" / "debezium"
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Recorded:
    """One record captured from the real connectors (tests/tools/record_fixtures.py)."""

    topic: str
    key: bytes | None
    value: bytes | None

    @property
    def system(self) -> str:
        return registry().by_name(self.topic).source.system  # type: ignore[union-attr]

    @property
    def envelope(self) -> dict[str, Any] | None:
        return json.loads(self.value) if self.value is not None else None

    @property
    def op(self) -> str | None:
        return self.envelope["op"] if self.value is not None else None


def recorded(scenario: str) -> list[Recorded]:
    return [
        Recorded(r["topic"], r["key"].encode() if r["key"] is not None else None,
                 r["value"].encode() if r["value"] is not None else None)
        for r in json.loads((FIXTURES / f"{scenario}.json").read_text())
    ]  # fmt: skip


def pick(scenario: str, table_topic_suffix: str, op: str | None, nth: int = 0) -> Recorded:
    """The nth record of ``scenario`` on the raw topic ending in ``table_topic_suffix`` with ``op``
    (``None``: a tombstone)."""
    found = [r for r in recorded(scenario) if r.topic.endswith(table_topic_suffix) and r.op == op]
    return found[nth]


def new_engine(**options: Any) -> Engine:
    """An engine over the checkout's definitions; ``options`` go to ``Engine`` (e.g. max_leap)."""
    reg = registry()
    return Engine(
        [d.engine_view() for d in load_definitions().values()],
        {spec.model: spec.id for spec in reg.topics.values() if spec.model},
        MemoryStore(),
        **options,
    )


@pytest.fixture
def engine() -> Engine:
    return new_engine()
