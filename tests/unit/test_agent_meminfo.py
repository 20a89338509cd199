"""The agent's columns from /proc/meminfo text follow procps-ng 4.0's `free`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from memtel_agent.meminfo import MeminfoError, parse_meminfo, read_memory, reading_from_meminfo

# /proc/meminfo of a Debian bookworm VM (kernel 6.1), abridged to the fields around
# the ones `free` uses. `free -k` (procps 4.0.2) printed for it:
#   total 24684084, used 542972, free 23716748, shared 8872, buff/cache 669788,
#   available 24141112
BOOKWORM_VM = """\
MemTotal:       24684084 kB
MemFree:        23716748 kB
MemAvailable:   24141112 kB
Buffers:           10612 kB
Cached:           598096 kB
SwapCached:            0 kB
Active:           192296 kB
Inactive:         593116 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Shmem:              8872 kB
KReclaimable:      61080 kB
Slab:              83516 kB
SReclaimable:      61080 kB
SUnreclaim:        22436 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

BOOKWORM_VM_FREE = {
    "total": 24684084,
    "used": 542972,
    "free": 23716748,
    "shared": 8872,
    "buff_cache": 669788,
    "available": 24141112,
}


def test_parses_every_field_in_kib_and_counts_as_given() -> None:
    fields = parse_meminfo(BOOKWORM_VM)
    assert fields["MemTotal"] == 24684084
    assert fields["SReclaimable"] == 61080
    assert fields["HugePages_Total"] == 0  # a count, no unit
    assert len(fields) == BOOKWORM_VM.count("\n")


def test_skips_lines_that_are_not_fields() -> None:
    assert parse_meminfo("garbage\nMemTotal: 10 kB\nEmpty:\nBad: x kB\n\n") == {"MemTotal": 10}


def test_columns_are_those_free_prints() -> None:
    reading = reading_from_meminfo(parse_meminfo(BOOKWORM_VM))
    assert reading.model_dump() == BOOKWORM_VM_FREE


def test_used_is_total_minus_available_not_total_minus_free_and_caches() -> None:
    # procps 3.3 printed total - free - buff/cache (here 297548); 4.0 prints this.
    reading = reading_from_meminfo(parse_meminfo(BOOKWORM_VM))
    assert reading.used == reading.total - reading.available


def test_buff_cache_adds_buffers_cached_and_reclaimable_slab() -> None:
    fields = {"MemTotal": 1000, "MemFree": 100, "Buffers": 10, "Cached": 200, "SReclaimable": 30}
    assert reading_from_meminfo(fields).buff_cache == 240


@pytest.mark.parametrize(
    "available_line",
    [
        "",  # kernels before 3.14 have no MemAvailable
        "MemAvailable:    1500000 kB\n",  # more than total: distorted inside a container
        "MemAvailable:          0 kB\n",
    ],
)
def test_available_falls_back_to_free(available_line: str) -> None:
    text = f"MemTotal: 1000000 kB\nMemFree: 200000 kB\n{available_line}Cached: 300000 kB\n"
    reading = reading_from_meminfo(parse_meminfo(text))
    assert reading.available == 200000
    assert reading.used == 800000


def test_missing_fields_other_than_total_and_free_count_as_zero() -> None:
    reading = reading_from_meminfo({"MemTotal": 1000, "MemFree": 400, "MemAvailable": 600})
    assert reading.model_dump() == {
        "total": 1000,
        "used": 400,
        "free": 400,
        "shared": 0,
        "buff_cache": 0,
        "available": 600,
    }


def test_no_total_is_an_error() -> None:
    with pytest.raises(MeminfoError, match="MemTotal"):
        reading_from_meminfo({"MemFree": 1})


def test_read_memory_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MeminfoError, match="cannot read"):
        read_memory(tmp_path / "missing")


def test_read_memory_reports_a_file_without_a_reading(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text("MemTotal: 10 kB\nMemFree: 20 kB\n")  # free above total
    with pytest.raises(MeminfoError, match="no valid reading"):
        read_memory(path)


# --- procps itself as the reference ----------------------------------------------------

EDGE_CASES = {
    "bookworm-vm": BOOKWORM_VM,
    "no-available": "MemTotal: 1000000 kB\nMemFree: 200000 kB\nBuffers: 10000 kB\n"
    "Cached: 300000 kB\nSReclaimable: 40000 kB\nShmem: 5000 kB\n",
    "available-above-total": "MemTotal: 1000000 kB\nMemFree: 200000 kB\n"
    "MemAvailable: 1500000 kB\nBuffers: 10000 kB\nCached: 300000 kB\nShmem: 5000 kB\n",
    "no-slab-no-shmem": "MemTotal: 2048000 kB\nMemFree: 1024000 kB\n"
    "MemAvailable: 1536000 kB\nBuffers: 1 kB\nCached: 2 kB\n",
}


def free_on(meminfo: Path) -> dict[str, int]:
    """What this machine's `free -k` prints for `meminfo`, shown to it as /proc/meminfo
    in a mount namespace of its own (the real file is untouched)."""
    script = 'mount --bind "$1" /proc/meminfo && free -k'
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "-", str(meminfo)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"cannot show free a file of our own: {result.stderr}"
    columns = next(line for line in result.stdout.splitlines() if line.startswith("Mem:"))
    values = [int(v) for v in columns.split()[1:]]
    return dict(zip(BOOKWORM_VM_FREE, values, strict=True))


@pytest.mark.skipif(
    not (shutil.which("unshare") and shutil.which("free")) or os.geteuid() != 0,
    reason="a private mount namespace needs root, unshare and procps",
)
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_matches_procps_free_on_the_same_file(case: str, tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(EDGE_CASES[case])
    assert read_memory(meminfo).model_dump() == free_on(meminfo)
