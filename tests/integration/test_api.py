"""`hub api` on the real stack: a till sale reaches its answers and its change stream, a customer
and their order lines by any member ref, API keys, and the typed topic client that commits after
its handler and resumes after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from hub.client import ApiError, Delivery, HubApi, StreamEvent, Subscriber
from hub.stack.procs import free_port
from tests.integration.harness import wait_until
from tests.integration.test_stock_flow import new_gtin, till_sale

pytestmark = pytest.mark.integration

KEY = "it-" + uuid.uuid4().hex


class ApiProcess:
    def __init__(self, stack: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = stack.state_dir / "logs" / f"api-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "api", "--port", str(self.port)],
                env={**stack.env, "HUB_API_KEYS": KEY}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> bool:
        try:
            return bool(requests.get(f"{self.url}/health", timeout=2).json()["ready"])
        except requests.RequestException:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def api(stack: Any, worker: Any) -> Iterator[ApiProcess]:
    process = ApiProcess(stack)
    try:
        wait_until(process.ready, "hub api caught up with the topics", timeout=180,
                   explain=lambda: process.log.read_text()[-3000:])  # fmt: skip
        yield process
    finally:
        process.stop()
    assert KEY not in process.log.read_text()  # the key is never logged


@pytest.fixture
def client(api: ApiProcess) -> HubApi:
    return HubApi(api.url, api_key=KEY)


def answer_when(ask: Any, holds: Any, what: str, timeout: float = 120) -> Any:
    found: list[Any] = []

    def check() -> bool:
        try:
            value = ask()
        except ApiError as exc:
            if exc.status != 404:
                raise
            return False
        found[:] = [value]
        return bool(holds(value))

    wait_until(check, what, timeout)
    return found[0]


def on_hand(answer: Any, location: str) -> Decimal | None:
    return next((level.on_hand for level in answer.levels if level.location_id == location), None)


def test_a_till_sale_reaches_the_answers_and_the_change_stream(stack, client):
    gtin = new_gtin("376999100001")
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('PAR01', %s, 6)", (gtin,)
    )
    answer_when(lambda: client.inventory(gtin), lambda a: on_hand(a, "store:PAR01") == 6,
                "the new article's level in the API")  # fmt: skip
    events: list[StreamEvent] = []

    def follow() -> None:
        try:
            for event in client.stream(article=[gtin], reconnect=False):
                events.append(event)
                if len(events) >= 50:
                    return
        except requests.RequestException:
            return  # the API stopped after the test

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(1.0)  # the stream is open
    till_sale(stack, "PAR01", gtin, 1)
    wait_until(lambda: any(e.topic == "unified.inventory" and e.value and
                           Decimal(e.value["on_hand"]) == 5 for e in events),
               "the sale's level on the change stream")  # fmt: skip
    wait_until(lambda: any(e.topic == "unified.availability" and e.value and
                           e.value["scope_id"] == "store:PAR01" and
                           Decimal(e.value["on_hand"]) == 5 for e in events),
               "the sale's availability on the change stream")  # fmt: skip
    # Only the followed article's records: its levels, figures, alerts and the sale's order line.
    assert all(e.event == "change" and (e.value or {}).get("gtin", gtin) == gtin for e in events)
    assert any(e.topic == "unified.order_lines" for e in events)
    level = answer_when(lambda: client.inventory(gtin), lambda a: on_hand(a, "store:PAR01") == 5,
                        "the sale in the API's answer")  # fmt: skip
    assert level.freshness is not None and level.freshness.source_system == "pos"
    figures = client.availability(gtin)
    assert {f.scope_id for f in figures.locations} == {"store:PAR01"}
    assert any(g.scope_id == "group:web-fulfilment" for g in figures.groups)
    assert figures.freshness is not None and figures.freshness.source_committed_at is not None
    # A client that reconnects after the first event gets the rest again, nothing before it.
    first = events[0]
    resumed = client.stream(article=[gtin], since=first.id, reconnect=False)
    again = [next(resumed) for _ in range(len(events) - 1)]
    assert [(e.topic, e.key, e.value) for e in again] == [
        (e.topic, e.key, e.value) for e in events[1:]
    ]


def test_a_customer_and_their_order_lines_by_any_member_ref(stack, client):
    email = f"api.{uuid.uuid4().hex[:8]}@example.fr"
    (customer,) = stack.sql(
        "shop", "INSERT INTO shop.customer (email, first_name, last_name, accepts_marketing,"
        " created_at, updated_at) VALUES (%s, 'Ines', 'Marchal', true, now(), now()) RETURNING id",
        (email,),
    )[0]  # fmt: skip
    (order,) = stack.sql("shop", "INSERT INTO shop.orders (customer_id, status, created_at, "
                         "updated_at, total) VALUES (%s, 'paid', now(), now(), 9.90) RETURNING id",
                         (customer,))[0]  # fmt: skip
    stack.sql("shop", "INSERT INTO shop.order_line (order_id, line_no, variant_id, quantity, "
              "price) SELECT %s, 1, min(id), 1, 9.90 FROM shop.variant", (order,))  # fmt: skip
    ref = f"shop:{customer}"
    golden = answer_when(lambda: client.customer(ref), lambda a: True, "the golden customer")
    assert ref in golden.customer.members
    assert golden.customer.fields.email is not None and golden.customer.fields.email.value == email
    by_id = client.customer(golden.customer.golden_id)
    assert by_id.customer.members == golden.customer.members
    lines = answer_when(lambda: client.order_lines(ref), lambda a: a.lines, "the order line")
    assert [(line.order_id, line.customer_ref) for line in lines.lines] == [(str(order), ref)]


def test_keys_errors_and_status(api, client):
    assert requests.get(f"{api.url}/v1/stock", timeout=10).status_code == 401
    wrong = requests.get(f"{api.url}/v1/stock", headers={"X-API-Key": "nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    with pytest.raises(ApiError) as caught:
        client.availability("4006381333931")
    assert (caught.value.status, caught.value.code) == (404, "unknown_article")
    with pytest.raises(ApiError) as caught:
        client.customer("nobody here")
    assert (caught.value.status, caught.value.code) == (400, "bad_customer_ref")
    status = client.status()
    assert status.ready and {"pos", "shop", "erp"} <= set(status.sources)
    assert status.worker_lag is not None and status.records["unified.inventory"] > 0
    metrics = requests.get(f"{api.url}/metrics", timeout=10).text
    assert 'hub_source_commit_to_append_seconds_count{source="pos"}' in metrics


def test_the_topic_client_commits_after_its_handler_and_resumes_after_a_restart(stack):
    bootstrap = stack.endpoints["kafka_bootstrap"]
    group = f"it-client-{uuid.uuid4().hex[:8]}"
    gtin = new_gtin("376999100002")
    key = f"{gtin}@store:PAR01"
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('PAR01', %s, 4)", (gtin,)
    )
    seen: list[Delivery] = []
    with Subscriber(bootstrap, "unified.inventory", group) as first:

        def handle(delivery: Delivery) -> None:
            seen.append(delivery)

        deadline = time.monotonic() + 120
        first.run(
            handle, stop=lambda: any(d.key == key for d in seen) or time.monotonic() > deadline
        )
    mine = [d for d in seen if d.key == key]
    assert mine and mine[-1].value is not None and mine[-1].value.on_hand == 4  # type: ignore[attr-defined]
    # A handler that fails leaves its record uncommitted: the next run gets it again.
    till_sale(stack, "PAR01", gtin, 1)
    with Subscriber(bootstrap, "unified.inventory", group) as second:

        def fail(delivery: Delivery) -> None:
            if delivery.key == key:
                raise RuntimeError("the channel's database is down")

        with pytest.raises(RuntimeError):
            second.run(fail, stop=lambda: time.monotonic() > deadline + 120)
    again: list[Delivery] = []
    with Subscriber(bootstrap, "unified.inventory", group) as third:
        third.run(again.append, stop=lambda: any(d.key == key for d in again))
    (sale,) = [d for d in again if d.key == key]
    assert sale.value is not None and sale.value.on_hand == 3  # type: ignore[attr-defined]
    # Resumed after what the first run committed: nothing it handled came again.
    assert not {(d.partition, d.offset) for d in again} & {(d.partition, d.offset) for d in seen}


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    from pathlib import Path

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        message = (f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                   "(.ci/run installs them)")  # fmt: skip
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_shows_a_till_sale_live(stack, api, client, browser):
    from selenium.webdriver.common.by import By

    gtin = new_gtin("376999100003")
    key = f"{gtin}@store:LYO01"
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('LYO01', %s, 9)", (gtin,)
    )
    answer_when(lambda: client.availability(gtin), lambda a: a.locations, "the article's figure")
    browser.get(f"{api.url}/dashboard")
    # The API asks for a key: the page asks the user for it.
    wait_until(lambda: browser.find_element(By.ID, "key").is_displayed(), "the key form")
    browser.find_element(By.ID, "key-input").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key button").click()
    browser.find_element(By.ID, "filter").send_keys(gtin)

    def cell(name: str) -> str:
        found = browser.find_elements(By.ID, f"{name}-{key}")
        return found[0].text if found else ""

    wait_until(lambda: cell("on-hand") == "9" and cell("available") == "9", "the article on the page",
               explain=lambda: browser.find_element(By.TAG_NAME, "body").text[:2000])  # fmt: skip
    wait_until(lambda: browser.find_element(By.ID, "state").text == "live", "the page live")
    till_sale(stack, "LYO01", gtin, 2)
    wait_until(lambda: cell("on-hand") == "7" and cell("available") == "7",
               "the sale's numbers on the page, without a reload",
               explain=lambda: f"{cell('on-hand')!r} {cell('available')!r}")  # fmt: skip
    # The pipeline panel shows every source's freshness, the lag and the dead letters.
    wait_until(lambda: {"pos", "shop", "erp"} <= set(browser.find_element(By.ID, "sources").text.split()),
               "the sources on the page")  # fmt: skip
    assert browser.find_element(By.ID, "lag").text.isdigit()
