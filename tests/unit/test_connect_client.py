"""Restarting FAILED connectors and tasks (Connect's REST API answers recorded here)."""

from __future__ import annotations

from typing import Any

from hub.connect_client import ConnectClient

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
