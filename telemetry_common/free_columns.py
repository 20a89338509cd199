"""The columns of `free` from the kernel's memory figures: the one rule every source uses.

The agent (from `/proc/meminfo`), the OTLP ingest (from the OpenTelemetry Collector's
hostmetrics names) and the Prometheus remote-write ingest (from node_exporter's
`node_memory_*_bytes`) all name the same `/proc/meminfo` fields in their own way; each
translates them into `MeminfoFigures` and this module computes the reading, so that a
machine's reading is the same whichever way it was sent.

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

from dataclasses import dataclass
from typing import Final

from telemetry_common.contract import MemoryReading

KIB: Final = 1024


@dataclass(frozen=True)
class MeminfoFigures:
    """The `/proc/meminfo` fields `free` reads, in KiB.

    `mem_available` is None when the source has no MemAvailable (kernels before 3.14);
    the others default to 0 as in procps, whose parser leaves a field it does not find
    at 0.
    """

    mem_total: int
    mem_free: int
    mem_available: int | None = None
    buffers: int = 0
    cached: int = 0
    s_reclaimable: int = 0
    shmem: int = 0


def free_columns(figures: MeminfoFigures) -> MemoryReading:
    """The reading `free` prints for these figures (procps-ng 4.0 rules).

    Raises pydantic's ValidationError (a ValueError) when the figures give no valid
    reading: a negative figure, or a column above total.
    """
    total = figures.mem_total
    free = figures.mem_free
    available = figures.mem_available or 0
    if available == 0 or available > total:
        available = free
    return MemoryReading(
        total=total,
        used=total - available,
        free=free,
        shared=figures.shmem,
        buff_cache=figures.buffers + figures.cached + figures.s_reclaimable,
        available=available,
    )


def kib_of_bytes(value: float) -> int:
    """Bytes, as the OTLP and Prometheus sources report memory, in whole KiB.

    `/proc/meminfo` counts in KiB and the exporters multiply by 1024, so the division
    is exact for their values; anything else is rounded down, as `free -k` does.
    """
    return int(value) // KIB
