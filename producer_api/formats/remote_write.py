"""Prometheus remote-write 1.0 series of node_exporter's memory into readings.

node_exporter exports each `/proc/meminfo` field as `node_memory_<Field>_bytes`. The
series of one machine (by the value of the machine label, `instance` unless
API_REMOTE_WRITE_MACHINE_LABEL says otherwise) at one timestamp, one scrape, make one
reading of that time. All seven fields `free` reads are required: MemTotal, MemFree,
MemAvailable, Buffers, Cached, SReclaimable and Shmem (node_exporter on Linux exports
them all; a scrape whose series came split over two requests would otherwise give a
wrong reading).

The machine id is the label's value without a trailing `:port` (Prometheus' `instance`
is `host:port` of the scraped target) and must be a valid machine id. Series of other
names are ignored and counted, as are Prometheus' staleness markers.
"""

from __future__ import annotations

import math
import re
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from pydantic import ValidationError

from producer_api.formats.prompb.remote_pb2 import WriteRequest
from producer_api.formats.published import TimedReading, TranslatedRequest
from telemetry_common.contract import is_valid_machine_id
from telemetry_common.free_columns import MeminfoFigures, free_columns, kib_of_bytes

DEFAULT_MACHINE_LABEL: Final = "instance"
NAME_LABEL: Final = "__name__"
# The /proc/meminfo fields a reading needs, by node_exporter's series name.
FIELDS: Final = {
    f"node_memory_{name}_bytes": name
    for name in (
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SReclaimable",
        "Shmem",
    )
}
# Prometheus marks a series gone with this NaN (value.StaleNaN); it is no measurement.
_STALE_NAN_BITS: Final = 0x7FF0000000000002
_PORT: Final = re.compile(r":[0-9]{1,5}$")


@dataclass
class RemoteWriteOutcome(TranslatedRequest):
    """What a request gave: readings, and the samples it accepted, rejected, ignored."""

    # Why samples were rejected. `invalid`: what the sender can fix (a machine label that
    # is no machine id, an impossible value); incomplete groups are only counted.
    invalid: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def machine_id_of(label_value: str) -> str:
    """The machine id a machine label names: the value without a trailing `:port`."""
    return _PORT.sub("", label_value)


def _is_stale(value: float) -> bool:
    (bits,) = struct.unpack("<Q", struct.pack("<d", value))
    return bool(bits == _STALE_NAN_BITS)


def readings_from_request(request: WriteRequest, machine_label: str) -> RemoteWriteOutcome:
    outcome = RemoteWriteOutcome()
    # (machine id, timestamp ms) -> field -> KiB, and how many samples made it.
    groups: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    samples_of: dict[tuple[str, int], int] = defaultdict(int)
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels}
        meminfo_field = FIELDS.get(labels.get(NAME_LABEL, ""))
        if meminfo_field is None:
            outcome.ignored += len(series.samples)
            continue
        machine_id = machine_id_of(labels.get(machine_label, ""))
        if not is_valid_machine_id(machine_id):
            outcome.rejected += len(series.samples)
            outcome.invalid.append(
                f"{labels[NAME_LABEL]}: label {machine_label}={labels.get(machine_label, '')!r} "
                "names no valid machine id"
            )
            continue
        for sample in series.samples:
            if _is_stale(sample.value):
                outcome.ignored += 1
                continue
            key = (machine_id, sample.timestamp)
            samples_of[key] += 1
            if not math.isfinite(sample.value) or sample.value < 0:
                groups[key]["invalid"] = -1
                outcome.invalid.append(f"{labels[NAME_LABEL]} of {machine_id}: {sample.value!r}")
                continue
            groups[key][meminfo_field] = kib_of_bytes(sample.value)
    for (machine_id, timestamp), fields in sorted(groups.items(), key=lambda item: item[0][1]):
        count = samples_of[(machine_id, timestamp)]
        reading = _reading(machine_id, timestamp, fields, outcome)
        if reading is None:
            outcome.rejected += count
        else:
            outcome.readings.append(reading)
            outcome.accepted += count
    return outcome


def _reading(
    machine_id: str, timestamp: int, fields: dict[str, int], outcome: RemoteWriteOutcome
) -> TimedReading | None:
    if "invalid" in fields:
        return None  # already named in outcome.invalid
    missing = [name for name in FIELDS.values() if name not in fields]
    if missing:
        outcome.incomplete.append(f"{machine_id} at {timestamp}: no {', '.join(missing)}")
        return None
    figures = MeminfoFigures(
        mem_total=fields["MemTotal"],
        mem_free=fields["MemFree"],
        mem_available=fields["MemAvailable"],
        buffers=fields["Buffers"],
        cached=fields["Cached"],
        s_reclaimable=fields["SReclaimable"],
        shmem=fields["Shmem"],
    )
    try:
        reading = free_columns(figures)
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        outcome.invalid.append(f"{machine_id} at {timestamp}: no valid reading: {problems}")
        return None
    return TimedReading(machine_id, reading, timestamp)
