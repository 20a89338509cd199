"""Which request bodies are JSON this API reads: the Content-Type and Content-Encoding rule.

A body is read only as `application/json` (a `charset`, if given, UTF-8) and
uncompressed; anything else is 415, with the reason `unsupported_content` gives. The
ingest endpoints apply it (`producer_api.ingest.core`) before reading the body, and
the body is then held to `strict_json`.
"""

from __future__ import annotations

import email.message
from typing import Final

from starlette.datastructures import Headers

from producer_api.headers import CONTENT_ENCODING_HEADER, CONTENT_TYPE_HEADER

JSON_MEDIA_TYPE: Final = "application/json"
# As Starlette's `Headers` keys them: a lookup skips lower-casing the name.
_CONTENT_TYPE: Final = CONTENT_TYPE_HEADER.lower()
_CONTENT_ENCODING: Final = CONTENT_ENCODING_HEADER.lower()


def unsupported_content(headers: Headers) -> str | None:
    """Why the body's Content-Type or Content-Encoding is refused, or None if it is fine."""
    content_type = headers.get(_CONTENT_TYPE)
    if content_type is None:
        return f"send the body with Content-Type: {JSON_MEDIA_TYPE}"
    # What nearly every client sends, decided without parsing the header.
    if content_type.lower() == JSON_MEDIA_TYPE and _CONTENT_ENCODING not in headers:
        return None
    # The standard library's parser of MIME headers handles parameters and quoting.
    parsed = email.message.Message()
    parsed[_CONTENT_TYPE] = content_type
    if parsed.get_content_type() != JSON_MEDIA_TYPE:
        return f"the body must be {JSON_MEDIA_TYPE}"
    charset = parsed.get_param("charset")
    if charset is not None and str(charset).lower() not in {"utf-8", "utf8"}:
        return f"the body must be {JSON_MEDIA_TYPE} in UTF-8"
    encoding = headers.get(_CONTENT_ENCODING, "identity").strip().lower()
    if encoding != "identity":
        return "Content-Encoding is not supported: send the body uncompressed"
    return None
