"""Logging set-up shared by the services: readable text, or one JSON object per line.

Every line has the time, the level, the logger's name and the message. A line logged
while the API handles a request also has the request's id (the `X-Request-ID` it
answers with; see `producer_api.middleware.request_ids`), and the `extra=` fields of the call
(`machine_id`, `partition`, `offset`, ...) become fields of their own in JSON.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal

from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TEXT_FORMAT_IN_REQUEST: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

# The JSON fields of every line, in order, under the names documented in
# docs/operations.md ("timestamp" is added by the formatter itself, in UTC).
_JSON_FIELDS: Final = ("levelname", "name", "message")
_JSON_NAMES: Final = {"levelname": "level", "name": "logger"}
# uvicorn puts an ANSI-coloured copy of its message on its records: not a field.
_NOT_FIELDS: Final = (*RESERVED_ATTRS, "color_message")

REQUEST_ID_FIELD: Final = "request_id"


class RequestIdFilter(logging.Filter):
    """Gives a record logged while a request is handled the request's id.

    The id lives in asgi-correlation-id's context variable, which its middleware sets
    for the request's task; records logged outside a request get no field at all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = correlation_id.get()
        if request_id is not None:
            setattr(record, REQUEST_ID_FIELD, request_id)
        return True


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, with the request id in brackets before the message when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._in_request = logging.PercentStyle(_TEXT_FORMAT_IN_REQUEST)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if hasattr(record, REQUEST_ID_FIELD):
            return self._in_request.format(record)
        return super().formatMessage(record)


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        list(_JSON_FIELDS),
        rename_fields=_JSON_NAMES,
        reserved_attrs=list(_NOT_FIELDS),
        timestamp=True,
    )


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send every logger's records (uvicorn's and librdkafka's included) to stderr, in
    `log_format`, from `level` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
