"""Typed clients for the channels' own services, in Python.

``Subscriber``: a unified topic read with a consumer group of the caller's, each record handed
over as its pydantic model (``hub.models``; a tombstone as None: the key was deleted), the offset
committed only after the handler returned — at least once: a crash in the handler means the record
comes again, and a restart resumes after the last committed one.

``HubApi``: the HTTP API (``hub api``) as methods returning its answers' models, and its change
stream as an iterator that resumes after the last event it gave on a dropped connection.

Other languages read the same topics with the JSON Schemas in ``schemas/`` and call the API with
its OpenAPI document (``schemas/openapi.json``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import BaseModel

from hub.api.answers import (
    AlertsAnswer,
    AvailabilityAnswer,
    CustomerAnswer,
    InventoryAnswer,
    OrderLinesAnswer,
    StatusAnswer,
)
from hub.models import UNIFIED_MODELS
from hub.topics import TopicSpec, registry


@dataclass(frozen=True)
class Delivery:
    """One record of a unified topic: its key, its model (None: deleted) and where it was."""

    key: str
    value: BaseModel | None
    partition: int
    offset: int


class Subscriber:
    """Reads the unified topic ``topic_id`` (``unified.availability``, …) as the consumer group
    ``group``: a new group starts at the topic's beginning (the full current state of a compacted
    topic), a known one where it committed."""

    def __init__(self, bootstrap: str, topic_id: str, group: str) -> None:
        spec: TopicSpec = registry()[topic_id]
        if spec.kind != "unified" or spec.model is None:
            raise ValueError(f"{topic_id} is not a unified topic with a model")
        self.spec, self.model = spec, UNIFIED_MODELS[spec.model]
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", "log_level": 3,
        })  # fmt: skip
        self.consumer.subscribe([spec.name])

    def decode(self, key: bytes | None, value: bytes | None) -> tuple[str, BaseModel | None]:
        model = self.model.model_validate(orjson.loads(value)) if value is not None else None
        return (key or b"").decode(), model

    def poll(self, timeout: float = 1.0) -> Delivery | None:
        """The next record, or None after ``timeout`` seconds without one (not committed yet:
        ``commit`` it once handled)."""
        msg = self.consumer.poll(timeout)
        if msg is None:
            return None
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            return None
        key, value = self.decode(msg.key(), msg.value())
        return Delivery(key, value, msg.partition() or 0, msg.offset() or 0)

    def commit(self, delivery: Delivery) -> None:
        """Record that ``delivery`` (and everything before it in its partition) is handled."""
        self.consumer.commit(offsets=[TopicPartition(self.spec.name, delivery.partition,
                                                     delivery.offset + 1)], asynchronous=False)  # fmt: skip

    def run(self, handler: Callable[[Delivery], None], stop: Callable[[], bool] = lambda: False,
            idle: float = 1.0) -> int:  # fmt: skip
        """Hand every record to ``handler`` and commit it after the handler returned, until
        ``stop()`` says so; the number handled. An exception in the handler leaves the record
        uncommitted and propagates (the next run gets it again)."""
        handled = 0
        while not stop():
            delivery = self.poll(idle)
            if delivery is None:
                continue
            handler(delivery)
            self.commit(delivery)
            handled += 1
        return handled

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ApiError(Exception):
    """An answer of the API other than 200: its status, code and detail (and Retry-After)."""

    def __init__(self, status: int, code: str, detail: Any, retry_after: float | None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after


@dataclass(frozen=True)
class StreamEvent:
    """One event of the change stream: ``change`` or ``snapshot``, the record, and its id (the
    position to resume after)."""

    event: str
    topic: str
    key: str
    value: dict[str, Any] | None
    id: str | None


class HubApi:
    """The HTTP API at ``base_url`` (e.g. http://127.0.0.1:18080), with ``api_key`` if it asks
    for one. Waits out a 503 (the API still reading the topics) for up to ``ready_timeout`` s."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0,
                 ready_timeout: float = 60.0) -> None:  # fmt: skip
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout, self.ready_timeout = timeout, ready_timeout

    def _get(self, path: str, **params: Any) -> Any:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            answer = self.session.get(self.base + path, timeout=self.timeout,
                                      params={k: v for k, v in params.items() if v is not None})  # fmt: skip
            if answer.status_code == 200:
                return answer.json()
            retry = answer.headers.get("Retry-After")
            if answer.status_code == 503 and retry and time.monotonic() < deadline:
                time.sleep(float(retry))
                continue
            body = answer.json() if answer.headers.get("content-type", "").startswith(
                "application/json") else {}  # fmt: skip
            raise ApiError(answer.status_code, body.get("error", "http_error"),
                           body.get("detail", answer.text[:500]), float(retry) if retry else None)  # fmt: skip

    def availability(self, gtin: str, channel: str | None = None) -> AvailabilityAnswer:
        return AvailabilityAnswer.model_validate(
            self._get(f"/v1/articles/{gtin}/availability", channel=channel)
        )

    def inventory(self, gtin: str, location: str | None = None) -> InventoryAnswer:
        return InventoryAnswer.model_validate(
            self._get(f"/v1/articles/{gtin}/inventory", location=location)
        )

    def customer(self, ref: str) -> CustomerAnswer:
        return CustomerAnswer.model_validate(self._get(f"/v1/customers/{ref}"))

    def order_lines(self, ref: str) -> OrderLinesAnswer:
        return OrderLinesAnswer.model_validate(self._get(f"/v1/customers/{ref}/order-lines"))

    def alerts(self, gtin: str | None = None, location: str | None = None,
               status: str = "firing") -> AlertsAnswer:  # fmt: skip
        return AlertsAnswer.model_validate(self._get("/v1/alerts", gtin=gtin, location=location,
                                                     status=status))  # fmt: skip

    def status(self) -> StatusAnswer:
        return StatusAnswer.model_validate(self._get("/v1/status"))

    def stream(self, article: list[str] | None = None, location: list[str] | None = None,
               customer: list[str] | None = None, topic: list[str] | None = None,
               since: str | None = None, reconnect: bool = True) -> Iterator[StreamEvent]:  # fmt: skip
        """The change stream of what is chosen, for ever: a dropped connection is opened again
        after the last event's id (nothing missed, nothing twice)."""
        last = since
        params = {"article": article or [], "location": location or [],
                  "customer": customer or [], "topic": topic or []}  # fmt: skip
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.session.get(self.base + "/v1/stream", params=params, headers=headers,
                                      stream=True, timeout=(self.timeout, 60)) as answer:  # fmt: skip
                    if answer.status_code != 200:
                        body = answer.json()
                        raise ApiError(answer.status_code, body.get("error", ""),
                                       body.get("detail"), None)  # fmt: skip
                    for event in _events(answer.iter_lines(decode_unicode=True)):
                        last = event.id or last
                        yield event
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError):  # fmt: skip
                if not reconnect:
                    raise
                time.sleep(1.0)


def _events(lines: Iterator[str]) -> Iterator[StreamEvent]:
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = fields.get(name, "") + value.removeprefix(" ")
            continue
        if "data" in fields:
            data = orjson.loads(fields["data"])
            yield StreamEvent(fields.get("event", "message"), data["topic"], data["key"],
                              data["value"], fields.get("id"))  # fmt: skip
        fields = {}
