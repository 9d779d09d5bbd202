"""Restarting FAILED connectors and tasks (Connect's REST API answers recorded here)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.connect_client import ConnectClient, ConnectError

STATUSES = {
    "pos-cdc": {"status": {"connector": {"state": "RUNNING"},
                           "tasks": [{"id": 0, "state": "FAILED",
                                      "trace": "org.apache.kafka.connect.errors.ConnectException: "
                                               "connection refused\n\tat io.debezium..."}]}},
    "shop-cdc": {"status": {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}},
    "erp-cdc": {"status": {"connector": {"state": "FAILED", "trace": "boom"}, "tasks": []}},
    "someone-elses": {"status": {"connector": {"state": "FAILED"}, "tasks": []}},
}  # fmt: skip


class Recorded(ConnectClient):
    def __init__(self) -> None:
        super().__init__("http://connect.invalid")
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        return STATUSES if path == "/connectors?expand=status" else None


def test_only_our_failed_connectors_are_restarted_with_their_failed_tasks():
    client = Recorded()
    restarted = client.restart_failed(["pos-cdc", "shop-cdc", "erp-cdc", "missing-cdc"])
    assert restarted == {
        "pos-cdc": "org.apache.kafka.connect.errors.ConnectException: connection refused",
        "erp-cdc": "boom",
    }
    assert client.calls[1:] == [
        ("POST", "/connectors/pos-cdc/restart?includeTasks=true&onlyFailed=true"),
        ("POST", "/connectors/erp-cdc/restart?includeTasks=true&onlyFailed=true"),
    ]


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.content, self.text = status, body, body.decode()

    def json(self) -> Any:
        import json

        return json.loads(self.content)


def test_calls_made_while_connect_rebalances_are_retried(monkeypatch):
    monkeypatch.setattr("hub.connect_client.time.sleep", lambda s: None)
    answers = [Answer(409, b'{"message": "rebalance in progress"}'),
               Answer(500, b'{"message": "Request cannot be completed because a rebalance is expected"}'),
               Answer(200, b'{"name": "hub-pos"}')]  # fmt: skip
    client = ConnectClient("http://connect.invalid")
    monkeypatch.setattr(client.session, "request", lambda *a, **k: answers.pop(0))
    assert client.request("GET", "/connectors/hub-pos/config") == {"name": "hub-pos"}
    answers[:] = [Answer(500, b'{"message": "NullPointerException"}')]
    with pytest.raises(ConnectError, match="NullPointerException"):  # a real error: not retried
        client.request("GET", "/connectors/hub-pos/config")
