"""The names of every header the API reads or writes, each defined once.

HTTP header names are case-insensitive: these are the spellings the API writes and the
OpenAPI document shows. An ASGI answer carries a name in lower case as bytes, which
`raw` gives. `SOURCE_HEADER` is not an HTTP header but a Kafka record's, named here with
the others so that every name the API puts on the wire is in one place.
"""

from __future__ import annotations

from typing import Final

# The API's own.
API_KEY_HEADER: Final = "X-API-Key"
REQUEST_ID_HEADER: Final = "X-Request-ID"
CONSISTENCY_HEADER: Final = "X-Consistency-Token"
PARTITION_HEADER: Final = "X-Kafka-Partition"
OFFSET_HEADER: Final = "X-Kafka-Offset"

# HTTP's own, where the API sets or reads them by name.
RETRY_AFTER_HEADER: Final = "Retry-After"
LINK_HEADER: Final = "Link"
ALLOW_HEADER: Final = "Allow"
AUTHORIZATION_HEADER: Final = "Authorization"
CONTENT_TYPE_HEADER: Final = "Content-Type"
CONTENT_ENCODING_HEADER: Final = "Content-Encoding"
WWW_AUTHENTICATE_HEADER: Final = "WWW-Authenticate"

# The Kafka record header naming the format a reading came in (`formats.published`).
SOURCE_HEADER: Final = "memtel.source"


def raw(name: str) -> bytes:
    """`name` as an ASGI answer carries it: lower case, bytes."""
    return name.lower().encode()
