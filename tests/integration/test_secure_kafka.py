"""Both services on a broker that takes TLS connections with SCRAM-SHA-512 logins only.

The broker's SASL_SSL listener has a certificate from a CA of this module's own, and
its user is made with Kafka's own kafka-configs tool. The services get nothing but
the documented settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, and the CA file
through KAFKA_CONFIG__SSL_CA_LOCATION).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest

from devstack import services, tls
from devstack.jars import ensure_kafka_libs
from devstack.ports import free_port
from devstack.stack import LocalStack
from tests.helpers import READING, TOPIC_PARTITIONS, api_and_worker, unique, wait_until
from tests.integration.secure_services import (
    assert_no_secret_in_logs,
    assert_ready_and_round_trip,
    log_line_with,
)

USER = "memtel-services"
DELIVERY_TIMEOUT_MS = 3000
# POST answers within the delivery timeout plus the publisher's grace of one second;
# the client's timeout adds a margin for a machine busy with other tests.
POST_BOUND_SECONDS = DELIVERY_TIMEOUT_MS / 1000 + 1.0 + 10.0


@dataclass(frozen=True)
class SecureBroker:
    sasl_ssl_bootstrap: str
    # The stack's own way in, for creating topics; the services never use it.
    plaintext_bootstrap: str
    ca_file: Path
    password: str
    work_dir: Path


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    work_dir = tmp_path_factory.mktemp("secure-kafka")
    libs = ensure_kafka_libs()
    ca = tls.certificate_authority(work_dir / "tls")
    broker_certificate = tls.issue(ca, work_dir / "tls", "broker")
    password = secrets.token_urlsafe(18)
    zookeeper_port, port, sasl_ssl_port = free_port(), free_port(), free_port()
    listener = services.SaslSslListener(
        sasl_ssl_port, broker_certificate.key_and_chain(work_dir / "tls" / "broker-keystore.pem")
    )
    with ExitStack() as running:
        zookeeper = services.zookeeper(libs, work_dir / "zookeeper", zookeeper_port)
        zookeeper.start()
        running.callback(zookeeper.stop)
        services.add_scram_user(libs, work_dir / "tools", zookeeper_port, USER, password)
        broker = services.kafka(
            libs, work_dir / "kafka", port, zookeeper_port, sasl_ssl=listener, name="secure-kafka"
        )
        broker.start()
        running.callback(broker.stop)
        yield SecureBroker(
            sasl_ssl_bootstrap=f"{services.HOST}:{sasl_ssl_port}",
            plaintext_bootstrap=f"{services.HOST}:{port}",
            ca_file=ca.certificate,
            password=password,
            work_dir=work_dir,
        )


@pytest.fixture
def secure_env(secure_broker: SecureBroker) -> dict[str, str]:
    """The services' settings for the secure broker, on topics of this test's own."""
    topic, dead_letters = unique("readings"), unique("dead-letters")
    for name in (topic, dead_letters):
        services.create_topic(secure_broker.plaintext_bootstrap, name, TOPIC_PARTITIONS)
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secure_broker.sasl_ssl_bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_DEAD_LETTER_TOPIC": dead_letters,
        "KAFKA_CONSUMER_GROUP": unique("writers"),
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": secure_broker.password,
        "KAFKA_CONFIG__SSL_CA_LOCATION": str(secure_broker.ca_file),
        "KAFKA_DELIVERY_TIMEOUT_MS": str(DELIVERY_TIMEOUT_MS),
        # Every log line the services can write is searched for the password.
        "LOG_LEVEL": "DEBUG",
    }


def test_the_services_publish_and_store_through_sasl_ssl(
    stack: LocalStack, secure_broker: SecureBroker, secure_env: dict[str, str], tmp_path: Path
) -> None:
    machine = unique("m")
    with (
        api_and_worker(stack, tmp_path, secure_env) as (url, _),
        httpx.Client(base_url=url, timeout=POST_BOUND_SECONDS) as client,
    ):
        assert_ready_and_round_trip(client, machine)
    assert_no_secret_in_logs([tmp_path, secure_broker.work_dir], [secure_broker.password])


@pytest.fixture(scope="module")
def another_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the broker's certificate."""
    return tls.certificate_authority(
        tmp_path_factory.mktemp("another-ca"), "another-ca"
    ).certificate


@pytest.mark.parametrize(
    ("case", "logged"),
    [
        ("wrong password", "SASL authentication error: Authentication failed"),
        ("untrusted certificate", "certificate verify failed"),
    ],
)
def test_the_services_refuse_to_go_on_with_a_broker_that_fails_the_login(
    case: str,
    logged: str,
    stack: LocalStack,
    secure_broker: SecureBroker,
    secure_env: dict[str, str],
    another_ca: Path,
    tmp_path: Path,
) -> None:
    wrong_password = secrets.token_urlsafe(18)
    env = {
        **secure_env,
        **(
            {"KAFKA_SASL_PASSWORD": wrong_password}
            if case == "wrong password"
            else {"KAFKA_CONFIG__SSL_CA_LOCATION": str(another_ca)}
        ),
    }
    with api_and_worker(stack, tmp_path, env) as (url, worker):
        with httpx.Client(base_url=url, timeout=POST_BOUND_SECONDS) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["kafka"] == "unavailable"

            posted = client.post(f"/cpu-info/{unique('m')}", json=READING)
            assert posted.status_code == 503
            assert "Retry-After" in posted.headers

        # Each service says why, in a line of its own client's errors.
        for log in (worker.log_path, tmp_path / "producer-api.log"):
            line_in_log = partial(log_line_with, log, "Kafka client error", logged)
            wait_until(line_in_log, 30, f"'{logged}' in {log.name}")
    assert_no_secret_in_logs(
        [tmp_path, secure_broker.work_dir], [secure_broker.password, wrong_password]
    )
