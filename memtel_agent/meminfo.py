"""The machine's memory as `free` reports it, computed from `/proc/meminfo`.

The columns follow procps-ng 4.0 (`free` of Debian bookworm, procps 4.0.2), whose
library derives them from `/proc/meminfo` like this (all in KiB):

* total      = MemTotal
* free       = MemFree
* shared     = Shmem
* buff/cache = Buffers + Cached + SReclaimable
* available  = MemAvailable; MemFree when the kernel has no MemAvailable (before 3.14)
               or reports more than MemTotal (seen inside some containers)
* used       = total - available (procps falls back to total - free if that is
               negative, which the rule for available above already rules out)

Older procps (3.3.x) computed used as total - free - buff/cache; 4.0 changed it to
total - available, so `used` here is what the `free` of this release prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from telemetry_common.contract import MemoryReading

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
    total = fields["MemTotal"]
    free = fields["MemFree"]
    available = fields.get("MemAvailable", 0)
    if available == 0 or available > total:
        available = free
    used = total - available
    buff_cache = fields.get("Buffers", 0) + fields.get("Cached", 0) + fields.get("SReclaimable", 0)
    return MemoryReading(
        total=total,
        used=used,
        free=free,
        shared=fields.get("Shmem", 0),
        buff_cache=buff_cache,
        available=available,
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
