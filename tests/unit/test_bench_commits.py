"""The benchmark counts a group's commits from `__consumer_offsets` record keys."""

from __future__ import annotations

import struct

from benchmarks.commits import OffsetCommitKey, decode_offset_commit_key


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def test_an_offset_commit_key_names_group_topic_and_partition() -> None:
    for version in (0, 1):
        key = (
            struct.pack(">h", version)
            + _string("writers")
            + _string("readings")
            + struct.pack(">i", 4)
        )
        assert decode_offset_commit_key(key) == OffsetCommitKey("writers", "readings", 4)


def test_other_records_of_the_topic_are_not_commits() -> None:
    group_metadata = struct.pack(">h", 2) + _string("writers")
    assert decode_offset_commit_key(group_metadata) is None
    assert decode_offset_commit_key(b"") is None
