"""Schemathesis hooks of the HTTP fuzzing (loaded through `schemathesis.toml`).

The OpenAPI document says everything the API checks that JSON Schema can say: each
column's bounds (`minimum: 0`, `exclusiveMaximum: 2**63`, exact integers), the machine
id's and the consistency token's patterns, the cursor's alphabet and length, every
limit. Inputs are sent as generated, but for the four rules no JSON Schema can
express, each adjusted in the narrowest way that keeps a valid case valid:

* A reading's columns are parts of its `total` and none may exceed it, a rule between
  fields: `total` is raised to the largest column. In bodies generated as invalid too:
  raising it never makes an invalid body valid, and schemathesis judges a "negative"
  case whose mutation landed elsewhere (another item, the path) as valid.
* The API takes integers written as integers only (`1.0` is refused, as documented),
  while JSON Schema's data model holds `1.0` and `1` for the same number: in a body
  generated as valid, integral floats are sent as integers.
* A paging `cursor` is opaque: valid only as the API gave it out (any other is a 422,
  `not a cursor of this listing`), which no pattern can say. A cursor generated as
  valid is dropped, so the request asks for the first page.
* The fleet listing's query parameters depend on each other (`min_pressure` and
  `max_pressure` bound a listing by pressure only, and a listing by pressure takes no
  `not_seen_for`; any other mix is a 422 naming the parameter), which OpenAPI's
  parameters, each with a schema of its own, cannot say: in a query generated as
  valid, the parameters the chosen order does not take are dropped.

One more corrects schemathesis itself, changing no input: its coverage phase at times
labels a case valid while its own record of the case says a part was generated invalid
(an `X-Consistency-Token: 0` header beside a near-boundary machine id). Such a case is
labelled invalid, as its parts say, so the API's 422 is judged as the rejection it is.

docs/api.md ("The OpenAPI document") says the same.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import schemathesis
from schemathesis import GenerationMode

from telemetry_common.contract import MemoryReading

_COLUMNS = frozenset(MemoryReading.model_fields)


def _as_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _reading_made_valid(reading: Any, *, generated_valid: bool) -> Any:
    """`reading` with `total` raised to its largest column (and, if generated valid, its
    integral floats written as integers), if it is a reading's shape."""
    if not isinstance(reading, dict):
        return reading
    if generated_valid:
        reading = {name: _as_integer(value) for name, value in reading.items()}
    if set(reading) != _COLUMNS or not all(type(v) is int for v in reading.values()):
        return reading
    return {**reading, "total": max(reading.values())}


def _labelled_as_its_parts(case: schemathesis.Case[Any]) -> bool:
    """Whether the case is valid, correcting a valid label on an invalid part."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return False
    if any(info.mode.is_negative for info in meta.components.values()):
        meta.generation.mode = GenerationMode.NEGATIVE
        return False
    return True


def _fleet_query_made_consistent(query: MutableMapping[str, Any]) -> None:
    """Drop the fleet listing's parameters its order does not take (others' queries hold
    none of these names)."""
    if query.get("sort") == "pressure":
        query.pop("not_seen_for", None)
    else:
        query.pop("min_pressure", None)
        query.pop("max_pressure", None)


@schemathesis.hook
def map_case(_: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    valid = _labelled_as_its_parts(case)
    if valid and isinstance(case.query, MutableMapping):
        case.query.pop("cursor", None)
        _fleet_query_made_consistent(case.query)
    if isinstance(case.body, dict):
        case.body = _reading_made_valid(case.body, generated_valid=valid)
    elif isinstance(case.body, list):  # a batch: each item's reading
        case.body = [
            {**item, "reading": _reading_made_valid(item["reading"], generated_valid=valid)}
            if isinstance(item, dict) and "reading" in item
            else item
            for item in case.body
        ]
    return case
