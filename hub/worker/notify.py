"""Stock alerts delivered to webhooks: one thread and one consumer group per declared webhook,
beside the stream loop and never in its way (hub.core.webhooks says what is sent).

Each thread reads ``unified.alerts`` (read_committed: only transitions whose transaction
committed) in its own consumer group (``<worker id>-webhook-<name>``: the workers of a group share
its partitions), POSTs each transition, and commits the record's offset only once the receiver
took it (2xx) or refused it for good (4xx but 408, 425, 429): at least once, in order per
partition. A worker killed between an alert and its delivery leaves the offset uncommitted, and
whoever holds that partition next delivers it. A receiver that is down holds back its own
webhook only: the others and the pipeline go on; the metrics show the wait.
"""

from __future__ import annotations

import logging
import threading
import time

import requests
from confluent_kafka import Consumer, KafkaException, Message

from hub.core.webhooks import Delivery, backoff, delivery, retriable
from hub.errors import InvalidEvent
from hub.settings import HubSettings
from hub.topics import registry
from hub.worker import metrics
from hub.worker.logs import KAFKA_LOG

log = logging.getLogger("hub.worker")
ALERTS = "unified.alerts"


class Notifier:
    def __init__(self, settings: HubSettings, name: str, url: str) -> None:
        self.settings, self.name, self.url = settings, name, url
        secret = settings.webhook_secret
        self.secret = secret.get_secret_value().encode() if secret is not None else b""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"hub-webhook-{name}", daemon=True)
        self.session = requests.Session()

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the delivery in hand (blocks up to ``timeout``)."""
        self.stopping.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._loop()
            except Exception as exc:  # never silent, never fatal to the worker: start over
                log.error(
                    "webhook %s: %r; reading again from the last delivered alert", self.name, exc
                )
                self.stopping.wait(1.0)

    def _loop(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.settings.bootstrap,
            "group.id": f"{self.settings.worker_id}-webhook-{self.name}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "log_level": 3, "logger": KAFKA_LOG,
        })  # fmt: skip
        consumer.subscribe([registry()[ALERTS].name])
        try:
            while not self.stopping.is_set():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    log.warning("webhook %s: %s", self.name, message.error())
                    continue
                if self._handle(message):
                    consumer.commit(message=message, asynchronous=False)
        finally:
            try:
                consumer.close()
            except KafkaException as exc:
                log.warning("webhook %s: closing its consumer: %s", self.name, exc)

    def _handle(self, message: Message) -> bool:
        """Deliver one record; True once it is done with (delivered or refused for good), False
        when stopping first."""
        try:
            made = delivery(message.key(), message.value(), self.secret)
        except InvalidEvent as error:
            metrics.WEBHOOK_DELIVERIES.labels(self.name, "invalid").inc()
            log.warning("webhook %s: %s[%d]@%d is no alert, skipped: %s", self.name,
                        message.topic(), message.partition(), message.offset(), error)  # fmt: skip
            return True
        return made is None or self._post(made)

    def _post(self, made: Delivery) -> bool:
        started, attempt = time.monotonic(), 0
        try:
            while not self.stopping.is_set():
                attempt += 1
                status, why = self._attempt(made)
                if status is not None and 200 <= status < 300:
                    metrics.WEBHOOK_DELIVERIES.labels(self.name, "delivered").inc()
                    return True
                if not retriable(status):
                    metrics.WEBHOOK_DELIVERIES.labels(self.name, "refused").inc()
                    log.warning("webhook %s refused %s for good (%s): not retried", self.name,
                                made.key, why)  # fmt: skip
                    return True
                metrics.WEBHOOK_DELIVERIES.labels(self.name, "retried").inc()
                metrics.WEBHOOK_WAITING.labels(self.name).set(time.monotonic() - started)
                if attempt in (1, 5) or attempt % 20 == 0:
                    log.warning("webhook %s: %s not delivered (%s), attempt %d; trying again",
                                self.name, made.key, why, attempt)  # fmt: skip
                self.stopping.wait(backoff(attempt, self.settings.webhook_max_backoff))
            return False
        finally:
            metrics.WEBHOOK_WAITING.labels(self.name).set(0)

    def _attempt(self, made: Delivery) -> tuple[int | None, str]:
        try:
            answer = self.session.post(self.url, data=made.body, headers=made.headers,
                                       timeout=self.settings.webhook_timeout)  # fmt: skip
        except requests.RequestException as exc:
            return None, type(exc).__name__
        return answer.status_code, f"HTTP {answer.status_code}"


def notifiers(settings: HubSettings) -> list[Notifier]:
    return [Notifier(settings, name, url) for name, url in sorted(settings.webhooks.items())]
