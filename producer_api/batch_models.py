"""The body and the answers of `POST /cpu-info`, the batch endpoint.

Each item is a machine id and a reading under exactly the single endpoint's rules: the
same pattern for the id, the same strict `MemoryReading`.
"""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from producer_api.schemas import Offset, Partition
from telemetry_common.contract import (
    EXAMPLE_READING,
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
)


class MachineReading(BaseModel):
    """One item of a batch: which machine, and its reading."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"machine_id": "web-01", "reading": dict(EXAMPLE_READING)}]
        },
    )

    machine_id: Annotated[
        str,
        Field(
            pattern=MACHINE_ID_PATTERN,
            max_length=MACHINE_ID_MAX_LENGTH,
            description=(
                "1 to 64 characters of letters, digits, '.', '_' and '-', starting with a "
                "letter or digit."
            ),
        ),
    ]
    reading: MemoryReading


def _largest_item_bytes() -> int:
    """Bytes of the largest valid item as a client's JSON encoder writes it, separator
    included: what the body limit must hold per item of a full batch."""
    bounds = MemoryReading.model_json_schema()["properties"]
    largest = {
        "machine_id": "a" * MACHINE_ID_MAX_LENGTH,
        "reading": {name: field["exclusiveMaximum"] - 1 for name, field in bounds.items()},
    }
    # json.dumps' default separators (", " and ": ") are the widest of common encoders.
    return len(json.dumps(largest)) + len(", ")


LARGEST_ITEM_BYTES: Final = _largest_item_bytes()


class AcknowledgedItem(BaseModel):
    """The broker acknowledged this item's record: where it is."""

    status: Literal["acknowledged"] = "acknowledged"
    partition: Partition
    offset: Offset


class FailedItem(BaseModel):
    """The broker did not acknowledge this item's record (it may still have been
    written): send it again."""

    status: Literal["failed"] = "failed"
    detail: str


class BatchAnswer(BaseModel):
    """What became of each item, in the order of the request."""

    acknowledged: int = Field(ge=0, description="How many items the broker acknowledged.")
    failed: int = Field(ge=0, description="How many it did not; resend those (see `items`).")
    items: list[AcknowledgedItem | FailedItem]
