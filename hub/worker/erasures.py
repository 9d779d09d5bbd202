"""What every worker knows of erased customers: the salted hashes of their record refs
(``hub.customer.erased``, read whole: a record the engine makes for one of them is not published)
and the erasure events (``unified.customer.erasures``: each task forgets the source rows it kept
of the records named). Written by the identity stage (``hub.core.golden``, ``erase``)."""

from __future__ import annotations

import logging
import time

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from hub.core.golden import ERASED_TOPIC, ERASURES, erasure_key
from hub.topics import registry
from hub.worker.logs import KAFKA_LOG

log = logging.getLogger("hub.worker")


class ErasureWatch:
    def __init__(self, bootstrap: str, group: str, salt: bytes) -> None:
        self.bootstrap, self.group, self.salt = bootstrap, group, salt
        self.hashes: set[str] = set()
        self.refs: list[str] = []  # every record ref erasure events named, in order
        self._consumer: Consumer | None = None

    def erased(self, ref: str) -> bool:
        return erasure_key(self.salt, ref) in self.hashes

    def start(self, timeout: float = 60.0) -> None:
        """Read both topics from their beginning to their current end (blocks)."""
        if self._consumer is not None:
            return
        reg = registry()
        specs = [reg[ERASED_TOPIC], reg[ERASURES]]
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group,  # never joined
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "fetch.wait.max.ms": 50, "queued.max.messages.kbytes": 4096, "log_level": 3,
            "logger": KAFKA_LOG,
        })  # fmt: skip
        partitions = [TopicPartition(spec.name, p, OFFSET_BEGINNING)
                      for spec in specs for p in range(spec.partitions)]  # fmt: skip
        consumer.assign(partitions)
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, 10)[1]
                for tp in partitions}  # fmt: skip
        self._consumer = consumer
        started = time.monotonic()
        while True:
            self.poll(0.1)
            positions = consumer.position([TopicPartition(t, p) for t, p in ends])
            if all(tp.offset >= ends[(tp.topic, tp.partition)] or ends[(tp.topic, tp.partition)]
                   == 0 for tp in positions):  # fmt: skip
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the erased customers were not read to their end: {ends}")
        log.info("%d erased customer records blocked, %d erasure events read",
                 len(self.hashes), len(self.refs))  # fmt: skip

    def poll(self, timeout: float = 0.0) -> list[str]:
        """What arrived since the last call (waits ``timeout`` at most): the record refs the
        erasure events named."""
        if self._consumer is None:
            return []
        erased = registry()[ERASED_TOPIC].name
        named: list[str] = []
        for message in self._consumer.consume(1000, timeout):
            if message.error() is not None:
                continue
            if message.topic() == erased:
                self._hash(message)
            elif message.value() is not None:
                event = orjson.loads(message.value() or b"{}")
                named += [ref for ref in event.get("records", ()) if isinstance(ref, str)]
        self.refs += named
        return named

    def _hash(self, message: Message) -> None:
        key = (message.key() or b"").decode()
        if message.value() is None:
            self.hashes.discard(key)
        else:
            self.hashes.add(key)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
