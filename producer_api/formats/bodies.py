"""Request bodies of the ingest formats: media types, and decompression within the limit.

A compressed body is small on the wire and may be anything but small once inflated, so
the inflated size is held to the same API_MAX_BODY_BYTES as a plain body.
"""

from __future__ import annotations

import zlib
from typing import Final

import cramjam


class BodyTooLargeError(ValueError):
    """The body, once decompressed, is larger than the limit."""


class UndecodableBodyError(ValueError):
    """The body is not what its Content-Encoding says."""


_GZIP_WINDOW: Final = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not raw deflate


def media_type(content_type: str | None) -> str:
    """`type/subtype` of a Content-Type, lower case, without its parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_parameters(content_type: str | None) -> dict[str, str]:
    """The parameters of a Content-Type (`proto=...`), names lower case."""
    parameters = {}
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"')
    return parameters


def gunzip(body: bytes, limit: int) -> bytes:
    """The gzip-compressed body, inflated, at most `limit` bytes."""
    inflater = zlib.decompressobj(_GZIP_WINDOW)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UndecodableBodyError(f"the body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise BodyTooLargeError(f"the body inflates to more than {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise UndecodableBodyError("the body is not one complete gzip stream")
    return data


def unsnappy(body: bytes, limit: int) -> bytes:
    """The snappy-compressed (block format) body, decompressed, at most `limit` bytes."""
    try:
        # The block format starts with the decompressed length: checked before inflating.
        length = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise UndecodableBodyError(f"the body is not snappy block format: {exc}") from None
    if length > limit:
        raise BodyTooLargeError(f"the body decompresses to {length} bytes, over {limit}")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise UndecodableBodyError(f"the body is not snappy block format: {exc}") from None
