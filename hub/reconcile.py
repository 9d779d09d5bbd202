"""``hub reconcile``: the source databases' truth against the unified topics, key by key.

The truth is read with SQL (every captured table, whole), turned into the value encoding Debezium
uses for that database, and mapped by the same definitions and engine as the worker. The unified
topics are read to their current end (latest value per key; a tombstone removes the key). Every
difference is reported: keys missing from a topic, extra keys, and keys whose canonical content
differs (provenance fields — positions, times — are not compared).

Availability is recomputed from that truth with the same stage and network file as the worker: the
figures of the source rows as they are now. Alerts are not compared: whether one fires depends on
the path the figures took (hysteresis), not only on where they are.

Golden customers and links are recomputed likewise, with the same identity rules and the manual
decisions in force, and without the records erased (whose rows the sources still hold until they
delete them): the result does not depend on the order the records arrived in. Merge and split
events and erasure events are not compared: they tell the path, not where it ends.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from hub.connectors import ConnectorDefinition, load_definitions
from hub.core import availability, golden
from hub.core.debezium import ChangeEvent, SourceInfo
from hub.core.engine import PROVENANCE, Engine, MemoryStore, row_ref
from hub.core.identity import Decisions, Rules
from hub.core.records import Document, Tombstone, Upsert
from hub.errors import InvalidEvent, StackError
from hub.kafka_io import header, read_compacted, read_to_end
from hub.models import MODELS
from hub.settings import HubSettings
from hub.sources import connect, login_for
from hub.stock import load_network
from hub.topics import registry
from hub.worker.output import POSITION_HEADER

EPOCH_DAY = date(1970, 1, 1)
ALERTS = "unified.alerts"
PATHS = frozenset({ALERTS, golden.EVENTS, golden.ERASURES})  # events: not compared
# Where each location's level came from, inside an availability figure's explanation; and the
# change that made the figure: provenance too.
SOURCE_OF = frozenset({"source_position", "source_committed_at"})
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
    unchecked: dict[str, str] = field(default_factory=dict)  # system → why it was not read

    @property
    def agree(self) -> bool:
        """Every key of every system read agrees (systems that could not be read are named)."""
        return not self.invalid and all(t.differences == 0 for t in self.topics.values())

    def differing(self) -> list[str]:
        """Every key that differs, on any topic."""
        return differing_keys(self.topics)

    def as_json(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "unchecked_systems": self.unchecked,
            "repair": repair_command(self.differing()),
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


@dataclass(frozen=True)
class Origin:
    """A source row behind a unified key: what ``hub repair`` reads again."""

    system: str
    table: str
    key: dict[str, Any]
    row: dict[str, Any]


@dataclass
class Truth:
    """What the sources say: topic name → key → canonical record (JSON form); for every key the
    rows it is made of (the rows it looks up first, then its own); rows the mappings refuse."""

    expected: dict[str, dict[str, dict[str, Any]]]
    origins: dict[tuple[str, str], list[Origin]] = field(default_factory=dict)
    invalid: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Identity:
    """What the identity stage resolves with besides the records: its rules, the manual
    decisions in force, and which record refs were erased."""

    rules: Rules
    decisions: Decisions
    erased: Callable[[str], bool]


def truth(
    definitions: Mapping[str, ConnectorDefinition], connections: Mapping[str, Any], now: datetime,
    identity: Identity | None = None,
) -> Truth:  # fmt: skip
    """Map every row of every captured table of the ``connections``' systems."""
    reg = registry()
    topic_names = {spec.id: spec.name for spec in reg.topics.values()}
    result = Truth({spec.name: {} for spec in reg.topics.values()
                    if spec.kind == "unified" and spec.id not in PATHS})  # fmt: skip
    for system, definition in definitions.items():
        if system not in connections:
            continue
        store = MemoryStore()
        engine = Engine(
            [definition.engine_view()],
            {spec.model: spec.id for spec in reg.topics.values() if spec.model},
            store,
        )
        kind, conn = definition.connection.kind, connections[system]
        made_of: dict[tuple[str, str], Origin] = {}
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
                    result.invalid.append({"system": system, "table": table, "key": orjson.dumps(key).decode(),
                                           "reason": error.reason, "detail": error.detail})  # fmt: skip
                    continue
                for output in outcome.outputs:
                    if isinstance(output, Upsert):
                        name = topic_names[output.topic_id]
                        result.expected[name][output.key] = output.record.model_dump(mode="json")
                        made_of[(name, output.key)] = Origin(system, table, key, row)
        conn.commit()
        looked_up = _looked_up_by(engine, store)
        for where, origin in made_of.items():
            ref = row_ref(system, origin.table, origin.key)
            result.origins[where] = [*looked_up.get(ref, []), origin]
    _availability(result, topic_names, now)
    if identity is not None:
        _golden(result, topic_names, now, identity)
    return result


def _golden(result: Truth, topic_names: Mapping[str, str], now: datetime,
            identity: Identity) -> None:  # fmt: skip
    """The golden customers and links of the truth's customer records, as the worker's identity
    stage makes them (erased records left out: their rows may still be in the sources)."""
    records = result.expected[topic_names[golden.RECORDS]]
    for ref in [ref for ref in records if identity.erased(ref)]:
        del records[ref]
    # All at once, as a new worker group's state is made (one resolution per component).
    stage = golden.IdentityStage(identity.rules, MemoryStore())
    outcome = stage.seed(records, {}, {}, identity.decisions.made, (), now)
    for output in outcome.outputs:
        if isinstance(output, Document) and output.topic_id not in PATHS:
            result.expected[topic_names[output.topic_id]][output.key] = output.content


def _availability(result: Truth, topic_names: Mapping[str, str], now: datetime) -> None:
    """The availability figures of the truth's inventory levels, as the worker's stage makes them."""
    stage = availability.AvailabilityStage(load_network(), MemoryStore())
    figures = result.expected[topic_names[availability.TOPIC]]
    for key, level in sorted(result.expected[topic_names[availability.INVENTORY]].items()):
        try:
            outcome = stage.apply(key, level, level["source_position"], now)
        except InvalidEvent as error:
            result.invalid.append({"system": level["source_system"], "table": availability.INVENTORY,
                                   "key": key, "reason": error.reason, "detail": error.detail})  # fmt: skip
            continue
        for output in outcome.outputs:
            if isinstance(output, Document):
                figures[output.key] = output.content
            elif isinstance(output, Tombstone) and output.topic_id == availability.TOPIC:
                figures.pop(output.key, None)


def _looked_up_by(engine: Engine, store: MemoryStore) -> dict[str, list[Origin]]:
    """Row ref → the kept rows it looked up (from the engine's lists of dependents)."""
    found: dict[str, list[Origin]] = {}
    for ref, value in list(store.items()):
        if not ref.startswith("row:") or "row" not in value:
            continue
        _, system, table, key = ref.split(":", 3)
        target = Origin(system, table, orjson.loads(key), value["row"])
        for dependent in engine.dependents(ref):
            found.setdefault(dependent, []).append(target)
    return found


@dataclass
class TopicState:
    """The unified topics read to their current end: the latest value of every key (topic name
    → key → record), and the position of every key's latest record, tombstones included (what
    the worker's marks are)."""

    records: dict[str, dict[str, dict[str, Any]]]
    marks: dict[tuple[str, str], str]

    def of_systems(self, systems: set[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """The records of ``systems`` only (an availability figure: made of their levels only)."""
        return {topic: {k: v for k, v in records.items() if _made_of(v) <= systems}
                for topic, records in self.records.items()}  # fmt: skip


def _made_of(record: Mapping[str, Any]) -> set[str]:
    """The systems a record comes from: its own, those of the levels an availability figure
    adds up (the change that last made it may be the hub's own, a new network file), those of a
    golden customer's members or of a linked record."""
    if isinstance(record.get("explanation"), list):
        return {str(entry["source_system"]) for entry in record["explanation"]}
    if isinstance(record.get("members"), list):
        return {str(member).partition(":")[0] for member in record["members"]}
    if "golden_id" in record and "ref" in record:
        return {str(record["ref"]).partition(":")[0]}
    return {str(record.get("source_system"))}


def read_topic_state(settings: HubSettings) -> TopicState:
    specs = [spec for spec in registry().topics.values()
             if spec.kind == "unified" and spec.id not in PATHS]  # fmt: skip
    state = TopicState({spec.name: {} for spec in specs}, {})
    for msg in read_to_end(settings.bootstrap, specs):
        topic, key, raw = msg.topic() or "", (msg.key() or b"").decode(), msg.value()
        value = orjson.loads(raw) if raw is not None else None
        position = header(msg, POSITION_HEADER) or (value or {}).get("source_position")
        if position:
            state.marks[(topic, key)] = position
        if value is None:
            state.records[topic].pop(key, None)
        else:
            state.records[topic][key] = value
    return state


def topic_state(
    settings: HubSettings, systems: set[str] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """The latest value of every key on every unified topic, read to the current end; only the
    records of ``systems`` when given."""
    state = read_topic_state(settings)
    return state.records if systems is None else state.of_systems(systems)


def differing_keys(reports: Mapping[str, TopicReport]) -> list[str]:
    """Every key that differs on a topic the engine writes (what ``hub repair`` can read again
    from the sources; a derived figure follows its levels once they are repaired)."""
    mapped = {spec.name for spec in registry().topics.values() if spec.model in MODELS}
    return sorted({key for t in reports.values() if t.topic in mapped
                   for key in (*t.missing, *t.extra, *t.wrong)})  # fmt: skip


def comparable(
    expected: Mapping[str, Mapping[str, dict[str, Any]]], state: TopicState, systems: set[str]
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, dict[str, Any]]]]:
    """What the sources say and what the topics hold, both without the keys whose record on the
    topic comes (in part) from systems not read: an availability figure that adds a level of a
    system this run cannot read is neither expected nor found."""
    actual = state.of_systems(systems)
    wanted = {
        topic: {key: value for key, value in want.items()
                if key in actual.get(topic, {}) or key not in state.records.get(topic, {})}
        for topic, want in expected.items()
    }  # fmt: skip
    return wanted, actual


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
            a, b = _content(want[key]), _content(have[key])
            diff = {name: [a.get(name), b.get(name)] for name in sorted(set(a) | set(b))
                    if a.get(name) != b.get(name)}  # fmt: skip
            if diff:
                report.wrong[key] = diff
        reports[topic] = report
    return reports


def _content(record: Mapping[str, Any]) -> dict[str, Any]:
    """What is compared of a record: its provenance left out (an availability figure's and a
    golden customer's: the change that made it, and where each location's level came from)."""
    content = {name: value for name, value in record.items() if name not in PROVENANCE}
    if isinstance(content.get("members"), list):  # a golden customer: made by a record's change
        content.pop("source_system", None)
    if isinstance(content.get("explanation"), list):
        content.pop("source_system", None)
        content["explanation"] = [
            {name: value for name, value in entry.items() if name not in SOURCE_OF}
            for entry in content["explanation"]
        ]
    return content


def open_sources(
    settings: HubSettings, definitions: Mapping[str, ConnectorDefinition]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A connection to every system that can be read (``hub.sources``), and why the others
    cannot."""
    connections: dict[str, Any] = {}
    unchecked: dict[str, str] = {}
    for system, definition in definitions.items():
        try:
            connections[system] = connect(login_for(settings, definition))
        except StackError as exc:
            unchecked[system] = str(exc)
        except Exception as exc:  # the database's own error: the report names it
            unchecked[system] = f"cannot connect: {exc}".strip()
    return connections, unchecked


def reconcile(settings: HubSettings, wait: float) -> Report:
    """Compare until they agree or ``wait`` seconds pass (changes may still be in flight)."""
    definitions = load_definitions()
    deadline = time.monotonic() + wait
    while True:
        connections, unchecked = open_sources(settings, definitions)
        try:
            found = truth(definitions, connections, datetime.now(UTC), identity_of(settings))
        finally:
            for conn in connections.values():
                conn.close()
        wanted, actual = comparable(found.expected, read_topic_state(settings), set(connections))
        report = Report(compare(wanted, actual), found.invalid, unchecked)
        if report.agree or time.monotonic() >= deadline:
            return report
        time.sleep(2)


def identity_of(settings: HubSettings) -> Identity:
    """The identity rules, the decisions in force and the erased refs, as the worker has them."""
    from hub.customers import erasure_salt, load_rules, read_decisions

    hashes = set(read_compacted(settings.bootstrap, registry()[golden.ERASED_TOPIC]))
    salt = erasure_salt(settings)
    return Identity(load_rules(), read_decisions(settings),
                    lambda ref: golden.erasure_key(salt, ref) in hashes)  # fmt: skip


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
    for system, why in report.unchecked.items():
        console.print(f"[yellow]{system} not checked[/]: {why}")
    verdict = "[bold green]agree[/]" if report.agree else "[bold red]differ[/]"
    checked = (
        "" if not report.unchecked else f" (not checked: {', '.join(sorted(report.unchecked))})"
    )
    console.print(f"Sources and unified topics {verdict}{checked}.")
    differing = report.differing()
    if differing:
        console.print(f"Repair them (reads the source rows again, republishes the truth): "
                      f"{repair_command(differing[:examples])}"
                      + (" … or: hub repair --differing" if len(differing) > examples else ""),
                      soft_wrap=True)  # fmt: skip


def repair_command(keys: list[str]) -> str | None:
    return "hub repair " + " ".join(shlex.quote(k) for k in keys) if keys else None
