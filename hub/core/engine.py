"""The processing step every runner shares: raw Debezium record → canonical outputs.

Step name ``normalise``. The engine keeps, in a ``Store``, the latest row of every table that a
mapping looks up, that has mappings with lookups, or whose columns PostgreSQL may leave out
(unchanged TOASTed values). That state makes lookups survive arrival order — an inventory row that
arrives before its variant is parked and published when the variant arrives — and lets an
unchanged TOASTed column take its last known value. Memory is bounded by the number of rows kept,
not of events.

A deleted row that others look up keeps its last image (flagged ``deleted``): events of the rows
that referred to it may still arrive on other topics, and their keys are derived through it.

Routing never drops silently: a captured table with no mapping, and no lookup needing it, is an
``InvalidEvent``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from hub.core.debezium import ChangeEvent, decode
from hub.core.lists import ChunkedList
from hub.core.mapping import CompiledMapping, MappingSpec, Pending, Row, compile_mapping
from hub.core.positions import Frontiers, visible
from hub.core.records import Output, Tombstone, Upsert, content_digest
from hub.core.retention import Expiry, RetentionSpec
from hub.errors import InvalidEvent
from hub.models import MODELS

STEP = "normalise"
CHECK_EVERY = 6.0  # seconds of source time between two looks for rows due (retention)
UNAVAILABLE = "__debezium_unavailable_value"


class Store(Protocol):
    """Where the engine keeps rows and who depends on them. Values are JSON-able dicts; ``get``
    may return the stored object itself: the engine never changes a value, it puts a new one."""

    def get(self, ref: str) -> dict[str, Any] | None: ...

    def put(self, ref: str, value: dict[str, Any] | None) -> None: ...


class MemoryStore(dict[str, dict[str, Any]]):
    """A ``Store`` in a dict: for tests and single-process tools."""

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self.pop(ref, None)
        else:
            self[ref] = value


@dataclass(frozen=True)
class SystemMappings:
    """What the engine needs of one system's definition."""

    system: str
    mappings: Sequence[MappingSpec]
    toasted: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Tables whose Kafka key is not their primary key: table → primary key columns, read from
    # the row itself (``after``, or ``before`` for a delete).
    keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Tables whose closed rows leave the state after a while (see ``hub.core.retention``).
    retention: Mapping[str, RetentionSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DependentFailure:
    """A stored row that failed when a row it looks up arrived: dead-letter it on its own."""

    ref: str
    row: dict[str, Any]
    error: InvalidEvent


@dataclass(frozen=True, slots=True)
class Outcome:
    outputs: list[Output] = field(default_factory=list)
    skipped: str | None = None  # why an input produced nothing: debezium_tombstone, pending:…
    failures: list[DependentFailure] = field(default_factory=list)
    duplicates: int = (
        0  # outputs dropped: their key already had this source position or a newer one
    )
    noops: int = 0  # outputs dropped: nothing canonical changed since the last one published
    expired: int = 0  # rows that left the state (declared retention) after this input


def row_ref(system: str, table: str, key: Mapping[str, Any]) -> str:
    """The store key of one row: ``row:<system>:<table>:<key JSON, sorted>``."""
    return f"row:{system}:{table}:" + orjson.dumps(dict(key), option=orjson.OPT_SORT_KEYS).decode()


def deps_ref(ref: str) -> str:
    """The head of the list of rows that looked ``ref`` up (see ``Engine._depend``)."""
    return "deps:" + ref.removeprefix("row:")


def pair_ref(target: str, dependent: str) -> str:
    """Marked that ``dependent`` is in the list of ``target``, in state written by versions
    before the entries said it themselves (``on``): read, never written."""
    return f"dep:{target.removeprefix('row:')}>{dependent.removeprefix('row:')}"


def out_ref(topic_id: str, key: str) -> str:
    return f"out:{topic_id}:{key}"


# Fields that say when, where and in which schema version, not what: they do not make a record
# different (a worker upgraded to a new schema version republishes a key when it changes, not all
# at once).
PROVENANCE = frozenset(
    {"emitted_at", "source_position", "source_committed_at", "source_op", "schema_version"}
)


def seed_entry(
    value: Mapping[str, Any] | None, position: str, snapshot: str | None = None
) -> dict[str, Any]:
    """The ``published`` entry of a record read back from a unified topic (None: a tombstone);
    ``snapshot``: the repair snapshot it was published with, if any."""
    entry = {"pos": position, "hash": "tombstone" if value is None else _fingerprint(value)}
    return entry | ({"snap": snapshot} if snapshot else {})


def digest(output: Output) -> str:
    """What a consumer would see of ``output``, minus provenance: equal digests, no news."""
    if isinstance(output, Tombstone):
        return "tombstone"
    content = output.content
    if content is None and isinstance(output, Upsert):
        content = output.record.model_dump(mode="json")
    return _fingerprint(content or {})


def _fingerprint(record: Mapping[str, Any]) -> str:
    """One hash for a record's JSON form, provenance left out: what ``digest`` and ``seed_entry``
    compare must be computed the same way."""
    return content_digest({k: v for k, v in record.items() if k not in PROVENANCE})


class Engine:
    """Pure apart from the ``Store`` it is given; ``process`` raises only ``InvalidEvent``."""

    def __init__(
        self,
        systems: Sequence[SystemMappings],
        topic_for_model: Mapping[str, str],
        store: Store,
        published: Store | None = None,
        max_leap: int | None = None,
        log_rate: int = 0,
        frontiers: Frontiers | None = None,
    ) -> None:
        """``store`` keeps rows and dependencies; ``published`` the last source position and
        content digest per output key (by default the same store). A runner that can lose state
        on a crash seeds ``published`` from the unified topics themselves (``seed_entry``).
        ``max_leap`` (bytes of log) and ``log_rate`` (bytes/s) turn on the frontier check of
        ``hub.core.positions``; without ``max_leap`` every position is taken as it comes.
        ``frontiers``: that check's state, when engines share it (those of one worker)."""
        self.store = store
        self.published = published if published is not None else store
        if frontiers is None and max_leap is not None:
            frontiers = Frontiers(store, max_leap, log_rate)
        self.frontiers = frontiers
        # The repair being applied: keys it may force, its snapshot, the keys it forced.
        self._expect: dict[tuple[str, str], str | None] = {}
        self._snapshot: str | None = None
        self._forced: set[tuple[str, str]] = set()
        self._txid: int | None = None  # of the change being applied
        self.topic_for_model = dict(topic_for_model)
        self.mappings: dict[tuple[str, str], list[CompiledMapping]] = {}
        self.keep: set[tuple[str, str]] = set()
        self.targets: set[tuple[str, str]] = set()  # tables other mappings look up
        self.toasted = {
            (s.system, t): tuple(cols) for s in systems for t, cols in s.toasted.items()
        }
        self.keys = {(s.system, t): tuple(cols) for s in systems for t, cols in s.keys.items()}
        self.retention = {(s.system, t): r for s in systems for t, r in s.retention.items()}
        self.expiry = Expiry(store)
        self._clock = 0.0  # epoch seconds: the latest source commit time applied (retention)
        self._next_check = 0.0  # when to look for rows due again (source time)
        self._committed = 0.0  # of the change being applied
        for system in systems:
            for spec in system.mappings:
                compiled = compile_mapping(spec)
                self.mappings.setdefault((system.system, spec.table), []).append(compiled)
                if compiled.lookup_tables:
                    self.keep.add((system.system, spec.table))
                    self.targets |= {(system.system, t) for t in compiled.lookup_tables}
        self.keep |= self.targets
        self.keep |= set(self.toasted)
        unkept = set(self.retention) - self.keep
        if unkept:
            raise ValueError(
                f"retention declared for {sorted(unkept)}, whose rows the engine does not keep"
            )
        missing = {m.spec.model for ms in self.mappings.values() for m in ms} - set(
            self.topic_for_model
        )
        if missing:
            raise ValueError(f"no unified topic declared for models {sorted(missing)}")

    def routes(self, system: str, table: str) -> bool:
        return (system, table) in self.mappings or (system, table) in self.keep

    def routed(self) -> set[tuple[str, str]]:
        """Every (system, table) whose events the engine takes."""
        return set(self.mappings) | self.keep

    def process(
        self, system: str, key: bytes | None, value: bytes | None, now: datetime
    ) -> Outcome:
        """Decode one raw record from ``system`` and produce its canonical outputs."""
        event = decode(key, value)
        if event is None:
            return Outcome(skipped="debezium_tombstone")
        return self.apply(system, event, now)

    def apply(self, system: str, event: ChangeEvent, now: datetime) -> Outcome:
        """Produce the canonical outputs of one decoded change (``process`` without decoding)."""
        self._duplicates = self._noops = 0  # outputs dropped while applying this change
        table = event.source.table
        if not self.routes(system, table):
            raise InvalidEvent("no_route", f"no mapping for {system}:{table}")
        key = self._identity(system, table, event)
        if self.frontiers is not None:
            self.frontiers.admit(
                system, event.source.position, event.source.committed_at.timestamp(),
                now.timestamp(),
            )  # fmt: skip
        ref = row_ref(system, table, key)
        self._txid = event.source.txid
        self._committed = event.source.committed_at.timestamp()
        src = {
            "source_system": system, "source_table": table, "source_position": event.source.position,
            "source_op": event.op, "source_committed_at": event.source.committed_at.isoformat(),
        }  # fmt: skip
        if event.op == "d":
            return self._finish(self._delete(system, table, ref, event, src, now))
        kept = (system, table) in self.keep
        before = self.store.get(ref) if kept else None
        row = self._fill_unavailable(system, table, ref, event, before)
        # The rows this one is listed on as a dependent (``_depend``); ``legacy``: an entry
        # written before entries said so, whose listings are found by their markers.
        on = list(before["on"]) if before is not None and "on" in before else []
        legacy = before is not None and "on" not in before
        entry = {"row": dict(row), "src": src, "on": list(on)}
        if kept:
            entry = self._keep_row(system, table, ref, entry, before)
        outputs, pending = self._evaluate(system, table, ref, row, src, now, on, legacy)
        if kept and len(on) > len(entry["on"]):
            self.store.put(ref, {**entry, "on": on})
        # The rows that looked this one up are evaluated again; a failure there is theirs, not
        # this event's: it is reported for the dead-letter topic and this event goes on.
        failures: list[DependentFailure] = []
        gone: list[str] = []
        looked_up_by = self.dependents(ref) if (system, table) in self.targets else []
        for dependent in looked_up_by:
            stored = self.store.get(dependent)
            if stored is None:
                gone.append(dependent)  # expired or deleted since it was listed
                continue
            dep_table = dependent.split(":", 3)[2]
            deleted = bool(stored.get("deleted"))
            listed = stored.get("on")
            on = list(listed or ())
            try:
                more, still = self._evaluate(
                    system, dep_table, dependent, stored["row"], stored["src"], now, on,
                    listed is None, deleted,
                )  # fmt: skip
            except InvalidEvent as error:
                failures.append(DependentFailure(dependent, stored, error))
                continue
            if len(on) > len(listed or ()) or listed is None:
                self.store.put(dependent, {**stored, "on": on})
            if deleted and not still and (system, dep_table) not in self.targets:
                self.store.put(dependent, None)  # the parked delete is done
            outputs += more
        if gone:
            self._forget_dependents(ref, gone)
        if outputs:
            return self._finish(Outcome(outputs, failures=failures))
        skipped = f"pending:{pending}" if pending else "reference_row"
        return self._finish(Outcome(skipped=skipped, failures=failures))

    def _identity(self, system: str, table: str, event: ChangeEvent) -> Mapping[str, Any]:
        """The row's primary key: the event's Kafka key, or the declared key columns of the row
        where the Kafka key is something else (``SystemMappings.keys``)."""
        columns = self.keys.get((system, table))
        if columns is None:
            if not event.key:
                raise InvalidEvent("missing_key", f"{system}:{table} event without a row key")
            return event.key
        row = (event.before if event.op == "d" else event.after) or {}
        key = {column: row.get(column) for column in columns}
        missing = [column for column, value in key.items() if value is None]
        if missing:
            raise InvalidEvent(
                "missing_key", f"{system}:{table} event without its key columns {missing}"
            )
        return key

    def repair(
        self,
        system: str,
        event: ChangeEvent,
        now: datetime,
        expect: Mapping[tuple[str, str], str | None],
        snapshot: str | None = None,
    ) -> Outcome:
        """Apply a change read from the source itself by ``hub repair``: the truth at
        ``event``'s position. For each key of ``expect`` ((topic id, key) → the position its mark
        had when ``hub repair`` looked, None for no mark) whose mark is still that, the output
        replaces the mark, newer or not (a mark set by a wrong record would otherwise drop every
        real change after it), and is published even when its content is unchanged: its
        position becomes the key's mark on the topic, where a restarted worker reads marks back.
        A key whose mark moved since, and every other output, follow the usual rules: a repair
        read again later (a worker replaying history) changes nothing.

        ``snapshot`` (PostgreSQL, where a position alone cannot tell the changes a read saw from
        those it did not): the replaced marks become the snapshot, and a later change is newer
        exactly when its transaction was not visible to it."""
        self._expect, self._snapshot, self._forced = dict(expect), snapshot, set()
        try:
            outcome = self.apply(system, event, now)
        finally:
            forced, self._expect, self._snapshot = self._forced, {}, None
        stamped = [
            replace(o, snapshot=snapshot) if (o.topic_id, o.key) in forced else o
            for o in outcome.outputs
        ]
        return Outcome(
            stamped, outcome.skipped, outcome.failures, outcome.duplicates, outcome.noops,
            outcome.expired,
        )  # fmt: skip

    def drop(
        self, topic_id: str, key: str, position: str, expect: str | None,
        snapshot: str | None = None,
    ) -> Outcome:  # fmt: skip
        """``hub repair`` for a key no source row produces: a tombstone that replaces its mark,
        if the mark is still at ``expect``."""
        ref = out_ref(topic_id, key)
        last = self.published.get(ref)
        if (last["pos"] if last is not None else None) != expect:
            return Outcome(skipped="moved")
        self.published.put(ref, seed_entry(None, position, snapshot))
        return Outcome([Tombstone(topic_id, key, position, snapshot)])

    def forget(self, record_key: str) -> int:
        """Forget the kept source rows of the record ``record_key`` (``<system>:<source id>``)
        of a model keyed so, e.g. an erased customer: the rows of that system's tables mapped to
        such a model whose ``source_id`` comes from one column, found by that column's value
        (as text, and as a whole number when it is one). Returns how many rows were dropped;
        the published marks stay (they hold no row data)."""
        system, _, source_id = record_key.partition(":")
        values: list[Any] = [source_id] + ([int(source_id)] if source_id.isdigit() else [])
        dropped = 0
        for (owner, table), compiled in self.mappings.items():
            if owner != system or (system, table) not in self.keep:
                continue
            for mapping in compiled:
                expr = mapping.spec.fields.get("source_id")
                if expr is None or expr.col is None:
                    continue
                for value in values:
                    ref = row_ref(system, table, {expr.col: value})
                    if self.store.get(ref) is not None:
                        self.store.put(ref, None)
                        dropped += 1
        return dropped

    def _finish(self, outcome: Outcome) -> Outcome:
        expired = self._expire(self._committed) if self.retention else 0
        duplicates, noops = self._duplicates, self._noops
        skipped = outcome.skipped
        if (
            not outcome.outputs
            and (duplicates or noops)
            and (skipped is None or skipped == "reference_row")
        ):
            skipped = "duplicate" if duplicates else "noop"
        return Outcome(outcome.outputs, skipped, outcome.failures, duplicates, noops, expired)

    def _admit(self, output: Output, position: str) -> bool:
        """Whether to publish ``output``, produced by the change at ``position``.

        Per key, the last published source position and content digest are kept: an output at
        the same or an older position is a duplicate (a replay); one whose content did not change
        is a no-op. Positions compare within one source, and each key has one source system.
        """
        ref = out_ref(output.topic_id, output.key)
        last = self.published.get(ref)
        which = (output.topic_id, output.key)
        if which in self._expect and (last["pos"] if last else None) == self._expect[which]:
            entry = {"pos": position, "hash": digest(output)}
            self.published.put(ref, entry | ({"snap": self._snapshot} if self._snapshot else {}))
            self._forced.add(which)
            return True
        if last is not None and self._older(last, position):
            self._duplicates += 1
            return False
        fingerprint = digest(output)
        self.published.put(ref, {"pos": position, "hash": fingerprint})
        if last is not None and last["hash"] == fingerprint:
            self._noops += 1
            return False
        return True

    def _older(self, last: Mapping[str, Any], position: str) -> bool:
        """Whether the change being applied is not newer than the key's mark ``last``."""
        snapshot = last.get("snap")
        if snapshot is not None and self._txid is not None:
            return visible(self._txid, snapshot)  # a repair's mark (PostgreSQL)
        return bool(last["pos"] >= position)

    def _fill_unavailable(
        self,
        system: str,
        table: str,
        ref: str,
        event: ChangeEvent,
        stored: Mapping[str, Any] | None,
    ) -> Row:
        """``event``'s row, unchanged TOASTed values taken from ``stored`` (the row's entry)."""
        row = event.after or {}
        gaps = [column for column, value in row.items() if value == UNAVAILABLE]
        if not gaps:
            return row
        if stored is None or any(column not in stored["row"] for column in gaps):
            raise InvalidEvent(
                "unavailable_value",
                f"{system}:{table} sent {gaps} as unchanged TOAST values and no earlier value is known"
                + (
                    ""
                    if (system, table) in self.toasted
                    else f"; declare them under toasted: {table}"
                ),
            )
        return {**row, **{column: stored["row"][column] for column in gaps}}

    def _evaluate(
        self, system: str, table: str, ref: str, row: Row, src: Mapping[str, Any], now: datetime,
        on: list[str], legacy: bool = False, deleted: bool = False,
    ) -> tuple[list[Output], str | None]:  # fmt: skip
        """Every mapping of ``table`` on ``row``: upserts, or tombstones when ``deleted``.

        Lists the row as a dependent of every row it looked up and is not listed on yet (``on``,
        extended in place: the caller stores it with the row); returns the table it waits for
        when a lookup found nothing.
        """
        outputs: list[Output] = []
        pending: str | None = None
        for mapping in self.mappings.get((system, table), []):
            model = MODELS[mapping.spec.model]
            # Each row looked up once per mapping, however many fields read it (target → row).
            looked_up: dict[str, Row | None] = {}
            newest = dict(src)

            def lookup(
                ref_table: str, ref_key: dict[str, Any],
                looked_up: dict[str, Row | None] = looked_up, newest: dict[str, Any] = newest,
            ) -> Row | None:  # fmt: skip
                target = row_ref(system, ref_table, ref_key)
                if target in looked_up:
                    return looked_up[target]
                stored = self.store.get(target)
                looked_up[target] = found = None if stored is None else stored["row"]
                # A record is as new as the newest row it was made of (an order's status change
                # makes its lines new again).
                if stored is not None and stored["src"].get("source_position", "") > newest.get(
                    "source_position", ""
                ):
                    newest.update(stored["src"], source_op="u", source_table=src["source_table"])
                return found

            try:
                if deleted:
                    values = {"source_system": system}
                    values |= mapping.values(row, lookup, only=model.key_fields())
                else:
                    values = mapping.values(row, lookup)
            except Pending as wait:
                pending = wait.table
                values = None
            for target in looked_up:
                if target not in on:
                    self._depend(target, ref, legacy)
                    on.append(target)
            if values is None:
                continue
            topic = self.topic_for_model[mapping.spec.model]
            if deleted:
                if any(values.get(name) is None for name in model.key_fields()):
                    raise InvalidEvent(
                        "missing_key", f"delete in {table}: key fields incomplete {values}"
                    )
                tombstone = Tombstone(
                    topic, model.key_of(values), str(src.get("source_position", ""))
                )
                if self._admit(tombstone, tombstone.position):
                    outputs.append(tombstone)
                continue
            try:
                record = model.model_validate({**values, **newest, "emitted_at": now})
            except ValidationError as exc:
                raise InvalidEvent(
                    "invalid_record", f"{mapping.spec.model}: {exc.errors(include_url=False)}"
                ) from None
            upsert = Upsert.of(topic, record, record.key, record.source_position)
            if self._admit(upsert, upsert.position):
                outputs.append(upsert)
        return outputs, pending

    def _depend(self, target: str, dependent: str, legacy: bool = False) -> None:
        """Add ``dependent`` to the rows evaluated again when ``target`` changes (a
        ``ChunkedList``: each call reads and writes a bounded amount however many rows look
        ``target`` up). The dependent's entry keeps the rows it is listed on (``on``), so that it
        is listed once; an entry written before that (``legacy``) is found listed by the marker
        an earlier version kept per pair."""
        if legacy and self.store.get(pair_ref(target, dependent)) is not None:
            return
        ChunkedList(self.store, deps_ref(target)).append(dependent)

    def dependents(self, target: str) -> list[str]:
        """The rows that looked ``target`` up."""
        return ChunkedList(self.store, deps_ref(target)).items()

    def _forget_dependents(self, target: str, gone: Sequence[str]) -> None:
        """Take rows no longer in the state (expired, deleted) off ``target``'s list: one that
        comes back is listed again (its entry starts with an empty ``on``)."""
        left = set(gone)
        ChunkedList(self.store, deps_ref(target)).rewrite(
            d for d in self.dependents(target) if d not in left
        )

    def _expire(self, committed_at: float) -> int:
        """Remove the closed rows whose time has come (``hub.core.retention``) and the rows that
        looked them up; returns how many rows left. Their other lists are mended when the rows
        they are on change (``_forget_dependents``)."""
        self._clock = max(self._clock, committed_at)
        if self._clock < self._next_check:
            return 0
        self._next_check = self._clock + CHECK_EVERY
        due = self.expiry.next_due()
        if due is None or due > self._clock:
            return 0
        expired = 0
        for ref in self.expiry.take(self._clock):
            stored = self.store.get(ref)
            deadline = stored.get("exp") if stored is not None else None
            if deadline is None or deadline > self._clock:
                continue  # gone already, reopened, or listed again for later
            for dependent in self.dependents(ref):
                if self.store.get(dependent) is not None:
                    self.store.put(dependent, None)
                    expired += 1
                ChunkedList(self.store, deps_ref(dependent)).drop()
            ChunkedList(self.store, deps_ref(ref)).drop()
            self.store.put(ref, None)
            expired += 1
        return expired

    def _keep_row(
        self, system: str, table: str, ref: str, entry: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """Store a kept row's entry; a closed row of a table with retention gets its deadline
        (``exp``: the commit time of the change being applied plus the declared time, epoch
        seconds) and is listed as due then."""
        rule = self.retention.get((system, table))
        if rule is not None and (entry.get("deleted") or rule.closes(entry["row"])):
            deadline = self._committed + rule.keep.total_seconds()
            self.expiry.schedule(ref, deadline, before.get("exp") if before else None)
            entry = {**entry, "exp": deadline}
        self.store.put(ref, entry)
        return entry

    def _delete(
        self,
        system: str,
        table: str,
        ref: str,
        event: ChangeEvent,
        src: dict[str, Any],
        now: datetime,
    ) -> Outcome:
        stored = self.store.get(ref)
        # With REPLICA IDENTITY DEFAULT only key columns are real in `before`: prefer what we kept.
        row = {**(event.before or {}), **(stored["row"] if stored else {})}
        on = list(stored["on"]) if stored is not None and "on" in stored else []
        legacy = stored is not None and "on" not in stored
        outputs, pending = self._evaluate(
            system, table, ref, row, src, now, on, legacy, deleted=True
        )
        if pending:
            # The key needs a row that has not arrived (its topic lags): park the delete; it
            # becomes a tombstone when that row arrives.
            self.store.put(ref, {"row": row, "src": src, "deleted": True, "on": on})
            return Outcome(outputs, skipped=f"pending:{pending}")
        if (system, table) in self.targets and stored is not None:
            # Keep a looked-up row's last image: events of rows that referred to it may still be on
            # their way (other topics), and their keys are derived through it.
            self._keep_row(system, table, ref, {**stored, "deleted": True, "on": on}, stored)
        elif (system, table) in self.keep:
            self.store.put(ref, None)
        return Outcome(outputs) if outputs else Outcome(skipped="reference_row")
