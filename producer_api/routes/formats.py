"""`POST /v1/metrics` (OTLP/HTTP) and `POST /api/v1/write` (Prometheus remote-write 1.0).

Here, not in `routes.ingest`: these take other bodies (protobuf, snappy) and answer in
their protocols' terms, by rules of their own; the translations are in
`producer_api.formats`. Each answers as its senders expect, in the request's own
encoding where the protocol has one: OTLP answers an ExportMetricsServiceResponse
(partial success naming what was rejected) or a google.rpc.Status, in protobuf or OTLP's
JSON as the request was sent; remote-write answers 204, or plain text with 4xx (not
retried by Prometheus) or 5xx (retried). Neither answers a success before Kafka
acknowledged every reading.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request, Response, status
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from producer_api.deps import PublisherDep, SettingsDep
from producer_api.errors import KAFKA_RETRY_AFTER_SECONDS
from producer_api.formats import otlp, remote_write
from producer_api.formats.bodies import (
    BodyTooLargeError,
    UndecodableBodyError,
    gunzip,
    media_parameters,
    media_type,
    unsnappy,
)
from producer_api.formats.prompb.remote_pb2 import WriteRequest
from producer_api.formats.published import Source, publish_readings
from producer_api.headers import CONTENT_TYPE_HEADER, RETRY_AFTER_HEADER
from producer_api.metrics import IngestMetrics
from producer_api.schemas import RETRY_AFTER_SECONDS
from telemetry_common.contract import utc_now

logger = logging.getLogger(__name__)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
OTLP_PATH: Final = "/v1/metrics"
REMOTE_WRITE_PATH: Final = "/api/v1/write"
# OTLP's partial_success.error_message: enough to say why, not a copy of the request.
_MAX_ERROR_MESSAGE: Final = 2000


def _not_acknowledged(error: object) -> str:
    """The 503's message of both formats: nothing of the request is confirmed stored."""
    return (
        f"Kafka did not acknowledge the readings ({error}); none is confirmed as stored. "
        "Retry later."
    )


async def get_ingest_metrics(request: Request) -> IngestMetrics:
    metrics: IngestMetrics = request.app.metrics.ingest
    return metrics


IngestMetricsDep = Annotated[IngestMetrics, Depends(get_ingest_metrics)]

router = APIRouter(tags=["ingest formats"])


# --- OTLP/HTTP -------------------------------------------------------------------------


def _otlp_message(message: Message, encoding: str, status_code: int, **headers: str) -> Response:
    if encoding == JSON:
        body = json_format.MessageToJson(message, indent=None).encode()
    else:
        body = message.SerializeToString()
    return Response(body, status_code=status_code, media_type=encoding, headers=headers or None)


def _otlp_status(
    code: int, message: str, encoding: str, status_code: int, **headers: str
) -> Response:
    return _otlp_message(
        status_pb2.Status(code=code, message=message), encoding, status_code, **headers
    )


_OTLP_BODIES: Final = {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    JSON: {"schema": {"type": "object"}},
}
_OTLP_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": (
            "Every reading the request made was acknowledged by Kafka. An "
            "ExportMetricsServiceResponse in the request's encoding: empty, or with "
            "`partial_success` giving `rejected_data_points` and an `error_message` naming "
            "why (a resource without a host id, missing states, invalid values)."
        ),
        "content": _OTLP_BODIES,
    },
    400: {
        "description": "The body cannot be decoded: a google.rpc.Status in the request's encoding.",
        "content": _OTLP_BODIES,
    },
    413: {"description": "The body, or the body once inflated, is over `API_MAX_BODY_BYTES`."},
    415: {
        "description": (
            "Not `application/x-protobuf` or `application/json`, or a Content-Encoding "
            "other than gzip; a google.rpc.Status in JSON."
        ),
        "content": {JSON: {"schema": {"type": "object"}}},
    },
    503: {
        "description": (
            "Kafka did not acknowledge every reading: send the request again after "
            "`Retry-After` seconds (OTLP exporters do). A google.rpc.Status."
        ),
        "headers": RETRY_AFTER_SECONDS,
        "content": _OTLP_BODIES,
    },
}


@router.post(
    OTLP_PATH,
    operation_id="export_otlp_metrics",
    summary="Publish memory readings sent as OTLP metrics",
    response_class=Response,
    responses=_OTLP_RESPONSES,
    openapi_extra={"requestBody": {"required": True, "content": _OTLP_BODIES}},
)
async def export_otlp_metrics(
    request: Request,
    publisher: PublisherDep,
    settings: SettingsDep,
    metrics: IngestMetricsDep,
) -> Response:
    """OTLP/HTTP metrics export (`application/x-protobuf` or OTLP's JSON, gzip or not).

    Each resource with a host id (`host.name`, else `host.id`, else
    `service.instance.id`) whose memory data points, as the Collector's hostmetrics
    receiver names them, make a reading becomes one reading of that machine, of the data
    points' time (docs/ingest.md)."""
    encoding = media_type(request.headers.get(CONTENT_TYPE_HEADER))
    if encoding not in (PROTOBUF, JSON):
        return _otlp_status(
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content type {encoding or 'none'!r}: send {PROTOBUF} or {JSON}",
            JSON,
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if content_encoding not in ("identity", "gzip"):
        return _otlp_status(
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content encoding {content_encoding!r}: send gzip or none",
            JSON,
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    body = await request.body()
    export = ExportMetricsServiceRequest()
    try:
        if content_encoding == "gzip":
            body = gunzip(body, settings.api_max_body_bytes)
        if encoding == JSON:
            json_format.Parse(body.decode("utf-8"), export)
        else:
            export.ParseFromString(body)
    except BodyTooLargeError as exc:
        return _otlp_status(
            code_pb2.INVALID_ARGUMENT, str(exc), encoding, status.HTTP_413_CONTENT_TOO_LARGE
        )
    except (UndecodableBodyError, DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        return _otlp_status(
            code_pb2.INVALID_ARGUMENT,
            f"undecodable {encoding} ExportMetricsServiceRequest: {exc}",
            encoding,
            status.HTTP_400_BAD_REQUEST,
        )
    outcome = otlp.readings_from_request(export)
    error = await publish_readings(
        publisher, settings.kafka_topic, outcome.readings, Source.OTLP, utc_now()
    )
    if error is not None:
        # The publisher logs the outage once; each refused request is counted in /metrics.
        logger.debug("publish to Kafka failed for %s: %s", OTLP_PATH, error)
        return _otlp_status(
            code_pb2.UNAVAILABLE,
            _not_acknowledged(error),
            encoding,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            **{RETRY_AFTER_HEADER: str(KAFKA_RETRY_AFTER_SECONDS)},
        )
    metrics.count("otlp", outcome.accepted, outcome.rejected, outcome.ignored)
    answer = ExportMetricsServiceResponse()
    if outcome.rejected:
        message = "; ".join(outcome.errors)
        logger.info("OTLP export: %d data points rejected: %s", outcome.rejected, message)
        answer.partial_success.rejected_data_points = outcome.rejected
        answer.partial_success.error_message = message[:_MAX_ERROR_MESSAGE]
    return _otlp_message(answer, encoding, status.HTTP_200_OK)


# --- Prometheus remote-write 1.0 -------------------------------------------------------

_TEXT: Final = "text/plain; charset=utf-8"
# remote-write 1.0's only message; 2.0 senders name theirs in the proto parameter.
_WRITE_REQUEST_PROTO: Final = "prometheus.WriteRequest"


def _text(status_code: int, message: str, **headers: str) -> Response:
    return Response(message + "\n", status_code=status_code, media_type=_TEXT, headers=headers)


@router.post(
    REMOTE_WRITE_PATH,
    operation_id="prometheus_remote_write",
    summary="Publish memory readings sent by Prometheus remote-write",
    response_class=Response,
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"description": "Every reading the request made was acknowledged by Kafka."},
        400: {
            "description": (
                "Not retried by Prometheus: the body is not snappy or not a WriteRequest; "
                "or some memory series name no valid machine or hold impossible values "
                "(the others were published). Plain text saying why."
            ),
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        413: {"description": "The body, or the body decompressed, is over `API_MAX_BODY_BYTES`."},
        415: {
            "description": (
                "Not `application/x-protobuf` of a remote-write 1.0 WriteRequest with "
                "`Content-Encoding: snappy`."
            ),
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        503: {
            "description": (
                "Kafka did not acknowledge every reading: Prometheus sends the request "
                "again (it retries 5xx)."
            ),
            "headers": RETRY_AFTER_SECONDS,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def prometheus_remote_write(
    request: Request,
    publisher: PublisherDep,
    settings: SettingsDep,
    metrics: IngestMetricsDep,
) -> Response:
    """Prometheus remote-write 1.0: a snappy-compressed protobuf WriteRequest.

    node_exporter's `node_memory_*_bytes` series of one machine (the
    `API_REMOTE_WRITE_MACHINE_LABEL` label, `instance` by default, without its port) at
    one timestamp become one reading of that time; other series are ignored
    (docs/ingest.md)."""
    content_type = request.headers.get(CONTENT_TYPE_HEADER)
    proto = media_parameters(content_type).get("proto", _WRITE_REQUEST_PROTO)
    if media_type(content_type) != PROTOBUF or proto != _WRITE_REQUEST_PROTO:
        return _text(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"unsupported content type {content_type!r}: send {PROTOBUF} "
            "(a remote-write 1.0 WriteRequest)",
        )
    content_encoding = request.headers.get("content-encoding", "").strip().lower()
    if content_encoding != "snappy":
        return _text(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"unsupported content encoding {content_encoding or 'none'!r}: send snappy",
        )
    body = await request.body()
    write = WriteRequest()
    try:
        write.ParseFromString(unsnappy(body, settings.api_max_body_bytes))
    except BodyTooLargeError as exc:
        return _text(status.HTTP_413_CONTENT_TOO_LARGE, str(exc))
    except (UndecodableBodyError, DecodeError) as exc:
        return _text(status.HTTP_400_BAD_REQUEST, f"undecodable WriteRequest: {exc}")
    outcome = remote_write.readings_from_request(write, settings.api_remote_write_machine_label)
    error = await publish_readings(
        publisher, settings.kafka_topic, outcome.readings, Source.REMOTE_WRITE, utc_now()
    )
    if error is not None:
        # The publisher logs the outage once; each refused request is counted in /metrics.
        logger.debug("publish to Kafka failed for %s: %s", REMOTE_WRITE_PATH, error)
        return _text(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            _not_acknowledged(error),
            **{RETRY_AFTER_HEADER: str(KAFKA_RETRY_AFTER_SECONDS)},
        )
    metrics.count("remote-write", outcome.accepted, outcome.rejected, outcome.ignored)
    if outcome.incomplete:
        # Not the sender's error: a scrape's series may come split over two requests.
        logger.info("remote-write: incomplete memory series: %s", "; ".join(outcome.incomplete))
    if outcome.invalid:
        message = "; ".join(outcome.invalid)[:_MAX_ERROR_MESSAGE]
        logger.info("remote-write: %d samples rejected: %s", outcome.rejected, message)
        return _text(
            status.HTTP_400_BAD_REQUEST,
            f"{outcome.rejected} memory samples rejected (the others were published): {message}",
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
