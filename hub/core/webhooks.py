"""Webhook deliveries of stock alerts: what is sent, how it is signed, when to try again.

Step name ``notify``. Each alert transition (a record of ``unified.alerts``) is POSTed as it is on
the topic (the JSON body unchanged) to every declared webhook, with:

- ``X-Hub-Signature-256: sha256=<hex>`` — HMAC-SHA256 of the body with the shared secret (the
  receiver recomputes it and compares in constant time);
- ``Idempotency-Key`` — the transition's ``transition_id``: the same on every redelivery and on a
  replay, so a receiver keeps one effect per transition;
- ``X-Hub-Alert-Key`` and ``X-Hub-Event`` — the alert's key and what happened.

Delivery is at least once: a transition is retried with exponential backoff until the receiver
answers 2xx. An answer that no retry can change (4xx but 408 and 429) is given up and counted.

Pure: no I/O (the runner is ``hub.worker.notify``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import orjson

from hub.errors import InvalidEvent

STEP = "notify"
SIGNATURE = "X-Hub-Signature-256"
RETRIABLE = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST: the body and its headers."""

    key: str
    body: bytes
    headers: dict[str, str]


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does (used by the tests and documented for receivers)."""
    return hmac.compare_digest(sign(secret, body), signature)


def delivery(key: bytes | None, value: bytes | None, secret: bytes) -> Delivery | None:
    """The POST of one ``unified.alerts`` record; None for a tombstone (nothing to tell). Raises
    ``InvalidEvent`` for a record that is no alert."""
    if value is None:
        return None
    try:
        alert = orjson.loads(value)
        transition, event = alert["transition_id"], alert["event"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidEvent("invalid_record", f"not a stock alert: {exc!r}") from exc
    name = (key or b"").decode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": str(transition),
        "X-Hub-Alert-Key": name,
        "X-Hub-Event": str(event),
        SIGNATURE: sign(secret, value),
    }
    return Delivery(name, value, headers)


def retriable(status: int | None) -> bool:
    """Whether to try again after this answer (None: no answer at all)."""
    return status is None or status >= 500 or status in RETRIABLE


def backoff(attempt: int, ceiling: float) -> float:
    """Seconds before attempt ``attempt + 1`` (0.5, 1, 2, … up to ``ceiling``)."""
    return min(ceiling, 0.5 * 2.0 ** max(0, attempt - 1))
