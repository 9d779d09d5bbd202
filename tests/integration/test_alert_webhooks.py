"""Stock alerts reach a real local HTTP receiver: every transition at least once, signed, with a
stable idempotency key; none lost when the worker is killed between the alert and its delivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from stdnum import ean as ean_check

from hub.core.webhooks import SIGNATURE, verify
from tests.integration.harness import Worker, wait_until
from tests.integration.test_stock_flow import till_sale

pytestmark = [pytest.mark.integration, pytest.mark.faults]
SECRET = "webhook-test-secret"


class Receiver:
    """An HTTP server on a free port that keeps what it is sent; ``refuse`` makes it answer 503
    that many times first (a receiver down)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refuse = 0
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.got.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(body) for headers, body in self.got if headers["X-Hub-Alert-Key"] == key]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


def hooked_worker(stack: Any, quiet_group: list[Any], receiver: Receiver, name: str) -> Worker:
    worker = Worker(stack, name)
    worker.env |= {"HUB_WEBHOOKS": json.dumps({"ops": receiver.url}), "HUB_WEBHOOK_SECRET": SECRET}
    quiet_group.append(worker)
    worker.start()
    wait_until(worker.active, "the worker holding the raw topics")
    return worker


def gtin(body: str) -> str:
    return body + ean_check.calc_check_digit(body)


def test_every_transition_reaches_the_webhook_signed_with_a_stable_idempotency_key(
    stack, quiet_group, receiver
):
    hooked_worker(stack, quiet_group, receiver, "hooked-worker")
    article = gtin("376999000011")
    key = f"out-of-stock-online:{article}@group:web-fulfilment"
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('LYO01', %s, 3)", (article,)
    )
    till_sale(stack, "LYO01", article, 3)
    wait_until(lambda: len(receiver.alerts(key)) >= 1, "the out-of-stock alert at the webhook")
    stack.sql(
        "pos", "UPDATE pos.stock SET qty = 30 WHERE store_code = 'LYO01' AND ean = %s", (article,)
    )
    wait_until(lambda: any(a["status"] == "resolved" for a in receiver.alerts(key)),
               "back in stock at the webhook")  # fmt: skip
    events = [(a["status"], a["event"]) for a in receiver.alerts(key)]
    assert events == [("firing", "out_of_stock"), ("resolved", "back_in_stock")]
    for headers, body in receiver.got:
        assert verify(SECRET.encode(), body, headers[SIGNATURE])
        assert headers["Idempotency-Key"] == json.loads(body)["transition_id"]
    assert not verify(b"another secret", receiver.got[0][1], receiver.got[0][0][SIGNATURE])


def test_no_transition_is_lost_when_the_worker_is_killed_before_delivering_it(
    stack, quiet_group, receiver, alerts
):
    worker = hooked_worker(stack, quiet_group, receiver, "killed-hooked-worker")
    article = gtin("376999000012")
    key = f"store-out-of-stock:{article}@store:MRS01"
    receiver.refuse = 10**6  # down: every attempt fails, the alert waits undelivered
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('MRS01', %s, 2)", (article,)
    )
    till_sale(stack, "MRS01", article, 2)
    # The alert is committed on unified.alerts, and the webhook refuses everything meanwhile.
    alerts.wait_for(key, lambda v: v is not None and v["status"] == "firing")
    wait_until(lambda: receiver.refused >= 2, "the webhook refusing deliveries")
    assert not receiver.alerts(key)
    worker.kill9()
    receiver.refuse = 0  # the receiver is back; so is a worker of the group
    worker.start()
    wait_until(lambda: receiver.alerts(key), "the alert delivered by the restarted worker")
    [fired] = {a["transition_id"]: a for a in receiver.alerts(key)}.values()
    assert fired["status"] == "firing" and fired["event"] == "out_of_stock"
