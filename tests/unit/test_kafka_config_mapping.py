"""KAFKA_CONFIG__<NAME> variables: any librdkafka property, for every Kafka client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from consumer_worker.settings import WorkerSettings
from producer_api.settings import ProducerSettings
from telemetry_common.kafka_properties import (
    SET_BY_SHARED_SETTINGS,
    SET_BY_THE_SERVICES,
    KafkaPropertyError,
    property_name,
    variable_name,
)
from telemetry_common.settings import describe_settings_error


@pytest.fixture(autouse=True)
def no_kafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests set the variables they mean; none may come from the shell running them.
    for variable in list(os.environ):
        if variable.upper().startswith(("KAFKA_", "REDIS_")):
            monkeypatch.delenv(variable)


@pytest.mark.parametrize(
    ("variable", "name"),
    [
        ("KAFKA_CONFIG__SSL_CA_LOCATION", "ssl.ca.location"),
        ("KAFKA_CONFIG__SASL_OAUTHBEARER_CLIENT_ID", "sasl.oauthbearer.client.id"),
        ("KAFKA_CONFIG__LOG___LEVEL", "log_level"),
        ("KAFKA_CONFIG__ENABLED___EVENTS", "enabled_events"),
        ("KAFKA_CONFIG__TOPIC_METADATA_REFRESH_INTERVAL_MS", "topic.metadata.refresh.interval.ms"),
        ("kafka_config__client_rack", "client.rack"),
    ],
)
def test_a_variable_names_exactly_one_property_and_back(variable: str, name: str) -> None:
    assert property_name(variable) == name
    assert variable_name(name) == variable.upper()


@pytest.mark.parametrize(
    "variable", ["KAFKA_CONFIG__SSL__CA_LOCATION", "KAFKA_CONFIG__LOG____LEVEL", "KAFKA_CONFIG__"]
)
def test_a_variable_that_names_no_property_for_sure_is_refused(variable: str) -> None:
    with pytest.raises(KafkaPropertyError, match=variable):
        property_name(variable)


def every_client_config(settings: WorkerSettings | ProducerSettings) -> list[dict[str, Any]]:
    if isinstance(settings, WorkerSettings):
        return [settings.consumer_config(), settings.dead_letter_producer_config()]
    return [settings.producer_config()]


@pytest.mark.parametrize("settings_class", [ProducerSettings, WorkerSettings])
def test_the_properties_reach_every_client_of_both_services(
    settings_class: type[ProducerSettings | WorkerSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_CONFIG__SSL_CA_LOCATION", "/etc/memtel/kafka-ca.pem")
    monkeypatch.setenv("KAFKA_CONFIG__SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "https")
    monkeypatch.setenv("KAFKA_CONFIG__LOG___LEVEL", "4")
    settings = settings_class(_env_file=None)
    for config in every_client_config(settings):
        assert config["ssl.ca.location"] == "/etc/memtel/kafka-ca.pem"
        assert config["ssl.endpoint.identification.algorithm"] == "https"
        assert config["log_level"] == "4"


def test_the_variables_are_read_from_env_too_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KAFKA_CONFIG__CLIENT_RACK=rack-a\nKAFKA_CONFIG__SOCKET_TIMEOUT_MS=30000\n")
    monkeypatch.setenv("KAFKA_CONFIG__SOCKET_TIMEOUT_MS", "20000")
    config = WorkerSettings(_env_file=env_file).consumer_config()
    assert config["client.rack"] == "rack-a"
    assert config["socket.timeout.ms"] == "20000"


def test_kafka_config_takes_exact_names_as_json_and_the_variables_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "KAFKA_CONFIG",
        json.dumps({"log_level": 3, "socket.keepalive.enable": True, "client.rack": "a"}),
    )
    monkeypatch.setenv("KAFKA_CONFIG__CLIENT_RACK", "b")
    config = ProducerSettings(_env_file=None).kafka_client_config()
    assert config["log_level"] == "3"
    assert config["socket.keepalive.enable"] == "true"
    assert config["client.rack"] == "b"


def refusal_of(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        WorkerSettings(_env_file=None)
    [error] = refused.value.errors()
    return str(error["msg"])


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "KAFKA_CONFIG__SSL_CA_LOCATON",
            "/ca.pem",
            'No such configuration property: "ssl.ca.locaton"',
        ),
        ("KAFKA_CONFIG__SOCKET_TIMEOUT_MS", "soon", "Invalid value"),
        ("KAFKA_CONFIG__ENABLE_SSL_CERTIFICATE_VERIFICATION", "maybe", "Expected bool value"),
        ("KAFKA_CONFIG__SSL__CA_LOCATION", "/ca.pem", "2 underscores in a row"),
        ("KAFKA_CONFIG__SECURITY_PROTOCOL", "SSL", "set by KAFKA_SECURITY_PROTOCOL"),
        ("KAFKA_CONFIG__SASL_PASSWORD", "x", "set by KAFKA_SASL_PASSWORD"),
        ("KAFKA_CONFIG__ENABLE_AUTO_COMMIT", "true", "set by the services themselves"),
        ("KAFKA_CONFIG__ERROR___CB", "x", "set by the services themselves"),
    ],
)
def test_a_property_librdkafka_or_the_services_refuse_fails_naming_its_variable(
    variable: str, value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refusal_of({variable: value}, monkeypatch)
    assert variable in message
    assert says in message
    assert "\n" not in message


def test_a_bad_entry_of_kafka_config_names_that_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal_of({"KAFKA_CONFIG": '{"ssl.ca.locaton": "/ca.pem"}'}, monkeypatch)
    assert message.startswith("Value error, KAFKA_CONFIG: librdkafka refuses ssl.ca.locaton")


def test_the_services_own_settings_cannot_be_overridden_and_the_list_is_complete() -> None:
    # Every property a service sets on its clients is in one of the lists that refuse
    # a variable for it; a property added to a service must be added there too.
    owned = SET_BY_THE_SERVICES | set(SET_BY_SHARED_SETTINGS)
    settings: list[ProducerSettings | WorkerSettings] = [
        ProducerSettings(_env_file=None),
        WorkerSettings(_env_file=None, kafka_group_instance_id="worker-1"),
    ]
    for config in (c for s in settings for c in every_client_config(s)):
        missing = set(config) - owned
        assert not missing, f"add {sorted(missing)} to telemetry_common/kafka_properties.py"


SECRETS = {
    "KAFKA_SASL_PASSWORD": "sasl-secret-1",
    "KAFKA_CONFIG__SSL_KEY_PASSWORD": "key-secret-2",
    "KAFKA_CONFIG__SSL_KEYSTORE_PASSWORD": "keystore-secret-3",
    "KAFKA_CONFIG__SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret-4",
    "KAFKA_CONFIG__SSL_KEY_PEM": "-----BEGIN PRIVATE KEY-----pem-secret-5",
    "REDIS_PASSWORD": "redis-secret-6",
}


def test_no_secret_shows_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "memtel")
    monkeypatch.setenv("REDIS_URL", "rediss://memtel:url-secret-7@redis.internal:6380/0")
    for settings in (ProducerSettings(_env_file=None), WorkerSettings(_env_file=None)):
        shown = [repr(settings), str(settings), settings.model_dump_json()]
        for secret in [*SECRETS.values(), "url-secret-7"]:
            assert not any(secret in text for text in shown), secret
        # ... while the clients get every one of them.
        config = settings.kafka_client_config()
        assert config["sasl.password"] == "sasl-secret-1"
        assert config["ssl.key.password"] == "key-secret-2"
        assert config["sasl.oauthbearer.client.secret"] == "oidc-secret-4"


def test_oauthbearer_needs_no_user_name_or_password(monkeypatch: pytest.MonkeyPatch) -> None:
    oidc = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_CONFIG__SASL_OAUTHBEARER_METHOD": "oidc",
        "KAFKA_CONFIG__SASL_OAUTHBEARER_CLIENT_ID": "memtel",
        "KAFKA_CONFIG__SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret",
        "KAFKA_CONFIG__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://idp.internal/token",
    }
    for variable, value in oidc.items():
        monkeypatch.setenv(variable, value)
    config = WorkerSettings(_env_file=None).consumer_config()
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert "sasl.username" not in config


def test_scram_needs_a_user_name_and_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal_of(
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
        monkeypatch,
    )
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in message


def test_a_refused_property_makes_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_CONFIG__SSL_CA_LOCATON", "/ca.pem")
    with pytest.raises(ValidationError) as refused:
        ProducerSettings(_env_file=None)
    line = describe_settings_error(refused.value)
    assert "\n" not in line
    assert line == (
        "KAFKA_CONFIG__SSL_CA_LOCATON: librdkafka refuses ssl.ca.locaton: "
        'No such configuration property: "ssl.ca.locaton"'
    )
