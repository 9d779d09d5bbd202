"""``hub api`` over a read model filled by the test (no Kafka): every route, JSON errors, the 503
until caught up, API keys, CORS, the change stream and the OpenAPI file."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.spec import OPENAPI_FILE, openapi
from hub.core.readmodel import AVAILABILITY, GOLDEN, INVENTORY, LINKS, ORDER_LINES, ReadModel
from hub.settings import HubSettings

EXAMPLES = Path(__file__).parents[3] / "schemas/examples"


def example(name: str) -> tuple[str, dict[str, Any]]:
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    return document["key"], document["value"]


class Filled:
    """A source whose model the test fills; ``ready`` when the test says."""

    def __init__(self) -> None:
        self.model, self.lock, self.ready = ReadModel(), threading.Lock(), threading.Event()
        self.remaining, self.dead_letters, self.lag, self.error = 3, Counter(), 12, None
        self.listeners: list[Callable[[], None]] = []
        self.offset = 0

    def on_change(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def put(self, topic: str, key: str, value: dict[str, Any] | None) -> None:
        with self.lock:
            self.model.apply(topic, key, value, 0, self.offset)
        self.offset += 1
        for listener in self.listeners:
            listener()


@pytest.fixture
def source() -> Filled:
    filled = Filled()
    for name, topic in (("inventory_level.v2", INVENTORY), ("availability.v1", AVAILABILITY),
                        ("golden_customer.v1", GOLDEN), ("order_line.v1", ORDER_LINES)):  # fmt: skip
        key, value = example(name)
        filled.put(topic, key, value)
    _, golden = example("golden_customer.v1")
    for ref in golden["members"]:
        filled.put(LINKS, ref, {"schema_version": 1, "ref": ref, "golden_id": golden["golden_id"],
                                "emitted_at": "2026-12-07T09:31:00Z"})  # fmt: skip
    filled.ready.set()
    return filled


def client(source: Filled, **settings: Any) -> TestClient:
    return TestClient(create_app(HubSettings(**settings), source))


def test_every_read_route_answers_from_the_model_with_its_freshness(source):
    _, level = example("inventory_level.v2")
    _, figure = example("availability.v1")
    _, golden = example("golden_customer.v1")
    _, line = example("order_line.v1")
    gtin = figure["gtin"]
    with client(source) as api:
        answer = api.get(f"/v1/articles/{gtin}/availability").json()
        assert answer["groups"][0]["available"] == figure["available"]
        assert answer["freshness"]["source_position"] == figure["source_position"]
        levels = api.get(f"/v1/articles/{level['gtin']}/inventory").json()["levels"]
        assert [lv["on_hand"] for lv in levels] == [level["on_hand"]]
        for ref in (golden["golden_id"], golden["members"][0]):
            assert (
                api.get(f"/v1/customers/{ref}").json()["customer"]["golden_id"]
                == golden["golden_id"]
            )
        if line["customer_ref"] in golden["members"]:
            lines = api.get(f"/v1/customers/{golden['golden_id']}/order-lines").json()["lines"]
            assert [x["order_id"] for x in lines] == [line["order_id"]]
        assert api.get("/v1/alerts").json() == {"alerts": [], "freshness": None}
        stock = api.get("/v1/stock").json()
        assert stock["position"] == f"0.0.1~1.0.2~3.0.3~4.0.{source.offset}~5.0.4"
        assert any(a["gtin"] == level["gtin"] for a in stock["articles"])
        status = api.get("/v1/status").json()
        assert status["ready"] and status["worker_lag"] == 12
        assert status["records"][GOLDEN] == 1 and status["sources"]


def test_bad_ids_and_unknown_things_are_json_errors(source):
    with client(source) as api:
        for path, status, code in [
            ("/v1/articles/12/availability", 400, "bad_gtin"),
            ("/v1/articles/4006381333931/availability", 404, "unknown_article"),
            ("/v1/articles/3760000000017/inventory?location=nowhere", 400, "bad_location"),
            ("/v1/customers/g-0000000000000000", 404, "unknown_customer"),
            ("/v1/customers/not a ref", 400, "bad_customer_ref"),
            ("/v1/customers/shop:999999/order-lines", 404, "unknown_customer"),
            ("/v1/alerts?status=maybe", 400, "bad_request"),
            ("/v1/stream?from=garbage", 400, "bad_position"),
            ("/v1/stream?topic=raw.pos", 400, "bad_topic"),
            ("/v1/nothing-here", 404, "not_found"),
        ]:
            answer = api.get(path)
            assert (answer.status_code, answer.json().get("error")) == (status, code), (
                path,
                answer.text,
            )
            assert answer.json()["detail"], path


def test_503_with_retry_after_until_the_model_has_caught_up(source):
    source.ready.clear()
    with client(source) as api:
        answer = api.get("/v1/articles/3760000000017/availability")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
        assert answer.json()["error"] == "not_ready" and "3 partitions" in answer.json()["detail"]
        assert api.get("/v1/status").json()["ready"] is False  # status answers all the same
        assert api.get("/health").json()["ready"] is False
        assert api.get("/ready").status_code == 503
        source.ready.set()
        assert api.get("/ready").status_code == 200
        assert api.get("/v1/articles/3760000000017/availability").status_code == 200
        source.error = "KafkaException(...)"
        assert api.get("/v1/stock").json()["error"] == "reader_failed"


def test_api_keys_are_asked_for_and_never_echoed(source):
    with client(source, api_keys="k-one, k-two") as api:
        refused = api.get("/v1/stock")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert api.get("/v1/stock", headers={"Authorization": "Bearer k-two"}).status_code == 200
        assert api.get("/v1/stock", headers={"X-API-Key": "k-one"}).status_code == 200
        wrong = api.get("/v1/status", headers={"X-API-Key": "k-three"})
        assert wrong.status_code == 401 and "k-" not in wrong.text
        # Health, metrics and the dashboard page (it asks for the key itself) are open.
        assert api.get("/health").status_code == 200
        assert api.get("/metrics").status_code == 200
        assert "API key" in api.get("/dashboard").text


def test_cors_allows_only_the_configured_origins(source):
    with client(source, api_cors_origins=["https://shop.example.com"]) as api:
        allowed = api.get("/v1/stock", headers={"Origin": "https://shop.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
        other = api.get("/v1/stock", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
    with client(source) as api:
        assert (
            "access-control-allow-origin"
            not in api.get("/v1/stock", headers={"Origin": "https://shop.example.com"}).headers
        )


def test_request_latency_is_measured_per_route_template(source):
    with client(source) as api:
        api.get("/v1/customers/shop:17")
        text = api.get("/metrics").text
    assert 'hub_api_request_seconds_count{route="/v1/customers/{ref}",status="2xx"}' in text
    assert "shop:17" not in text


def read_events(lines: Any, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.strip()
    return events


def test_the_stream_sends_changes_of_what_is_followed_and_resumes_after_an_event_id(source):
    _, level = example("inventory_level.v2")
    gtin, key = level["gtin"], f"{level['gtin']}@{level['location_id']}"
    with client(source) as api:
        # From the position of an earlier answer: the changes since, of the followed article only.
        start = api.get("/v1/stock").json()["position"]
        source.put(GOLDEN, "g-00000000000000aa", None)  # not followed
        source.put(INVENTORY, key, level | {"on_hand": "41"})
        source.put(INVENTORY, key, level | {"on_hand": "40"})
        with api.stream("GET", f"/v1/stream?article={gtin}&from={start}") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            first, second = read_events(response.iter_lines(), 2)
        assert [json.loads(e["data"])["value"]["on_hand"] for e in (first, second)] == ["41", "40"]
        assert first["event"] == "change"
        # Resuming after the first event's id gives the second again, and nothing before it.
        with api.stream(
            "GET", f"/v1/stream?article={gtin}", headers={"Last-Event-ID": first["id"]}
        ) as response:
            (again,) = read_events(response.iter_lines(), 1)
        assert json.loads(again["data"])["value"]["on_hand"] == "40" and again["id"] == second["id"]


def test_a_stream_that_cannot_resume_gets_the_current_values_first(source):
    _, level = example("inventory_level.v2")
    source.model.log.size = 1  # keeps only the newest change
    key = f"{level['gtin']}@{level['location_id']}"
    source.put(INVENTORY, key, level | {"on_hand": "7"})
    source.put(INVENTORY, key, level | {"on_hand": "8"})
    with (
        client(source) as api,
        api.stream(
            "GET", f"/v1/stream?article={level['gtin']}&topic={INVENTORY}&from=0.0.1"
        ) as response,
    ):
        (snap,) = read_events(response.iter_lines(), 1)
    assert snap["event"] == "snapshot" and json.loads(snap["data"])["value"]["on_hand"] == "8"


def test_the_openapi_file_in_the_repo_is_the_apps():
    assert json.loads(OPENAPI_FILE.read_text()) == json.loads(json.dumps(openapi(HubSettings()))), (
        "schemas/openapi.json differs from the app: run `hub api --openapi schemas/openapi.json`"
    )


def test_an_answer_follows_the_article_as_it_changes(source):
    key, figure = example("availability.v1")
    path = f"/v1/articles/{figure['gtin']}/availability"
    with client(source) as api:
        assert api.get(path).json()["groups"][0]["available"] == figure["available"]
        source.put(AVAILABILITY, key, figure | {"available": "1"})
        assert api.get(path).json()["groups"][0]["available"] == "1"
        source.put(AVAILABILITY, key, None)  # its only record: the article is gone
        gone = api.get(path)
        assert (gone.status_code, gone.json()["error"]) == (404, "unknown_article")
