"""Connection settings both services read, as pydantic-settings mixins.

Each service has one Settings class of its own; these bases give the Kafka and Redis
fields the same names, defaults and documentation in both.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final, Literal, NoReturn, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from telemetry_common.kafka_properties import (
    VARIABLE_PREFIX,
    KafkaPropertyError,
    is_secret,
    property_name,
    refusal,
)
from telemetry_common.logs import LogFormat
from telemetry_common.partitioning import PARTITIONER

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]

# The standard ports of Kafka and Redis: the services' defaults and the local stack's.
DEFAULT_KAFKA_PORT: Final = 9092
DEFAULT_REDIS_PORT: Final = 6379

# SASL mechanisms that authenticate with a user name and a password (OAUTHBEARER and
# GSSAPI take their own properties, through KAFKA_CONFIG__ variables).
_PASSWORD_MECHANISMS: Final = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})

# Where KafkaPropertyVariables hands the KAFKA_CONFIG__ variables to validation.
_PROPERTY_VARIABLES: Final = "kafka_config_variables"


class ServiceSettings(BaseSettings):
    """Read from the environment and from `.env` in the working directory."""

    # An empty variable counts as unset: Compose passes `${VAR:-}` as an empty string.
    # An error never repeats the input: that of a whole-settings check holds every
    # setting, passwords included.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        hide_input_in_errors=True,
    )

    log_level: LogLevel = Field("INFO", description="Log level of the service.")
    log_format: LogFormat = Field(
        "text",
        description=(
            "text: readable lines; json: one JSON object per line (docs/operations.md#logs)."
        ),
    )


# A service stopped by a setting it cannot use exits with this code (as the agent does).
EXIT_BAD_SETTINGS: Final = 2

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def settings_or_exit(settings_class: type[SettingsT], program: str) -> SettingsT:
    """The service's settings; if one cannot be used, one line on stderr naming each bad
    setting (never its value) and exit EXIT_BAD_SETTINGS, without a traceback."""
    try:
        return settings_class()
    except ValidationError as exc:
        refuse_settings(program, describe_settings_error(exc))


def refuse_settings(program: str, problem: str) -> NoReturn:
    print(f"{program}: configuration error: {problem}", file=sys.stderr)
    sys.exit(EXIT_BAD_SETTINGS)


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each bad setting as its environment variable, for a service that
    stops at startup on it."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper()
        # pydantic prefixes the message of a validator's ValueError; whole-settings checks
        # name their variables in the message itself.
        message = " ".join(error["msg"].removeprefix("Value error, ").split())
        problems.append(f"{name}: {message}" if name else message)
    return "; ".join(problems)


class KafkaPropertyVariables(PydanticBaseSettingsSource):
    """The KAFKA_CONFIG__<NAME> variables of `.env` and of the environment (which wins).

    They are handed over as they are; KafkaSettings turns them into librdkafka
    properties, so that a bad one fails validation naming its variable.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], *lowest_first: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._sources = [s for s in lowest_first if isinstance(s, EnvSettingsSource)]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # no field of its own: see __call__

    def __call__(self) -> dict[str, Any]:
        prefix = VARIABLE_PREFIX.lower()
        variables = {
            name.upper(): value
            for source in self._sources
            for name, value in source.env_vars.items()
            if name.lower().startswith(prefix) and value is not None
        }
        return {_PROPERTY_VARIABLES: variables} if variables else {}


class KafkaSettings(ServiceSettings):
    kafka_bootstrap_servers: str = Field(
        f"localhost:{DEFAULT_KAFKA_PORT}",
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_topic: str = Field(
        "memory-readings", min_length=1, description="Topic that carries the readings."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: str | None = Field(
        None,
        description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI).",
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_config: dict[str, str | SecretStr] = Field(
        default_factory=dict,
        description=(
            "More librdkafka properties for every Kafka client of the service. Usually "
            "given one per variable, KAFKA_CONFIG__<NAME> (see docs/operations.md); "
            "this variable takes them all at once as a JSON object of strings."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        variables = KafkaPropertyVariables(settings_cls, dotenv_settings, env_settings)
        return init_settings, env_settings, dotenv_settings, variables, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _properties_from_variables(cls, data: Any) -> Any:
        """Merge the KAFKA_CONFIG__ variables into kafka_config, checking each one."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        variables: dict[str, str] = data.pop(_PROPERTY_VARIABLES, None) or {}
        given = data.get("kafka_config") or {}
        if not isinstance(given, dict):
            return data  # the field's own validation names what is wrong
        properties: dict[str, Any] = {}
        for name, value in given.items():
            text = _as_text(value)
            problem = refusal(name, text)
            if problem is not None:
                raise ValueError(f"KAFKA_CONFIG: {problem}")
            properties[name] = text
        for variable, value in sorted(variables.items()):
            try:
                name = property_name(variable)
            except KafkaPropertyError as exc:
                raise ValueError(str(exc)) from exc
            problem = refusal(name, value)
            if problem is not None:
                raise ValueError(f"{variable}: {problem}")
            properties[name] = value
        if properties:
            data["kafka_config"] = properties
        return data

    @field_validator("kafka_config", mode="after")
    @classmethod
    def _hide_secret_properties(
        cls, properties: dict[str, str | SecretStr]
    ) -> dict[str, str | SecretStr]:
        return {
            name: SecretStr(value) if isinstance(value, str) and is_secret(name) else value
            for name, value in properties.items()
        }

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        if not self.kafka_security_protocol.startswith("SASL_"):
            return self
        if not self.kafka_sasl_mechanism:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: "
                "set KAFKA_SASL_MECHANISM"
            )
        if self.kafka_sasl_mechanism in _PASSWORD_MECHANISMS and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SASL_MECHANISM {self.kafka_sasl_mechanism}: "
                "set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        """The librdkafka settings every client of this service shares.

        The KAFKA_CONFIG__ properties are in it; the services add their own on top,
        and those win (a variable for one of them is refused when the settings are read).
        """
        config: dict[str, Any] = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in self.kafka_config.items()
        }
        config["bootstrap.servers"] = self.kafka_bootstrap_servers
        config["security.protocol"] = self.kafka_security_protocol
        # librdkafka's own log lines go through Python logging, like everything else.
        config["logger"] = logging.getLogger("librdkafka")
        if not self.kafka_security_protocol.startswith("SASL_"):
            return config
        config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    def acknowledged_producer_config(
        self, client_id: str, delivery_timeout_ms: int
    ) -> dict[str, Any]:
        """A producer whose every record is acknowledged by all in-sync replicas, or
        reported failed after `delivery_timeout_ms`: the services' producers."""
        return {
            **self.kafka_client_config(),
            "client.id": client_id,
            # acks=all, no duplicates or reordering on retries within one producer session.
            "enable.idempotence": True,
            # After this librdkafka fails the delivery; the caller bounds its wait by it.
            "message.timeout.ms": delivery_timeout_ms,
            "request.timeout.ms": min(30_000, delivery_timeout_ms),
            # Java's partitioner (librdkafka's default is CRC32): every producer of the
            # topic agrees on a machine's partition, and the API computes it for reads.
            "partitioner": PARTITIONER,
        }


def _as_text(value: Any) -> str:
    """A JSON value of KAFKA_CONFIG as librdkafka's text (true/false, numbers as written)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"KAFKA_CONFIG: a property's value is text, not {type(value).__name__}")


class RedisSettings(ServiceSettings):
    redis_url: str = Field(
        f"redis://localhost:{DEFAULT_REDIS_PORT}/0",
        description=(
            "Redis URL with the database number: redis://, rediss:// (TLS) or unix://. "
            "A user name and password in it are taken out into REDIS_USERNAME and "
            "REDIS_PASSWORD (which win over them)."
        ),
    )
    redis_username: str | None = Field(
        None,
        min_length=1,
        description="Redis ACL user the services log in as (with REDIS_PASSWORD). Unset: default.",
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password; overrides one in REDIS_URL."
    )
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Connect and socket timeout of Redis calls."
    )
    redis_tls_ca_file: FilePath | None = Field(
        None,
        description=(
            "PEM file of the CA certificates that Redis's certificate is checked against "
            "(rediss:// only), on top of the system's."
        ),
    )
    redis_tls_cert_file: FilePath | None = Field(
        None,
        description=(
            "PEM file of the client certificate, for a Redis that requires one "
            "(tls-auth-clients); with REDIS_TLS_KEY_FILE."
        ),
    )
    redis_tls_key_file: FilePath | None = Field(
        None, description="PEM file of the private key of REDIS_TLS_CERT_FILE (unencrypted)."
    )
    redis_tls_verify_hostname: bool = Field(
        True,
        description=(
            "Check that Redis's certificate names the host of REDIS_URL. Its chain is "
            "checked against the CA certificates either way."
        ),
    )
    redis_cluster: bool = Field(
        False,
        description=(
            "Redis Cluster mode: REDIS_URL names any one node, the client discovers the "
            "rest. TLS, ACL user and password as for a standalone Redis."
        ),
    )

    @field_validator("redis_url", mode="after")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"scheme {scheme!r}: use redis://, rediss:// or unix://")
        return url

    @model_validator(mode="after")
    def _credentials_out_of_the_url(self) -> RedisSettings:
        # Kept in the URL, a password would show wherever the URL does (repr, logs).
        parts = urlsplit(self.redis_url)
        if "@" not in parts.netloc:
            return self
        if parts.username and self.redis_username is None:
            self.redis_username = unquote(parts.username)
        if parts.password and self.redis_password is None:
            self.redis_password = SecretStr(unquote(parts.password))
        self.redis_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        return self

    @model_validator(mode="after")
    def _tls_is_consistent(self) -> RedisSettings:
        tls_files = {
            "REDIS_TLS_CA_FILE": self.redis_tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.redis_tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.redis_tls_key_file,
        }
        given = [name for name, path in tls_files.items() if path is not None]
        if given and not self.redis_uses_tls:
            # Refused rather than ignored: the connection would be in the clear.
            raise ValueError(f"{', '.join(given)} given, but REDIS_URL is not rediss://")
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _cluster_is_reachable(self) -> RedisSettings:
        # Refused here rather than by the client at the first call: a cluster node
        # listens on TCP only and has database 0 only (SELECT is an error there).
        if not self.redis_cluster:
            return self
        if urlsplit(self.redis_url).scheme == "unix":
            raise ValueError("REDIS_CLUSTER is true: REDIS_URL must be redis:// or rediss://")
        if _database_number(self.redis_url) != 0:
            raise ValueError("REDIS_CLUSTER is true: a cluster has database 0 only")
        return self

    @property
    def redis_uses_tls(self) -> bool:
        return urlsplit(self.redis_url).scheme == "rediss"


def _database_number(url: str) -> int | None:
    """The database a Redis URL selects (its `db` query option wins over its path, as
    redis-py reads it); None when it is not a number."""
    parts = urlsplit(url)
    selected = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[0]
    try:
        return int(selected)
    except ValueError:
        return None
