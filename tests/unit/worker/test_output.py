"""How the output producer reads Kafka's transaction errors."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from hub.worker.output import Fenced, TransactionFailed, _translate, transactional_id


@pytest.mark.parametrize(
    ("error", "expected", "says"),
    [
        (KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True), Fenced,
         "another worker took the raw topics over"),
        (KafkaError(KafkaError.PRODUCER_FENCED, "epoch"), Fenced, "took the raw topics over"),
        (KafkaError(KafkaError._FATAL, "out of sequence", fatal=True), Fenced, "failed for good"),
        (KafkaError(KafkaError._TIMED_OUT, "no answer", txn_requires_abort=True),
         TransactionFailed, "no answer"),
    ],
)  # fmt: skip
def test_fencing_and_failures_become_the_workers_own_errors(error, expected, says):
    translated = _translate(KafkaException(error))
    assert isinstance(translated, expected) and says in str(translated)


def test_other_errors_are_left_as_they_are():
    exc = KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "retriable", retriable=True))
    assert _translate(exc) is exc


def test_the_transactional_id_is_the_same_for_whoever_holds_a_partition_number():
    assert transactional_id("hub", 0) == "hub-raw-p0"
    assert transactional_id("hub", 2) == "hub-raw-p2" != transactional_id("other", 2)
