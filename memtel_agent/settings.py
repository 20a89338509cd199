"""Settings of the agent, read from the environment and `.env`."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Final

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from telemetry_common.contract import MACHINE_ID_MAX_LENGTH, is_valid_machine_id
from telemetry_common.settings import ServiceSettings

_NOT_ALLOWED_IN_ID: Final = re.compile(r"[^A-Za-z0-9._-]")
_MACHINE_ID_RULE: Final = (
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
)


class AgentSettings(ServiceSettings):
    agent_api_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://localhost:5050"),
        description="Base URL of the producer API (without /cpu-info).",
    )
    agent_machine_id: str | None = Field(
        None,
        description=(
            "Machine id the readings are reported under. Unset: the host name, with "
            "characters a machine id cannot hold replaced by '-'."
        ),
    )
    agent_interval_seconds: float = Field(
        10.0, ge=0.1, le=86_400, description="Seconds between two readings."
    )
    agent_api_key: SecretStr | None = Field(
        None, description="Sent as the X-API-Key header when set."
    )
    agent_buffer_dir: Path = Field(
        Path(".memtel-agent"),
        description="Directory of the on-disk buffer of readings not yet accepted.",
    )
    agent_buffer_max_readings: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Most readings kept while the API is unreachable; then the oldest go.",
    )
    agent_batch_size: int = Field(
        100, ge=1, le=10_000, description="Most readings sent in one batch request."
    )
    agent_http_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Timeout of one HTTP request to the API."
    )
    agent_retry_max_backoff_seconds: float = Field(
        60.0, ge=0.1, le=3600, description="Cap of the wait between two failed sends."
    )
    agent_health_file: Path | None = Field(
        None,
        description=(
            "A file the agent touches while its loop runs, for "
            "`python -m memtel_agent.healthcheck`. Unset: no heartbeat file."
        ),
    )
    agent_meminfo_path: Path = Field(
        Path("/proc/meminfo"),
        description="The meminfo file read (another path when the host's /proc is mounted).",
    )

    @field_validator("agent_machine_id")
    @classmethod
    def _valid_machine_id(cls, value: str | None) -> str | None:
        # A configured id is used as given: changing it silently would report the
        # machine under a name nobody chose.
        if value is not None and not is_valid_machine_id(value):
            raise ValueError(f"{value!r} is not a valid machine id ({_MACHINE_ID_RULE})")
        return value

    @property
    def api_base_url(self) -> str:
        return str(self.agent_api_url).rstrip("/")

    def machine_id(self) -> str:
        """The configured machine id, or one made from the host name."""
        if self.agent_machine_id is not None:
            return self.agent_machine_id
        return machine_id_from_hostname(socket.gethostname())


def machine_id_from_hostname(hostname: str) -> str:
    """A valid machine id from a host name: characters outside the allowed set become
    '-', a leading '.', '_' or '-' goes, and the result is cut to 64 characters."""
    candidate = _NOT_ALLOWED_IN_ID.sub("-", hostname).lstrip("._-")[:MACHINE_ID_MAX_LENGTH]
    if not is_valid_machine_id(candidate):
        raise ValueError(
            f"the host name {hostname!r} gives no valid machine id: set AGENT_MACHINE_ID"
        )
    return candidate
