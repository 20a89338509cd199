"""Schemathesis hooks of the HTTP fuzzing (loaded through `schemathesis.toml`).

Bodies that schemathesis generates as valid are made valid for the reading model too,
so that `positive_data_acceptance` judges the API and not the generator:

* the model refuses a column larger than `total` (the parts of a machine's memory
  cannot exceed it), a rule JSON Schema cannot express: `total` is raised to the
  largest column, in bodies generated as invalid too (it cannot make them valid);
* JSON Schema counts `1.0` as an integer, the model (documented: a float is refused)
  does not: integral floats are sent as integers;
* the generator compares against `maximum` in floating point, so it takes integers a
  little above 2**63 - 1 for valid: they are brought down to it (in a single reading
  and in each item of a batch).

Bodies generated as invalid are otherwise left exactly as generated.

A paging `cursor` generated as valid is dropped: a cursor is opaque, valid only as the
API gave it out (any other is a 422), which no schema can say. So is a consistency
token generated as valid that does not match its documented pattern (the coverage phase
sends `X-Consistency-Token: 0` as a valid header).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import schemathesis
from schemathesis import GenerationMode

from producer_api.consistency import CONSISTENCY_HEADER, CONSISTENCY_PARAMETER, parse_token
from telemetry_common.contract import MemoryReading

_COLUMNS = tuple(MemoryReading.model_fields)
_MAX_KIB = 2**63 - 1


def _as_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_reading_shaped(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == set(_COLUMNS)
        and all(type(body[name]) is int and body[name] >= 0 for name in _COLUMNS)
    )


def _made_valid(reading: Any, *, generated_valid: bool) -> Any:
    """`reading` with `total` raised to its largest column (and, if generated valid, its
    integral floats made integers and its columns brought down to the model's bound)."""
    if not isinstance(reading, dict):
        return reading
    body = (
        {name: _as_integer(value) for name, value in reading.items()}
        if generated_valid
        else reading
    )
    if not _is_reading_shaped(body):
        return reading
    columns = {name: min(body[name], _MAX_KIB) for name in _COLUMNS} if generated_valid else body
    # The one rule JSON Schema cannot express. Raising total never makes an invalid body
    # valid, so bodies generated as invalid get it too: schemathesis judges a "negative"
    # case whose mutation landed elsewhere (another item, the stateful phase) as valid.
    return {**columns, "total": max(columns.values())}


def _drop_malformed_token(values: MutableMapping[str, Any], name: str) -> None:
    try:
        parse_token(str(values[name]))
    except KeyError:
        return
    except ValueError:
        del values[name]


@schemathesis.hook
def map_case(_: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    valid = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    if valid and isinstance(case.query, MutableMapping):
        case.query.pop("cursor", None)
        _drop_malformed_token(case.query, CONSISTENCY_PARAMETER)
    if valid and isinstance(case.headers, MutableMapping):
        _drop_malformed_token(case.headers, CONSISTENCY_HEADER)
    if isinstance(case.body, dict):
        case.body = _made_valid(case.body, generated_valid=valid)
    elif isinstance(case.body, list):  # a batch: each item's reading
        case.body = [
            {**item, "reading": _made_valid(item["reading"], generated_valid=valid)}
            if isinstance(item, dict) and "reading" in item
            else item
            for item in case.body
        ]
    return case
