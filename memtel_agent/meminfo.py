"""The machine's memory as `free` reports it, computed from `/proc/meminfo`.

The fields are read here; the columns are computed by the rule every source of readings
shares, `telemetry_common.free_columns` (procps-ng 4.0's `free`, documented there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from telemetry_common.contract import MemoryReading
from telemetry_common.free_columns import MeminfoFigures, free_columns

PROC_MEMINFO: Final = Path("/proc/meminfo")

# Fields without which no column can be computed; the others default to 0 as in procps,
# whose parser leaves a field it does not find at 0.
_REQUIRED: Final = ("MemTotal", "MemFree")


class MeminfoError(ValueError):
    """`/proc/meminfo` could not be read or lacks what the columns need."""


def parse_meminfo(text: str) -> dict[str, int]:
    """The fields of a `/proc/meminfo` text, in KiB (HugePages_* counts as given).

    A line is `Name:   value [kB]`; lines that do not look like that are skipped, the
    way procps skips what it does not know.
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit():
            continue
        fields[name.strip()] = int(parts[0])
    return fields


def reading_from_meminfo(fields: dict[str, int]) -> MemoryReading:
    """The columns of `free` from parsed `/proc/meminfo` fields (procps-ng 4.0 rules)."""
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise MeminfoError(f"/proc/meminfo has no {', '.join(missing)}")
    return free_columns(
        MeminfoFigures(
            mem_total=fields["MemTotal"],
            mem_free=fields["MemFree"],
            mem_available=fields.get("MemAvailable"),
            buffers=fields.get("Buffers", 0),
            cached=fields.get("Cached", 0),
            s_reclaimable=fields.get("SReclaimable", 0),
            shmem=fields.get("Shmem", 0),
        )
    )


def read_memory(path: Path = PROC_MEMINFO) -> MemoryReading:
    """Read the file once and return the machine's memory as `free -k` would print it."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise MeminfoError(f"cannot read {path}: {exc}") from exc
    try:
        return reading_from_meminfo(parse_meminfo(text))
    except ValueError as exc:  # includes pydantic's ValidationError: a column above total
        raise MeminfoError(f"{path} gives no valid reading: {exc}") from exc
