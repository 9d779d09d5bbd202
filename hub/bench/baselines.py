"""The baselines that are Python loops, each run as a process of its own so that its CPU and
memory are measured apart (``python -m hub.bench.baselines forward|engine``):

- ``forward`` (BL3): a plain confluent-kafka consume → produce loop that copies the raw CDC
  records, unchanged, to scratch topics: what Python and the Kafka client cost with no processing.
- ``engine`` (BL4): the hub's pure core (decode, normalise, dedupe, route) in the same plain loop,
  writing canonical records to scratch topics: what the hub costs without Faust. It starts from
  the SUT worker group's state (its changelog, every partition number's, and the marks the
  unified topics hold) at that group's committed offsets, so it processes what the worker would,
  from where the worker stopped; it keeps that state as the worker does (RocksDB copies on local
  disk, the most used entries in memory), so that their memory compares.

Both commit their offsets (automatically, every second), so the benchmark reads their lag.
Neither is a product: no dead-letter topic, no crash safety.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from hub.connectors import load_definitions
from hub.core.engine import Engine
from hub.errors import InvalidEvent
from hub.kafka_io import resume_offsets
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker.output import OutputProducer
from hub.worker.state import published_entries, read_entries, state_store, worker_disk


def scratch(spec: TopicSpec, series: str) -> TopicSpec:
    """The scratch copy of ``spec`` a baseline writes to (log-append time, like the original)."""
    return spec.model_copy(
        update={"name": f"bench.{series.lower()}.{spec.name}", "timestamp_type": "LogAppendTime"}
    )


def raw_specs() -> list[TopicSpec]:
    return [spec for spec in registry().topics.values() if spec.kind == "raw"]


class Loop:
    """Consume the raw topics from ``starts``, hand each record to ``handle``, until SIGTERM."""

    def __init__(self, bootstrap: str, group: str, starts: dict[tuple[str, int], int]) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000, "fetch.wait.max.ms": 10, "log_level": 3,
        })  # fmt: skip
        partitions = []
        for (topic, partition), offset in starts.items():
            if offset == OFFSET_END:  # the end as it is now, so that it can be committed
                _, offset = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), 30
                )
            partitions.append(TopicPartition(topic, partition, offset))
        self.consumer.assign(partitions)
        # Committed at once: the group's lag is right from the start, even before a record comes.
        self.consumer.commit(offsets=partitions, asynchronous=False)
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self, handle: Any, producer: OutputProducer, after_batch: Any = lambda: None) -> None:
        try:
            while not self.stopping:
                # Block for the first record only: a batch timeout would hold records back.
                first = self.consumer.poll(0.1)
                if first is not None:
                    for msg in [first, *self.consumer.consume(999, 0)]:
                        if not msg.error():
                            handle(msg)
                    after_batch()
                producer.producer.poll(0)
        finally:
            producer.flush(30)
            self.consumer.close()


def forward(settings: HubSettings, group: str) -> None:
    """BL3: copy each raw record, key, value and headers unchanged, to its scratch topic."""
    producer = OutputProducer(settings.bootstrap, f"{group}-producer")
    names = {spec.name: scratch(spec, "BL3").name for spec in raw_specs()}
    ends = {(spec.name, p): OFFSET_END for spec in raw_specs() for p in range(spec.partitions)}

    def handle(msg: Any) -> None:
        producer.send(names[msg.topic()], msg.key(), msg.value(), msg.headers() or [])

    Loop(settings.bootstrap, group, ends).run(handle, producer)


def engine(settings: HubSettings, group: str) -> None:
    """BL4: the worker's engine on the worker group's state, outputs to scratch topics."""
    reg = registry()
    disk = worker_disk(settings)
    rows = state_store(settings, None, "", 0, disk / "rows")
    rows.replace(read_entries(settings.bootstrap, settings.worker_id))  # every partition number's
    published = state_store(settings, None, "", 0, disk / "published")
    published.replace(published_entries(settings.bootstrap))
    core = Engine(
        [definition.engine_view() for definition in load_definitions().values()],
        {spec.model: spec.id for spec in reg.topics.values() if spec.model},
        rows,
        published,
    )
    names = {
        spec.id: scratch(spec, "BL4").name for spec in reg.topics.values() if spec.kind == "unified"
    }
    systems = {spec.name: spec.source.system for spec in raw_specs() if spec.source}
    routed = [(s.name, p) for s in raw_specs() if s.source and core.routes(s.source.system, s.source.table)
              for p in range(s.partitions)]  # fmt: skip
    producer = OutputProducer(settings.bootstrap, f"{group}-producer")

    def handle(msg: Any) -> None:
        try:
            outcome = core.process(systems[msg.topic()], msg.key(), msg.value(), datetime.now(UTC))
        except InvalidEvent:
            return  # the worker would dead-letter it; the baseline only counts the core's cost
        for output in outcome.outputs:
            producer.publish(names[output.topic_id], output)

    def write() -> None:  # what the worker does at each commit, minus the changelog
        rows.write_changes()
        published.write_changes()

    starts = resume_offsets(settings.bootstrap, settings.worker_id, routed)
    try:
        Loop(settings.bootstrap, group, starts).run(handle, producer, write)
    finally:
        rows.close()
        published.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hub.bench.baselines")
    parser.add_argument("loop", choices=("engine", "forward"), help="BL4 or BL3")
    parser.add_argument("--group", required=True, help="consumer group whose lag the bench reads")
    args = parser.parse_args(argv)
    run = forward if args.loop == "forward" else engine
    run(HubSettings(), args.group)


if __name__ == "__main__":
    main(sys.argv[1:])
