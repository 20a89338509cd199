"""librdkafka properties from the environment: `KAFKA_CONFIG__<NAME>` variables.

Any librdkafka property (https://github.com/confluentinc/librdkafka/blob/master/
CONFIGURATION.md) can be given to both services without a code change, one variable
per property. The variable's name is the property's name after `KAFKA_CONFIG__`, in
upper case, with `.` written `_` and `_` written `___`:

    KAFKA_CONFIG__SSL_CA_LOCATION       ssl.ca.location
    KAFKA_CONFIG__LOG___LEVEL           log_level

librdkafka's names hold lower-case letters, digits, `.` and `_` (the only ones with an
`_` that take a value from text are `log_level` and `enabled_events`), so every
property has exactly one variable and every variable one property. Any other run of
underscores (`__`, `____`) is refused as ambiguous.

Each property is checked by librdkafka itself when the settings are read, so a typo
or a bad value fails at startup with the variable's name, not later in a client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from confluent_kafka import KafkaException, Producer

VARIABLE_PREFIX: Final = "KAFKA_CONFIG__"

# Properties that other settings of the services set. Given twice, one of the two would
# silently lose, so the variable is refused with the setting to use instead.
SET_BY_SHARED_SETTINGS: Final[Mapping[str, str]] = {
    "bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS",
    "metadata.broker.list": "KAFKA_BOOTSTRAP_SERVERS",
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
}

# Properties each service sets for its own clients (from its own settings, or fixed
# because its guarantees rest on them: idempotence, the bound of a POST, commits after
# the Redis write), with their librdkafka aliases, and the Python objects the services
# pass themselves. The services' values always win; a variable for one of them is
# refused rather than silently ignored. tests/unit/test_kafka_config_mapping.py keeps
# this list in step with the services' configurations.
SET_BY_THE_SERVICES: Final = frozenset(
    {
        "client.id",
        # producers
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "request.timeout.ms",
        "linger.ms",
        "queue.buffering.max.ms",
        "compression.type",
        "compression.codec",
        # The API locates a machine's partition by the same hash (telemetry_common.layout).
        "partitioner",
        # the consumer
        "group.id",
        "group.instance.id",
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.offset.reset",
        "partition.assignment.strategy",
        "max.poll.interval.ms",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "queued.max.messages.kbytes",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.queue.backoff.ms",
        # Python objects given by confluent-kafka's callers, not librdkafka text
        "logger",
        "error_cb",
        "throttle_cb",
        "stats_cb",
        "oauth_cb",
        "on_delivery",
        "on_commit",
        "default.topic.config",
    }
)

# Properties whose value is, or may hold, a credential: kept as SecretStr, never shown.
_SECRET_WORDS: Final = ("password", "secret", "key", "passphrase", "token", "credential")
_SECRET_PROPERTIES: Final = frozenset({"sasl.oauthbearer.config", "sasl.oauthbearer.extensions"})

_UNDERSCORES: Final = re.compile(r"_+")
_PROPERTY_NAME: Final = re.compile(r"[a-z0-9]+([._][a-z0-9]+)*")

# Not a librdkafka property. Set after the property under test, it makes librdkafka
# refuse the configuration before it builds a client, so a check starts no threads and
# opens no connection; an error that names it means the property before it was taken.
_END_OF_CHECK: Final = "memtelemetry.end.of.check"


class KafkaPropertyError(ValueError):
    """A variable or property librdkafka cannot take; the message names it."""


def property_name(variable: str) -> str:
    """`KAFKA_CONFIG__SSL_CA_LOCATION` -> `ssl.ca.location` (any case)."""
    encoded = variable[len(VARIABLE_PREFIX) :].lower()

    def decode(run: re.Match[str]) -> str:
        length = len(run.group())
        if length == 1:
            return "."
        if length == 3:
            return "_"
        raise KafkaPropertyError(
            f"{variable.upper()}: {length} underscores in a row; write '.' as '_' and '_' as '___'"
        )

    name = _UNDERSCORES.sub(decode, encoded)
    if not _PROPERTY_NAME.fullmatch(name):
        raise KafkaPropertyError(f"{variable.upper()}: not a librdkafka property name")
    return name


def variable_name(name: str) -> str:
    """`ssl.ca.location` -> `KAFKA_CONFIG__SSL_CA_LOCATION`: the inverse of property_name."""
    return VARIABLE_PREFIX + name.upper().replace("_", "___").replace(".", "_")


def is_secret(name: str) -> bool:
    return name in _SECRET_PROPERTIES or any(word in name for word in _SECRET_WORDS)


def refusal(name: str, value: str) -> str | None:
    """Why the services cannot take `name` = `value` from the environment (None: they can)."""
    if name in SET_BY_SHARED_SETTINGS:
        return f"{name} is set by {SET_BY_SHARED_SETTINGS[name]}; use that setting"
    if name in SET_BY_THE_SERVICES:
        return f"{name} is set by the services themselves and cannot be changed"
    message = _librdkafka_error(name, value)
    if message is None:
        return None
    if is_secret(name) and value:
        message = message.replace(value, "**********")
    return f"librdkafka refuses {name}: {message}"


def _librdkafka_error(name: str, value: str) -> str | None:
    try:
        Producer({name: value, _END_OF_CHECK: ""})
    except KafkaException as exc:
        message = str(exc.args[0].str())
        return None if _END_OF_CHECK in message else message
    except (TypeError, ValueError) as exc:  # confluent-kafka's own checks of its keys
        return str(exc)
    raise AssertionError(f"librdkafka took the unknown property {_END_OF_CHECK}")
