"""What a webhook receives of an alert, and when a delivery is tried again."""

from __future__ import annotations

import orjson
import pytest

from hub.core.webhooks import SIGNATURE, backoff, delivery, retriable, sign, verify
from hub.errors import InvalidEvent

ALERT = orjson.dumps({"transition_id": "ab12", "event": "out_of_stock", "status": "firing"})


def test_the_body_goes_unchanged_signed_with_the_transition_as_idempotency_key():
    made = delivery(b"oos:123@store:PAR01", ALERT, b"secret")
    assert made is not None and made.body == ALERT
    assert made.headers["Idempotency-Key"] == "ab12"
    assert made.headers["X-Hub-Alert-Key"] == "oos:123@store:PAR01"
    assert made.headers["X-Hub-Event"] == "out_of_stock"
    assert verify(b"secret", ALERT, made.headers[SIGNATURE])
    assert not verify(b"other", ALERT, made.headers[SIGNATURE])
    assert not verify(b"secret", ALERT + b" ", made.headers[SIGNATURE])
    assert made.headers[SIGNATURE] == sign(b"secret", ALERT)
    assert "secret" not in repr(made)


def test_a_tombstone_is_nothing_to_deliver_and_what_is_no_alert_is_refused():
    assert delivery(b"k", None, b"s") is None
    with pytest.raises(InvalidEvent):
        delivery(b"k", b'{"event": "x"}', b"s")
    with pytest.raises(InvalidEvent):
        delivery(b"k", b"not json", b"s")


@pytest.mark.parametrize(("status", "again"), [(None, True), (500, True), (503, True),
                                               (429, True), (408, True), (400, False),
                                               (401, False), (404, False), (200, False)])  # fmt: skip
def test_what_is_tried_again(status, again):
    assert retriable(status) is again


def test_backoff_doubles_up_to_its_ceiling():
    assert [backoff(n, 5.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_webhooks_without_a_secret_are_refused():
    from pydantic import ValidationError

    from hub.settings import HubSettings

    with pytest.raises(ValidationError, match="HUB_WEBHOOK_SECRET"):
        HubSettings(webhooks={"ops": "http://127.0.0.1:1/x"})
    settings = HubSettings(webhooks={"ops": "http://127.0.0.1:1/x"}, webhook_secret="s3cr3t")
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())
