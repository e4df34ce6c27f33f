"""The OpenAPI document against the request models it is generated from (no drift), and against the
OpenAPI 3.1 schema. Which routes the app serves is checked in test_endpoints.py."""

from __future__ import annotations

from openapi_spec_validator import validate

from looksync.quality.judging.ratings import _KNOWN_FIELDS, CRITERIA, SHARED_FIELDS
from serving.models import FORM_FIELDS, Filters, LookSearchParams, ProductPath, ReportQuery, SearchParams, SimilarQuery
from serving.openapi import openapi_document


def _resolve(doc: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_document())


def test_every_request_model_field_is_documented():
    doc = openapi_document()
    for path, model in (("/v1/looks/search", LookSearchParams), ("/v1/search", SearchParams)):
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        body = _resolve(doc, content["application/json"]["schema"])
        assert set(body["properties"]) == set(model.model_fields), path
        assert body["additionalProperties"] is False  # unknown fields are refused, and documented so
        filters = _resolve(doc, body["properties"]["filters"]["anyOf"][0])
        assert set(filters["properties"]) == set(Filters.model_fields)
        form = content["multipart/form-data"]["schema"]["properties"]
        assert set(form) == {"image", "params", *FORM_FIELDS[model]}
    similar = doc["paths"]["/v1/products/{product_id}/similar"]["get"]["parameters"]
    assert {p["name"] for p in similar if p["in"] == "query"} == set(SimilarQuery.model_fields)
    assert {p["name"] for p in similar if p["in"] == "path"} == set(ProductPath.model_fields)
    k = next(p for p in similar if p["name"] == "k")["schema"]
    assert (k["type"], k["minimum"], k["maximum"]) == ("integer", 1, 100)
    report = doc["paths"]["/v1/judgments/report"]["get"]["parameters"]
    assert {p["name"] for p in report} == set(ReportQuery.model_fields)


def test_the_judgments_body_matches_what_the_parser_takes():
    doc = openapi_document()
    body = doc["paths"]["/v1/judgments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {*SHARED_FIELDS, "ratings", "side_token"}  # side_token: resolved before parsing
    rating = body["properties"]["ratings"]["items"]
    assert set(rating["properties"]) <= _KNOWN_FIELDS and set(_KNOWN_FIELDS) - set(rating["properties"]) <= set(SHARED_FIELDS)
    assert set(rating["properties"]["scores"]["properties"]) == set(CRITERIA)


def test_every_json_endpoint_documents_its_4xx():
    doc = openapi_document()
    for path, method in (("/v1/looks/search", "post"), ("/v1/search", "post"), ("/v1/judgments", "post")):
        assert {"400", "415"} <= set(doc["paths"][path][method]["responses"]), path
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert set(error) == {"code", "message", "field"}
