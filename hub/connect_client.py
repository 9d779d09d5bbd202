"""A small Kafka Connect REST client (requests). HTTP errors become ``ConnectError``.

Only 409 (rebalance in progress) and connection refusals while the worker starts are retried.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import requests


class ConnectError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kafka Connect answered {status}: {message}")
        self.status = status
        self.message = message


class ConnectClient:
    def __init__(self, url: str, timeout: float = 15.0, retries: int = 20) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call; retries with backoff while Connect rebalances (409, or a 500 saying a
        rebalance is expected). Returns the parsed JSON body, or None."""
        delay = 0.25
        for attempt in range(self.retries + 1):
            response = self.session.request(
                method, self.url + path, json=body, timeout=self.timeout
            )
            rebalancing = response.status_code == 409 or (
                response.status_code == 500 and "rebalance is expected" in response.text
            )
            if rebalancing and attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
                continue
            if response.status_code >= 400:
                try:
                    message = str(response.json().get("message", response.text))
                except ValueError:
                    message = response.text
                raise ConnectError(response.status_code, message)
            return response.json() if response.content else None
        raise AssertionError("unreachable")  # pragma: no cover

    def alive(self) -> bool:
        try:
            self.session.get(self.url + "/", timeout=2)
        except requests.RequestException:
            return False
        return True

    def connectors(self) -> list[str]:
        return list(self.request("GET", "/connectors"))

    def config(self, name: str) -> dict[str, str] | None:
        try:
            return dict(self.request("GET", f"/connectors/{name}/config"))
        except ConnectError as exc:
            if exc.status == 404:
                return None
            raise

    def validate(self, connector_class: str, config: dict[str, str]) -> dict[str, list[str]]:
        """Connect's own validation: errors per config key (empty when the config is valid)."""
        short = connector_class.rsplit(".", 1)[-1]
        answer = self.request("PUT", f"/connector-plugins/{short}/config/validate", config)
        errors: dict[str, list[str]] = {}
        for item in answer.get("configs", []):
            value = item.get("value", {})
            if value.get("errors"):
                errors[value["name"]] = list(value["errors"])
        return errors

    def apply(
        self, name: str, config: dict[str, str]
    ) -> Literal["created", "updated", "unchanged"]:
        """Create or update (``PUT /connectors/{name}/config``); idempotent."""
        current = self.config(name)
        wanted = {**config, "name": name}
        if current == wanted:
            return "unchanged"
        self.request("PUT", f"/connectors/{name}/config", config)
        return "created" if current is None else "updated"

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/connectors/{name}/status"))

    def delete(self, name: str) -> None:
        self.request("DELETE", f"/connectors/{name}")

    def restart_failed(self, names: Iterable[str]) -> dict[str, str]:
        """Restart every FAILED connector or task among ``names`` (Connect never does it itself).

        Returns connector name → the first line of the failure's trace, for those restarted.
        """
        states = self.request("GET", "/connectors?expand=status")
        restarted: dict[str, str] = {}
        for name in names:
            status = (states.get(name) or {}).get("status") or {}
            failed = [
                part
                for part in [status.get("connector") or {}, *(status.get("tasks") or [])]
                if part.get("state") == "FAILED"
            ]
            if not failed:
                continue
            self.request("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true")
            restarted[name] = (failed[0].get("trace") or "no trace").splitlines()[0][:300]
        return restarted
