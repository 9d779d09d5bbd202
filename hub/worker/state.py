"""The worker's state as Kafka holds it: per raw partition number, the engine's rows and how far
it read the reference topics, written to that partition of a compacted changelog topic of the
worker group in the transactions that hold the outputs they go with; and the marks of what was
published, which the unified topics themselves hold.

Whoever takes a partition number over reads its state back (``read_committed``, after fencing the
previous holder), and the marks from the unified topics: its state is then exactly what was
committed, whatever the previous holder had time to do. The benchmark's BL4 loop starts from the
same state, so that it processes the same events as the worker it is compared with.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from hub.core.availability import TOPIC as AVAILABILITY
from hub.core.availability import figure_mark
from hub.core.engine import MemoryStore, out_ref, seed_entry
from hub.kafka_io import header, read_to_end
from hub.models import MODELS
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker.output import POSITION_HEADER, SNAPSHOT_HEADER, OutputProducer

ROWS_TABLE = "engine-rows"  # the engine's rows (their changelog topic keeps this name)


class ChangelogStore(MemoryStore):
    """The engine's ``Store`` for one raw partition number: rows in memory, and each row changed
    written to that partition of the group's changelog topic, in the transaction holding the
    outputs it led to (``write_changes`` before each commit: a row changed several times in one
    transaction is written once, with its last value).

    The topic, key and JSON value are those Faust wrote when the rows were a Faust table, so a
    changelog written by an earlier version reads the same."""

    def __init__(
        self, producer: OutputProducer | None, changelog: str = "", partition: int = 0
    ) -> None:
        """``producer`` None: a store no changelog keeps (see ``DiskStore``)."""
        super().__init__()
        self.producer, self.changelog, self.partition = producer, changelog, partition
        self.changed: set[str] = set()

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        super().put(ref, value)
        self.changed.add(ref)

    def write_changes(self) -> None:
        """Hand the rows changed since the last call to the producer."""
        producer = self.producer
        if producer is None:
            self.changed.clear()
            return
        for ref in self.changed:
            value = self.get(ref)
            producer.send(
                self.changelog,
                orjson.dumps(ref),
                orjson.dumps(value) if value is not None else None,
                [],
                self.partition,
            )
        self.changed.clear()

    def replace(self, entries: Iterable[tuple[str, dict[str, Any] | None]]) -> int:
        """Start over from ``entries`` (read back at a takeover; the last value of a ref wins, None
        deletes it); writes nothing. Returns how many entries were read."""
        self.clear()
        self.changed.clear()
        read = 0
        for ref, value in entries:
            MemoryStore.put(self, ref, value)
            read += 1
        return read

    def close(self) -> None:
        self.clear()


class DiskStore:
    """The engine's ``Store`` for one raw partition number when its state grows with history: every
    entry in a RocksDB database of its own (``path``, deleted on ``close``), about the ``cache``
    most recently used entries also in memory, and the changes of the open transaction written to the
    changelog and the database together (``write_changes``). Memory is then bounded by the cache
    and RocksDB's buffers, whatever the state holds. The database is only ever a copy of the
    changelog partition: a takeover (``replace``) builds it again from there."""

    WRITE_BUFFER = 4 << 20  # bytes per memtable (two at most)
    BLOCK_CACHE = 16 << 20  # one for all the stores of the process
    _cache: Any = None

    def __init__(
        self, producer: OutputProducer | None, changelog: str, partition: int, path: Path,
        cache: int = 5_000,
    ) -> None:  # fmt: skip
        """``producer`` None: a store no changelog keeps (the published marks, read back from
        the unified topics themselves)."""
        self.producer, self.changelog, self.partition = producer, changelog, partition
        self.path = path
        # Two generations, each of half the size: entries used since the young one was started,
        # and those used in the generation before. A read found in the old one moves to the
        # young one; a full young generation becomes the old one (the old one is dropped). The
        # entries used in the last two generations stay: an LRU's bound, at a dict lookup a read.
        self.generation = max(1, cache // 2)
        self.young: dict[str, dict[str, Any] | None] = {}
        self.old: dict[str, dict[str, Any] | None] = {}
        self.pending: dict[str, dict[str, Any] | None] = {}  # changed since write_changes
        self.db = self._open()

    def _open(self) -> Any:
        from rocksdict import BlockBasedOptions, Cache, Options, Rdict

        shutil.rmtree(self.path, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(self.WRITE_BUFFER)
        options.set_max_write_buffer_number(2)
        if DiskStore._cache is None:
            DiskStore._cache = Cache(self.BLOCK_CACHE)
        table = BlockBasedOptions()
        table.set_block_cache(DiskStore._cache)
        # Most reads of a new row's entries find nothing (its marks, its list): a bloom filter
        # answers those without reading a block.
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        return Rdict(str(self.path), options)

    def get(self, ref: str) -> dict[str, Any] | None:
        if ref in self.pending:
            return self.pending[ref]
        young = self.young
        if ref in young:
            return young[ref]
        if ref in self.old:
            value = self.old[ref]
        else:
            raw = self.db.get(ref.encode())
            value = orjson.loads(raw) if raw is not None else None
        self._remember(ref, value)
        return value

    def _remember(self, ref: str, value: dict[str, Any] | None) -> None:
        if len(self.young) >= self.generation:
            self.old, self.young = self.young, {}
        self.young[ref] = value

    @property
    def cached(self) -> int:
        """Entries held in memory (besides those changed and not written yet)."""
        return len(self.young) + len(set(self.old) - set(self.young))

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        self.pending[ref] = value

    def write_changes(self) -> None:
        """Hand the entries changed since the last call to the producer, and to the database."""
        from rocksdict import WriteBatch

        if not self.pending:  # the stream loop calls this at every quiet moment too
            return
        batch = WriteBatch(raw_mode=True)
        for ref, value in self.pending.items():
            raw = orjson.dumps(value) if value is not None else None
            if self.producer is not None:
                self.producer.send(self.changelog, orjson.dumps(ref), raw, [], self.partition)
            if raw is None:
                batch.delete(ref.encode())
            else:
                batch.put(ref.encode(), raw)
            self.old.pop(ref, None)
            self._remember(ref, value)
        self.db.write(batch)
        self.pending.clear()

    def replace(self, entries: Iterable[tuple[str, dict[str, Any] | None]]) -> int:
        """Start over from ``entries`` (see ``ChangelogStore.replace``)."""
        from rocksdict import WriteBatch

        self.db.close()
        self.db = self._open()
        self.young, self.old = {}, {}
        self.pending.clear()
        batch, n = WriteBatch(raw_mode=True), 0
        for n, (ref, value) in enumerate(entries, 1):
            if value is None:
                batch.delete(ref.encode())
            else:
                batch.put(ref.encode(), orjson.dumps(value))
            if n % 10_000 == 0:
                self.db.write(batch)
                batch = WriteBatch(raw_mode=True)
        self.db.write(batch)
        return n

    def close(self) -> None:
        """Close the database and delete it (the changelog holds the state)."""
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def state_store(
    settings: HubSettings, producer: OutputProducer | None, changelog: str, partition: int,
    path: Path,
) -> ChangelogStore | DiskStore:  # fmt: skip
    """The store the settings ask for (``HUB_WORKER_STORE``): on disk at ``path``, or in memory."""
    if settings.worker_store == "rocksdb":
        return DiskStore(producer, changelog, partition, path, settings.worker_store_cache)
    return ChangelogStore(producer, changelog, partition)


def worker_disk(settings: HubSettings) -> Path:
    """This process's directory for its tasks' state databases, ``<state dir>/worker/<group>-<pid>``
    (those of processes no longer running are deleted: a database is only ever a copy)."""
    root = settings.state_dir / "worker"
    if root.is_dir():
        for old in root.iterdir():
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(old, ignore_errors=True)
    return root / f"{settings.worker_id}-{os.getpid()}"


def rows_changelog(worker_id: str, partitions: int = 1) -> TopicSpec:
    """The changelog topic of the engine's rows of the worker group ``worker_id``: one partition
    per raw partition number (``partitions``), each written by whoever holds that number."""
    return TopicSpec(
        id="engine-rows-changelog", name=f"{worker_id}-{ROWS_TABLE}-changelog", kind="internal",
        key="row ref (JSON string)", value="stored row (JSON)", partitions=partitions,
        cleanup_policy="compact",
    )  # fmt: skip


def published_entries(bootstrap: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """What the unified topics hold, as the engine's ``published`` entries (ref, entry), in order
    (the last of a ref wins): after a crash or a takeover, what was produced is exactly what is
    there, whatever any worker's state saved, whichever worker group produced it."""
    # The engine's outputs only: the stages after it keep their own marks in their state.
    specs = [spec for spec in registry().topics.values()
             if spec.kind == "unified" and spec.model in MODELS]  # fmt: skip
    topic_ids = {spec.name: spec.id for spec in specs}
    for msg in read_to_end(bootstrap, specs):
        raw = msg.value()
        value = orjson.loads(raw) if raw is not None else None
        position = header(msg, POSITION_HEADER) or (value or {}).get("source_position", "")
        ref = out_ref(topic_ids[msg.topic() or ""], (msg.key() or b"").decode())
        yield ref, seed_entry(value, position, header(msg, SNAPSHOT_HEADER))


def published_figures(bootstrap: str) -> dict[str, dict[str, Any]]:
    """What ``unified.availability`` holds now, whoever wrote it: GTIN → figure key →
    ``figure_mark``. A task taken over publishes where its own figures differ from these."""
    figures: dict[str, dict[str, Any]] = {}
    for msg in read_to_end(bootstrap, [registry()[AVAILABILITY]]):
        key = (msg.key() or b"").decode()
        raw = msg.value()
        mark = figure_mark(orjson.loads(raw)) if raw is not None else None
        held = figures.setdefault(key.partition("@")[0], {})
        if mark is None:
            held.pop(key, None)
        else:
            held[key] = mark
    return figures


def read_entries(
    bootstrap: str, worker_id: str, partition: int | None = None
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The engine's state (rows, published marks, frontiers, reference positions) of raw
    partition number ``partition`` (default: of all) as the worker group's changelog holds it,
    in order: (ref, value) pairs, None for a deleted ref (the last one of a ref wins)."""
    if partition is None:
        name = rows_changelog(worker_id).name
        spec, partitions = rows_changelog(worker_id, _partition_count(bootstrap, name)), None
    else:
        spec, partitions = rows_changelog(worker_id, partition + 1), [partition]
    for msg in read_to_end(bootstrap, [spec], partitions=partitions):
        raw = msg.value()
        yield orjson.loads(msg.key() or b'""'), orjson.loads(raw) if raw is not None else None


def read_rows(bootstrap: str, worker_id: str, partition: int | None = None) -> MemoryStore:
    """``read_entries`` in memory: the last value of every ref."""
    rows = MemoryStore()
    for ref, value in read_entries(bootstrap, worker_id, partition):
        rows.put(ref, value)
    return rows


def _partition_count(bootstrap: str, topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    found = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30).topics
    return max(1, len(found[topic].partitions)) if topic in found else 1
