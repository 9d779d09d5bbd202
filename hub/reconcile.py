"""``hub reconcile``: the source databases' truth against the unified topics, key by key.

The truth is read with SQL (every captured table, whole), turned into the value encoding Debezium
uses for that database, and mapped by the same definitions and engine as the worker. The unified
topics are read to their current end (latest value per key; a tombstone removes the key). Every
difference is reported: keys missing from a topic, extra keys, and keys whose canonical content
differs (provenance fields — positions, times — are not compared).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from hub.connectors import ConnectorDefinition, load_definitions
from hub.core.debezium import ChangeEvent, SourceInfo
from hub.core.engine import PROVENANCE, Engine, MemoryStore
from hub.core.records import Upsert
from hub.errors import InvalidEvent
from hub.kafka_io import read_to_end
from hub.settings import HubSettings
from hub.topics import registry

EPOCH_DAY = date(1970, 1, 1)
TRUTH = "truth"


def debezium_value(value: Any, kind: str) -> Any:
    """A value read with SQL, encoded as the connector encodes it (see connectors/*.yaml)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # timestamptz → ZonedTimestamp
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        micros = int(
            (value.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 10**6
        )
        # PostgreSQL timestamp → MicroTimestamp; MariaDB DATETIME → Timestamp (milliseconds).
        return micros if kind == "postgres" else micros // 1000
    if isinstance(value, date):
        return (value - EPOCH_DAY).days
    if isinstance(value, Decimal):
        return str(value)  # decimal.handling.mode=string keeps the column's scale
    return value


@dataclass
class TopicReport:
    topic: str
    source_keys: int = 0
    topic_keys: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.wrong)


@dataclass
class Report:
    topics: dict[str, TopicReport]
    invalid: list[dict[str, str]]  # source rows the mappings cannot read (they are in the DLQ too)

    @property
    def agree(self) -> bool:
        return not self.invalid and all(t.differences == 0 for t in self.topics.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "invalid_source_rows": self.invalid,
            "topics": {
                name: {
                    "source_keys": t.source_keys,
                    "topic_keys": t.topic_keys,
                    "missing": t.missing,
                    "extra": t.extra,
                    "wrong": t.wrong,
                }
                for name, t in self.topics.items()
            },
        }


def _primary_key(conn: Any, kind: str, table: str) -> list[str]:
    schema, name = table.split(".", 1)
    with conn.cursor() as cur:
        if kind == "postgres":
            cur.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND i.indrelid = %s::regclass"
                " ORDER BY array_position(i.indkey, a.attnum)",
                (table,),
            )
        else:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s"
                " AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (schema, name),
            )
        return [str(row[0]) for row in cur.fetchall()]


def _rows(conn: Any, kind: str, table: str) -> Iterable[dict[str, Any]]:
    quoted = ".".join(
        f'"{part}"' if kind == "postgres" else f"`{part}`" for part in table.split(".")
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - table names come from connectors/*.yaml
        columns = [d[0] for d in cur.description]
        for values in cur.fetchall():
            yield {c: debezium_value(v, kind) for c, v in zip(columns, values, strict=True)}


def truth(
    definitions: Mapping[str, ConnectorDefinition], connections: Mapping[str, Any], now: datetime
) -> tuple[dict[str, dict[str, dict[str, Any]]], list[dict[str, str]]]:
    """Canonical records the sources say should exist: topic name → key → record (JSON form)."""
    reg = registry()
    topic_names = {spec.id: spec.name for spec in reg.topics.values()}
    expected: dict[str, dict[str, dict[str, Any]]] = {
        spec.name: {} for spec in reg.topics.values() if spec.kind == "unified"
    }
    invalid: list[dict[str, str]] = []
    for system, definition in definitions.items():
        if system not in connections:
            continue
        engine = Engine(
            [definition.engine_view()],
            {spec.model: spec.id for spec in reg.topics.values() if spec.model},
            MemoryStore(),
        )
        kind, conn = definition.connection.kind, connections[system]
        # Looked-up tables first, so every lookup finds its row.
        tables = sorted(definition.tables, key=lambda t: (system, t) not in engine.targets)
        for table in tables:
            key_columns = _primary_key(conn, kind, table)
            for row in _rows(conn, kind, table):
                key = {column: row[column] for column in key_columns}
                event = ChangeEvent(
                    "r", None, row, SourceInfo(kind, f"raw.{system}", definition.connection.database,
                                               table, TRUTH, now, True), key,
                )  # fmt: skip
                try:
                    outcome = engine.apply(system, event, now)
                except InvalidEvent as error:
                    invalid.append({"system": system, "table": table, "key": orjson.dumps(key).decode(),
                                    "reason": error.reason, "detail": error.detail})  # fmt: skip
                    continue
                for output in outcome.outputs:
                    if isinstance(output, Upsert):
                        record = output.record.model_dump(mode="json")
                        expected[topic_names[output.topic_id]][output.key] = record
        conn.commit()
    return expected, invalid


def topic_state(settings: HubSettings) -> dict[str, dict[str, dict[str, Any]]]:
    """The latest value of every key on every unified topic, read to the current end."""
    specs = [spec for spec in registry().topics.values() if spec.kind == "unified"]
    state: dict[str, dict[str, dict[str, Any]]] = {spec.name: {} for spec in specs}
    for msg in read_to_end(settings.bootstrap, specs):
        topic, key, value = msg.topic() or "", (msg.key() or b"").decode(), msg.value()
        if value is None:
            state[topic].pop(key, None)
        else:
            state[topic][key] = orjson.loads(value)
    return state


def compare(
    expected: Mapping[str, Mapping[str, dict[str, Any]]],
    actual: Mapping[str, Mapping[str, dict[str, Any]]],
) -> dict[str, TopicReport]:
    reports = {}
    for topic, want in expected.items():
        have = actual.get(topic, {})
        report = TopicReport(topic, len(want), len(have))
        report.missing = sorted(set(want) - set(have))
        report.extra = sorted(set(have) - set(want))
        for key in sorted(set(want) & set(have)):
            diff = {
                name: [want[key].get(name), have[key].get(name)]
                for name in sorted(set(want[key]) | set(have[key]))
                if name not in PROVENANCE and want[key].get(name) != have[key].get(name)
            }
            if diff:
                report.wrong[key] = diff
        reports[topic] = report
    return reports


def reconcile(settings: HubSettings, wait: float) -> Report:
    """Compare until they agree or ``wait`` seconds pass (changes may still be in flight)."""
    from hub.stack.manager import Stack

    stack = Stack(settings)
    definitions = load_definitions()
    deadline = time.monotonic() + wait
    while True:
        connections = {
            system: stack.open(system) for system in definitions if system in stack.sources
        }
        try:
            expected, invalid = truth(definitions, connections, datetime.now(UTC))
        finally:
            for conn in connections.values():
                conn.close()
        report = Report(compare(expected, topic_state(settings)), invalid)
        if report.agree or time.monotonic() >= deadline:
            return report
        time.sleep(2)


def print_report(report: Report, console: Console, examples: int = 10) -> None:
    table = Table(title="Sources vs unified topics")
    for column in ("topic", "keys in sources", "keys on topic", "missing", "extra", "wrong values"):
        table.add_column(column, justify="right" if column != "topic" else "left")
    for t in report.topics.values():
        style = "green" if t.differences == 0 else "red"
        table.add_row(f"[{style}]{t.topic}[/]", str(t.source_keys), str(t.topic_keys),
                      str(len(t.missing)), str(len(t.extra)), str(len(t.wrong)))  # fmt: skip
    console.print(table)
    for t in report.topics.values():
        for label, keys in (("missing on", t.missing), ("extra on", t.extra)):
            if keys:
                shown = ", ".join(keys[:examples]) + (" …" if len(keys) > examples else "")
                console.print(f"[red]{len(keys)} keys {label} {t.topic}[/]: {shown}")
        for key, diff in list(t.wrong.items())[:examples]:
            fields = "; ".join(
                f"{name}: source {a!r} ≠ topic {b!r}" for name, (a, b) in diff.items()
            )
            console.print(f"[red]{t.topic} {key}[/]: {fields}")
    for row in report.invalid[:examples]:
        console.print(f"[yellow]unmappable source row[/] {row['system']}:{row['table']} {row['key']}: "
                      f"{row['reason']} {row['detail']}")  # fmt: skip
    verdict = "[bold green]agree[/]" if report.agree else "[bold red]differ[/]"
    console.print(f"Sources and unified topics {verdict}.")
