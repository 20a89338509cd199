"""How the stack's topics are configured: replication, durability and retention.

One place for what docs/production.md recommends, used by `make up`, `make up-cluster`
and the tests' stacks (docker-compose.yml's kafka-init sets the same values).

Retention: the readings topic is the log the Redis view is built from. A view lost
whole (a Redis emptied or replaced) is rebuilt by replaying the topic from its start,
and is complete only while the topic still holds every record the view shows: the
history window (HISTORY_MAX_AGE_SECONDS, a day by default) and each machine's latest
reading. Seven days cover a day of history with a week to notice and rebuild; a
machine silent for longer than that is missing from a rebuilt view. Dead letters
wait for a person, so they are kept longer.
"""

from __future__ import annotations

from typing import Final

DAY_MS: Final = 86_400_000
READINGS_RETENTION_MS: Final = 7 * DAY_MS
DEAD_LETTER_RETENTION_MS: Final = 30 * DAY_MS


def topic_config(replication_factor: int, retention_ms: int) -> dict[str, str]:
    """A topic's own settings (they win over the broker's defaults).

    A write (acks=all) needs two in-sync replicas where there are two or more, so
    losing one broker loses nothing acknowledged; an out-of-sync replica never becomes
    leader, even when that leaves a partition without one.
    """
    return {
        "min.insync.replicas": str(min(2, replication_factor)),
        "unclean.leader.election.enable": "false",
        "cleanup.policy": "delete",
        "retention.ms": str(retention_ms),
    }
