"""The cause a failed delivery is counted under, from librdkafka's error."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from producer_api.publisher import FailureCause, cause_of


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (KafkaError._MSG_TIMED_OUT, FailureCause.TIMEOUT),
        (KafkaError.REQUEST_TIMED_OUT, FailureCause.TIMEOUT),
        (KafkaError._ALL_BROKERS_DOWN, FailureCause.BROKER_UNAVAILABLE),
        (KafkaError._TRANSPORT, FailureCause.BROKER_UNAVAILABLE),
        (KafkaError.NOT_LEADER_FOR_PARTITION, FailureCause.BROKER_UNAVAILABLE),
        (KafkaError.NOT_ENOUGH_REPLICAS, FailureCause.BROKER_UNAVAILABLE),
        (KafkaError._QUEUE_FULL, FailureCause.QUEUE_FULL),
        (KafkaError._FATAL, FailureCause.FATAL),
        (KafkaError.MSG_SIZE_TOO_LARGE, FailureCause.REFUSED),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, FailureCause.REFUSED),
    ],
)
def test_each_error_has_its_cause(code: int, cause: FailureCause) -> None:
    assert cause_of(KafkaError(code)) is cause


def test_a_fatal_error_is_fatal_whatever_its_code() -> None:
    assert (
        cause_of(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True))
        is FailureCause.FATAL
    )
