"""The OpenAPI document as generated clients and fuzzers read it: named operations,
a named schema for every answer, error answers included, and exact bounds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from producer_api.app import create_app
from producer_api.consistency import parse_token
from producer_api.fleet import FleetCursor
from producer_api.history import HistoryCursor
from producer_api.paging import CURSOR_PATTERN, encode_cursor
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading
from tests.helpers import READING

OPERATIONS = {
    ("post", "/cpu-info/{machine_id}"): "publish_reading",
    ("get", "/cpu-info/{machine_id}"): "get_latest_reading",
    ("get", "/cpu-info/{machine_id}/history"): "get_history",
    ("get", "/cpu-info"): "list_machines",
    ("post", "/cpu-info"): "publish_batch",
    ("delete", "/cpu-info/{machine_id}"): "retire_machine",
    ("get", "/healthz"): "check_liveness",
    ("get", "/readyz"): "check_readiness",
}
JSON = "application/json"


def app(**settings: Any) -> FastAPI:
    return create_app(ProducerSettings(_env_file=None, **settings))


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, by_method in document["paths"].items():
        for method, operation in by_method.items():
            yield method, path, operation


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return app().openapi()


def test_each_operation_is_named_after_its_route(document: dict[str, Any]) -> None:
    named = {(m, p): op["operationId"] for m, p, op in operations(document)}
    assert named.items() >= OPERATIONS.items()


def test_the_ingest_formats_are_named_after_their_routes(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/v1/metrics"]["post"]["operationId"] == "export_otlp_metrics"
    assert paths["/api/v1/write"]["post"]["operationId"] == "prometheus_remote_write"


def test_a_route_added_later_is_named_after_its_route_too() -> None:
    later = app()

    @later.delete("/cpu-info/{machine_id}/probe")
    async def forget_probe(machine_id: str) -> None:
        """A route as any module would add it, with no operation_id of its own."""

    operation = later.openapi()["paths"]["/cpu-info/{machine_id}/probe"]["delete"]
    assert operation["operationId"] == "forget_probe"


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_every_answer_has_a_named_schema(document: dict[str, Any], method: str, path: str) -> None:
    for status, answer in document["paths"][path][method]["responses"].items():
        schema = answer["content"][JSON]["schema"]
        assert set(schema) == {"$ref"}, (status, schema)
        assert schema["$ref"].rsplit("/", 1)[1] in document["components"]["schemas"]


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_every_error_answer_decodes_as_an_error_model(
    document: dict[str, Any], method: str, path: str
) -> None:
    answers = document["paths"][path][method]["responses"]
    errors = {status: answer for status, answer in answers.items() if status >= "400"}
    assert errors, (method, path)
    # The health checks' 503 has the body of their 200; every other error its model.
    for status, answer in errors.items():
        ref = answer["content"][JSON]["schema"]["$ref"]
        if path in {"/healthz", "/readyz"}:
            assert ref == answers["200"]["content"][JSON]["schema"]["$ref"]
        else:
            model = "HTTPValidationError" if status == "422" else "ErrorMessage"
            assert ref == f"#/components/schemas/{model}", (path, status)


def test_the_404_of_a_read_is_an_error_message(document: dict[str, Any]) -> None:
    for path in ("/cpu-info/{machine_id}", "/cpu-info/{machine_id}/history"):
        answer = document["paths"][path]["get"]["responses"]["404"]["content"][JSON]
        assert answer["schema"] == {"$ref": "#/components/schemas/ErrorMessage"}
        assert answer["example"] == {"detail": "Data not found"}


def test_the_401_and_403_of_the_api_keys_are_error_messages() -> None:
    document = app(api_keys=SecretStr("a-key-of-sufficient-length-0123456789")).openapi()
    post = document["paths"]["/cpu-info/{machine_id}"]["post"]["responses"]
    for status in ("401", "403"):
        schema = post[status]["content"][JSON]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorMessage"}


def test_every_bound_is_an_exact_integer(document: dict[str, Any]) -> None:
    # FastAPI's model of the document holds bounds as floats: 2**63 - 1 became 2**63.
    def bounds(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
                    yield value
                else:
                    yield from bounds(value)
        elif isinstance(node, list):
            for item in node:
                yield from bounds(item)

    found = list(bounds(document))
    assert found
    assert all(type(bound) is int for bound in found), found


def test_the_columns_bound_is_the_one_the_model_enforces(document: dict[str, Any]) -> None:
    columns = document["components"]["schemas"]["MemoryReading"]["properties"]
    for column in columns.values():
        assert (column["minimum"], column["exclusiveMaximum"]) == (0, 2**63)
    largest = dict.fromkeys(READING, 2**63 - 1)
    assert MemoryReading.model_validate(largest).total == 2**63 - 1
    with pytest.raises(ValidationError):
        MemoryReading.model_validate({**largest, "total": 2**63})
    with pytest.raises(ValidationError):
        MemoryReading.model_validate({**READING, "free": -1})


def test_the_cursor_and_token_parameters_have_the_patterns_the_api_checks(
    document: dict[str, Any],
) -> None:
    for path in ("/cpu-info", "/cpu-info/{machine_id}/history"):
        parameters = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
        assert parameters["cursor"]["pattern"] == CURSOR_PATTERN
        assert parameters["limit"]["maximum"] == 1000
    for cursor in (HistoryCursor(before="1769860800123-17"), FleetCursor(after="web-01")):
        assert re.fullmatch(CURSOR_PATTERN, encode_cursor(cursor))
    latest = document["paths"]["/cpu-info/{machine_id}"]["get"]["parameters"]
    tokens = [p["schema"]["pattern"] for p in latest if "onsistency" in p["name"]]
    assert len(tokens) == 2
    for pattern in tokens:
        assert re.fullmatch(pattern, "4:17")
        parse_token("4:17")
        for wrong in ("0", "4-17", "04:17", "4:"):
            assert not re.fullmatch(pattern, wrong)
            with pytest.raises(ValueError, match="<partition>:<offset>"):
                parse_token(wrong)
