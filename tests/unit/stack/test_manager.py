"""Waiting for a connector: FAILED tasks are restarted a few times before giving up."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import StackError
from hub.stack import manager


class Statuses:
    """A Connect client that answers the given statuses in turn and records restarts."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)
        self.restarted = 0

    def status(self, name: str) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"connector": {"state": "RUNNING"},
                "tasks": [{"id": 0, "state": state, "trace": "Socket error\n\tat ..."}]}  # fmt: skip

    def restart_failed(self, names: list[str]) -> dict[str, str]:
        self.restarted += 1
        return dict.fromkeys(names, "Socket error")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(manager.time, "sleep", lambda seconds: None)


def test_a_failed_task_is_restarted_and_then_runs():
    client = Statuses("FAILED", "RUNNING")
    last = manager.wait_running(client, "hub-erp", timeout=10)  # type: ignore[arg-type]
    assert client.restarted == 1
    assert last["tasks"][0]["state"] == "RUNNING"


def test_a_task_that_keeps_failing_is_an_error_with_its_trace():
    client = Statuses("FAILED")
    with pytest.raises(StackError, match="connector hub-erp FAILED:\nSocket error"):
        manager.wait_running(client, "hub-erp", timeout=10, restarts=2)  # type: ignore[arg-type]
    assert client.restarted == 2
