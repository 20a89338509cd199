"""Read-your-writes: a POST's consistency token, and a GET that waits until it holds.

A POST answers with `X-Consistency-Token: <partition>:<offset>`, the Kafka position of
its record. A GET given that token answers only once the view in Redis holds that
record or a newer one: the worker's built offset of the partition is past the offset
(the view is built from everything up to it, the record included), or the machine's
latest reading is from that partition at that offset or later. The API reads the
built offsets of the workers' consumer group, `KAFKA_CONSUMER_GROUP`, the same setting
the worker reads.

Until then it polls Redis, with a backoff from a few milliseconds up to a tenth of a
second (so a waiting GET costs Redis at most about ten small calls a second), for at
most `API_CONSISTENCY_WAIT_MS`; past that it answers 503 with `Retry-After`: the
reading may well be stored a moment later, the server is behind, not the request
wrong. That also covers a token of a record that does not exist yet.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Annotated, Final, NamedTuple

from pydantic import AfterValidator, WithJsonSchema

from producer_api.store import ReadingStore
from telemetry_common.storage import StoredReading

CONSISTENCY_PARAMETER: Final = "consistency_token"
CONSISTENCY_RETRY_AFTER_SECONDS: Final = 1

# A partition is a 32-bit number, an offset a 64-bit one, neither negative: as many
# digits as those can have. (A token naming a partition or offset that does not exist
# is well-formed: it is never reached.)
_TOKEN: Final = re.compile(r"(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,18})")

_FIRST_PAUSE_SECONDS: Final = 0.005
_LONGEST_PAUSE_SECONDS: Final = 0.1


class ConsistencyToken(NamedTuple):
    """The Kafka position of a published record."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


def token_of(partition: int, offset: int) -> str:
    """The token a POST answers with for the record it published."""
    return f"{partition}:{offset}"


def parse_token(text: str) -> ConsistencyToken:
    """A token as a client sends it back; ValueError saying the form if it is not one."""
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise ValueError(
            "a consistency token is <partition>:<offset>, as the X-Consistency-Token "
            "header of a POST answer gives it, e.g. 4:17"
        )
    return ConsistencyToken(int(match[1]), int(match[2]))


def _checked_token(text: str | None) -> str | None:
    if text is not None:
        parse_token(text)
    return text


# An optional consistency token as a header or query parameter: checked, still text
# (FastAPI would take a tuple type for a list of values). Documented as a string only:
# absent is how a client gives none.
Token = Annotated[
    str | None,
    AfterValidator(_checked_token),
    WithJsonSchema({"type": "string", "pattern": f"^{_TOKEN.pattern}$", "examples": ["4:17"]}),
]


class NotYetStoredError(Exception):
    """The view did not reach the token's record within the wait."""

    def __init__(self, token: ConsistencyToken, built: int | None, group: str) -> None:
        where = (
            f"the view of partition {token.partition} is built up to offset {built - 1}"
            if built is not None and built > 0
            else f"consumer group {group!r} has built nothing of partition {token.partition} "
            "(is KAFKA_CONSUMER_GROUP the workers' group?)"
        )
        super().__init__(
            f"the reading of consistency token {token} is not stored yet: {where}. "
            f"Retry after {CONSISTENCY_RETRY_AFTER_SECONDS} s."
        )


def holds(token: ConsistencyToken, built: int | None, stored: StoredReading | None) -> bool:
    """Whether a view built up to `built` with `stored` as the machine's latest reading
    holds the token's record or a newer one."""
    if built is not None and built > token.offset:
        return True
    return (
        stored is not None and stored.partition == token.partition and stored.offset >= token.offset
    )


async def latest_once_stored(
    store: ReadingStore,
    group: str,
    machine_id: str,
    tokens: Sequence[ConsistencyToken],
    wait_seconds: float,
) -> StoredReading | None:
    """The machine's latest reading once the view holds the records of all `tokens` (or
    newer ones): None if it holds them but no reading of the machine (the records were
    of other machines, or dead-lettered). NotYetStoredError if it does not within
    `wait_seconds`."""
    if not tokens:
        return await store.latest(machine_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    pause = _FIRST_PAUSE_SECONDS
    while True:
        behind = None
        for token in tokens:
            # The reading is read after the token is checked: once the last token holds,
            # it is at least as new as every token.
            built, stored = await store.view_of(token.partition, machine_id)
            if not holds(token, built, stored):
                behind = NotYetStoredError(token, built, group)
                break
        if behind is None:
            return stored
        left = deadline - loop.time()
        if left <= 0:
            raise behind
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_PAUSE_SECONDS)
