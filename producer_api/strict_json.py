"""A strict reading of request bodies as JSON (RFC 8259), before any model sees them.

Python's `json` module accepts documents that are ambiguous or that no JSON encoder
can write back: duplicate keys (it silently keeps the last), `NaN` and `Infinity`,
numbers beyond any 64-bit integer or double (`1e400` becomes infinity), and `\\ud800`
escapes that decode to a lone surrogate, which is not valid Unicode. Such a value,
echoed back in an error answer, breaks the encoder and turns a client error into a
500. `parse_strict_json` refuses all of these with a MalformedJsonError whose message
is safe to send back as it is: it names positions and (escaped) keys, never values.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

# The longest integer a 64-bit consumer of the data can hold (2**64 has 20 digits).
# Longer ones are refused while parsing; shorter ones reach the model, which names the
# field if the value is out of its range.
MAX_INTEGER_DIGITS: Final = 20
# Far deeper than any document of this API; it keeps every later step that walks the
# value (validation, error answers) away from the interpreter's recursion limit.
MAX_NESTING_DEPTH: Final = 32
# How much of a key an error message quotes.
_QUOTED_KEY_CHARS: Final = 64


class MalformedJsonError(ValueError):
    """A request body that is not a JSON document this API accepts; the message says why."""


def _quoted(key: str) -> str:
    # ASCII-only JSON escaping turns a lone surrogate or a control character into an
    # escape sequence, so the quote is always encodable.
    text = key if len(key) <= _QUOTED_KEY_CHARS else key[:_QUOTED_KEY_CHARS] + "..."
    return json.dumps(text, ensure_ascii=True)


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # a key came twice: find the first one that did
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJsonError(f"duplicate key {_quoted(key)} in a JSON object")
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise MalformedJsonError(f"{name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise MalformedJsonError(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJsonError("a number is out of the range of a double")
    return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_depth_and_strings(document: Any) -> None:
    """Refuse nesting beyond MAX_NESTING_DEPTH and strings with lone surrogates."""
    pending: list[tuple[Any, int]] = [(document, 0)]  # a stack, not recursion
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_NESTING_DEPTH:
                raise MalformedJsonError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and not _is_unicode(key):
                    raise MalformedJsonError(
                        f"the key {_quoted(key)} holds an unpaired surrogate escape"
                    )
                pending.append((item, depth + 1))
        elif isinstance(value, str) and not _is_unicode(value):
            raise MalformedJsonError(
                "a string holds an unpaired surrogate escape (\\ud800-\\udfff)"
            )


# Built once: `json.loads` with arguments builds a decoder on every call.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicate_keys,
    parse_constant=_refuse_constant,
    parse_int=_bounded_int,
    parse_float=_finite_float,
)


def parse_strict_json(body: bytes) -> Any:
    """The JSON value of `body`; MalformedJsonError if it is not strict JSON in UTF-8."""
    if not body:
        raise MalformedJsonError("the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")  # strict: no replacement characters
    except UnicodeDecodeError as exc:
        raise MalformedJsonError(f"the request body is not UTF-8 (byte {exc.start})") from exc
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        document = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedJsonError(
            f"the request body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:  # the decoder recurses once per nesting level
        raise MalformedJsonError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels") from exc
    # A lone surrogate comes only from a `\u` escape (the UTF-8 decoding refused any
    # other), and a document cannot nest deeper than it has brackets: a body with
    # neither has nothing for the walk to find.
    if "\\u" in text or text.count("[") + text.count("{") > MAX_NESTING_DEPTH:
        _check_depth_and_strings(document)
    return document
