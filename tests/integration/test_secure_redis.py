"""Both services on a Redis that serves TLS only and lets in one ACL user.

The Redis has a certificate from a CA of this module's own, asks clients for theirs
(mutual TLS), has its default user disabled, and lets its one user touch the
project's keys only. The services get nothing but the documented settings.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import redis

from devstack import services, tls
from devstack.ports import free_port
from devstack.stack import LocalStack
from telemetry_common.layout import REDIS_KEY_NAMESPACE
from tests.helpers import READING, api_and_worker, unique, wait_until
from tests.integration.secure_services import (
    assert_no_secret_in_logs,
    assert_ready_and_round_trip,
    log_line_with,
)

USER = "memtel-services"


@dataclass(frozen=True)
class SecureRedis:
    url: str
    ca: tls.CertificateAuthority
    client: tls.Certificate
    password: str
    work_dir: Path


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    work_dir = tmp_path_factory.mktemp("secure-redis")
    ca = tls.certificate_authority(work_dir / "tls")
    server_certificate = tls.issue(ca, work_dir / "tls", "redis")
    password = secrets.token_urlsafe(18)
    port = free_port()
    server = services.redis(
        work_dir / "redis",
        port,
        users=[services.RedisUser(USER, password, keys=f"{REDIS_KEY_NAMESPACE}:*")],
        tls=services.RedisTls(
            server_certificate.certificate,
            server_certificate.key,
            ca.certificate,
            client_certificates_required=True,
        ),
    )
    server.start()
    try:
        yield SecureRedis(
            url=f"rediss://{services.HOST}:{port}/0",
            ca=ca,
            client=tls.issue(ca, work_dir / "tls", "services"),
            password=password,
            work_dir=work_dir,
        )
    finally:
        server.stop()


@pytest.fixture
def secure_env(secure_redis: SecureRedis, topic: str) -> dict[str, str]:
    """The services' settings for the secure Redis, on a topic of this test's own."""
    return {
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": unique("writers"),
        "REDIS_URL": secure_redis.url,
        # A Redis of the test's own: standalone, whatever the session runs on.
        "REDIS_CLUSTER": "false",
        "REDIS_USERNAME": USER,
        "REDIS_PASSWORD": secure_redis.password,
        "REDIS_TLS_CA_FILE": str(secure_redis.ca.certificate),
        "REDIS_TLS_CERT_FILE": str(secure_redis.client.certificate),
        "REDIS_TLS_KEY_FILE": str(secure_redis.client.key),
        # Every log line the services can write is searched for the password.
        "LOG_LEVEL": "DEBUG",
    }


def test_the_redis_lets_in_only_its_user_over_tls(secure_redis: SecureRedis) -> None:
    tls_options = {
        "ssl_ca_certs": str(secure_redis.ca.certificate),
        "ssl_certfile": str(secure_redis.client.certificate),
        "ssl_keyfile": str(secure_redis.client.key),
    }
    with (
        redis.Redis.from_url(secure_redis.url, **tls_options) as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.ping()
    with redis.Redis.from_url(
        secure_redis.url, username=USER, password=secure_redis.password, **tls_options
    ) as user:
        assert user.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("not-the-project's-key")


def test_the_services_store_and_read_through_tls_as_the_acl_user(
    stack: LocalStack, secure_redis: SecureRedis, secure_env: dict[str, str], tmp_path: Path
) -> None:
    machine = unique("m")
    with (
        api_and_worker(stack, tmp_path, secure_env) as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert_ready_and_round_trip(client, machine)
    assert_no_secret_in_logs([tmp_path, secure_redis.work_dir], [secure_redis.password])


@pytest.fixture(scope="module")
def another_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign Redis's certificate."""
    directory = tmp_path_factory.mktemp("another-ca")
    return tls.certificate_authority(directory, "another-ca").certificate


@pytest.mark.parametrize(
    ("case", "logged"),
    [
        ("wrong password", "invalid username-password pair"),
        ("untrusted certificate", "certificate verify failed"),
    ],
)
def test_the_services_answer_503_when_redis_refuses_the_login(
    case: str,
    logged: str,
    stack: LocalStack,
    secure_redis: SecureRedis,
    secure_env: dict[str, str],
    another_ca: Path,
    tmp_path: Path,
) -> None:
    wrong_password = secrets.token_urlsafe(18)
    env = {
        **secure_env,
        **(
            {"REDIS_PASSWORD": wrong_password}
            if case == "wrong password"
            else {"REDIS_TLS_CA_FILE": str(another_ca)}
        ),
    }
    machine = unique("m")
    with (
        api_and_worker(stack, tmp_path, env) as (url, worker),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": "ok", "redis": "unavailable"}

        # Kafka takes the reading; neither service can reach Redis with it.
        assert client.post(f"/cpu-info/{machine}", json=READING).status_code == 200
        read = client.get(f"/cpu-info/{machine}")
        assert read.status_code == 503
        assert "Retry-After" in read.headers

        for log in (worker.log_path, tmp_path / "producer-api.log"):
            wait_until(partial(log_line_with, log, logged), 30, f"'{logged}' in {log.name}")
    assert_no_secret_in_logs(
        [tmp_path, secure_redis.work_dir], [secure_redis.password, wrong_password]
    )
