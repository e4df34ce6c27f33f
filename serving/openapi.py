"""The OpenAPI 3.1 document (/openapi.json) and a self-contained docs page (/docs) rendered from it."""

from __future__ import annotations

import html
import json

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.models import (
    FORM_FIELDS,
    EventsBody,
    LookSearchParams,
    ProductPath,
    ReportQuery,
    SearchParams,
    ShopperPath,
    SimilarQuery,
)
from serving.responses import RESPONSE_MODELS

REQUEST_MODELS = (LookSearchParams, SearchParams, SimilarQuery, ReportQuery, EventsBody)

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_THUMBNAIL = {
    "200": {"description": "the thumbnail (longest side at most 256 px); ETag = the image hash",
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
    "304": {"description": "not modified (If-None-Match matched the ETag)"},
}
_SCORE = {"type": ["integer", "null"], "minimum": 1, "maximum": 5}
_JUDGMENTS = {
    "type": "object",
    "description": "shared fields once; a rating may override them. One bad rating refuses the whole submission. "
                   "model_id (or a side_token from /v1/judge/compare, which names the model and index version) is required.",
    "required": ["judge_id", "ratings"],
    "properties": {
        "judge_id": {"type": "string", "maxLength": 128},
        "look_id": {"type": "string", "maxLength": 200},
        "look_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "model_id": {"type": "string", "maxLength": 200},
        "index_version": {"type": "string", "maxLength": 200},
        "side_token": {"type": "string", "description": "a blind side of /v1/judge/compare"},
        "ratings": {
            "type": "array",
            "minItems": 1,
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["layer", "product_id", "scores"],
                "properties": {
                    "layer": {"type": "string"},
                    "product_id": {"type": "string"},
                    "rank": {"type": "integer", "minimum": 1},
                    "query_text": {"type": "string", "maxLength": 2000},
                    "scores": {
                        "type": "object",
                        "required": ["overall"],
                        "properties": {c: {**_SCORE, "type": "integer"} if c == "overall" else _SCORE
                                       for c in ("colour", "fit", "sleeve", "fabric", "pattern", "overall")},
                    },
                },
            },
        },
    },
}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def _path_param(model: type[BaseModel], name: str) -> dict:
    schema = {k: v for k, v in model.model_json_schema()["properties"][name].items() if k != "title"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def response_schemas() -> dict[str, dict]:
    """The JSON schemas of the response models (``serving.responses``), as components: the tests validate
    real answers against the same models, unknown fields refused."""
    _, defs = models_json_schema([(m, "serialization") for m in RESPONSE_MODELS], ref_template="#/components/schemas/{model}")
    return defs["$defs"]


def request_schemas() -> dict[str, dict]:
    """The JSON schemas of the request models (``serving.models``), as components: what the service
    validates is what the document says."""
    _, defs = models_json_schema([(m, "validation") for m in REQUEST_MODELS], ref_template="#/components/schemas/{model}")
    return defs["$defs"]


def _image_body(model: type[BaseModel], required_image: bool) -> dict:
    multipart = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "params": {"type": "string", "description": f"the JSON parameters ({model.__name__}, without image_base64) as a string"},
            **{name: {"type": "string", "maxLength": 2048 if name == "image_url" else 500} for name in FORM_FIELDS[model]},
        },
        **({"required": ["image"]} if required_image else {}),
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
            "multipart/form-data": {"schema": multipart},
        },
    }


def _query_params(model: type[BaseModel]) -> list[dict]:
    """A query model's fields as query parameters: optional values without their null branch; lists are
    sent comma-separated (one string), as the service reads them."""
    params = []
    for name, prop in model.model_json_schema()["properties"].items():
        schema = next((s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"), prop)
        schema = {k: v for k, v in schema.items() if k not in ("title", "default")}
        if schema.get("type") == "array":
            schema = {"type": "string", "description": "comma-separated list"}
        description = prop.get("description") or schema.pop("description", None)
        params.append({"name": name, "in": "query", "required": False, "schema": schema,
                       **({"description": description} if description else {})})  # fmt: skip
    return params


def openapi_document() -> dict:
    _PRODUCT_ID = _path_param(ProductPath, "product_id")  # noqa: N806
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LookSync look search service",
            "version": "1",
            "description": "Per-layer product search for generated looks; text, image and product-to-product search.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {
                **request_schemas(),
                **response_schemas(),
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": "string", "description": "the request field at fault, when one is"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                },
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/looks/search": {
                "post": {
                    "summary": "Products for each garment layer of a look",
                    "requestBody": _image_body(LookSearchParams, required_image=True),
                    "responses": {**_json(_ref("LookResponse")), **_errors(400, 401, 413, 415, 503)},
                }
            },
            "/v1/search": {
                "post": {
                    "summary": "Text, image, or image + text modifier search",
                    "requestBody": _image_body(SearchParams, required_image=False),
                    "responses": {**_json(_ref("SearchResponse")), **_errors(400, 401, 413, 415, 503)},
                }
            },
            "/v1/products/{product_id}": {
                "get": {
                    "summary": "One product of the live index, with its group's offers (every shop and market "
                    "that lists the item)",
                    "parameters": [_PRODUCT_ID],
                    "responses": {**_json(_ref("ProductResponse")), **_errors(401, 404, 503)},
                }
            },
            "/v1/products/{product_id}/similar": {
                "get": {
                    "summary": "Products similar to one product (same layer unless `layers` says otherwise)",
                    "parameters": [
                        _PRODUCT_ID,
                        *_query_params(SimilarQuery),
                    ],
                    "responses": {**_json(_ref("SimilarResponse")), **_errors(400, 401, 404, 501, 503)},
                }
            },
            "/v1/products/{product_id}/thumbnail": {
                "get": {
                    "summary": "The thumbnail of a product's current image (Cache-Control: no-cache; revalidate by ETag)",
                    "parameters": [_PRODUCT_ID],
                    "responses": {**_THUMBNAIL, **_errors(401, 404, 503)},
                }
            },
            "/v1/thumbnails/{image_hash}": {
                "get": {
                    "summary": "A product image's thumbnail by image hash (sha256 of the image): open without a key, "
                               "immutable (Cache-Control: public, max-age=31536000, immutable)",
                    "security": [],
                    "parameters": [{"name": "image_hash", "in": "path", "required": True,
                                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
                    "responses": {**_THUMBNAIL, **_errors(400, 404, 503)},
                }
            },
            "/v1/events": {
                "post": {
                    "summary": "Record what shoppers did (view, click, add_to_cart, purchase): a batch is stored whole, "
                               "or refused with nothing stored",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/EventsBody"}}}},  # fmt: skip
                    "responses": {
                        "201": {"description": "stored", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {"stored": {"type": "integer"}}}}}},  # fmt: skip
                        **_errors(400, 401, 413, 415, 503),
                    },
                }
            },
            "/v1/shoppers/{shopper_id}/profile": {
                "get": {
                    "summary": "A shopper's learned preferences: decayed weights by brand, size and price band per market",
                    "parameters": [_path_param(ShopperPath, "shopper_id")],
                    "responses": {**_json({"type": "object", "properties": {
                        "shopper_id": {"type": "string"}, "brands": {"type": "object"}, "sizes": {"type": "object"},
                        "price_bands": {"type": "object", "description": "market -> band (e.g. 128-256) -> weight"},
                        "events": {"type": "integer"}, "as_of": {"type": "string"},
                        "recent_events": {"type": "array", "items": {"type": "object"}},
                    }}), **_errors(400, 401, 404, 503)},  # fmt: skip
                },
                "delete": {
                    "summary": "Erase the shopper's profile and events (right to be forgotten)",
                    "parameters": [_path_param(ShopperPath, "shopper_id")],
                    "responses": {**_json({"type": "object", "properties": {
                        "shopper_id": {"type": "string"}, "erased": {"type": "boolean"}}}), **_errors(400, 401, 503)},  # fmt: skip
                },
            },
            "/v1/judgments": {
                "post": {
                    "summary": "Store a judge's 1-5 ratings of returned products (all or none; the judging tool at /judge)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _JUDGMENTS}}},
                    "responses": {
                        **_errors(415),
                        "201": {"description": "stored", "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"ids": {"type": "array", "items": {"type": "integer"}}, "count": {"type": "integer"}},
                        }}}},
                        **_errors(400, 401, 503),
                    },
                }
            },
            "/v1/judge/compare": {
                "post": {
                    "summary": "A look asked of live and of the shadow version: blind sides A and B in a random order, each "
                               "with a side_token to send back with its ratings (409 when no shadow version is mirrored)",
                    "requestBody": _image_body(LookSearchParams, required_image=True),
                    "responses": {**_json({"type": "object", "properties": {
                        "look_sha256": {"type": "string"},
                        "sides": {"type": "array", "items": {"type": "object", "properties": {
                            "side": {"type": "string", "enum": ["A", "B"]}, "side_token": {"type": "string"},
                            "layers": {"type": "array", "items": {"type": "object"}}}}}}}),
                        **_errors(400, 401, 409, 413, 415, 503)},  # fmt: skip
                }
            },
            "/v1/judgments/report": {
                "get": {
                    "summary": "Mean opinion score per criterion and model with 95% intervals, and inter-judge agreement",
                    "parameters": _query_params(ReportQuery),
                    "responses": {**_json({"type": "object"}), **_errors(401, 503)},
                }
            },
            "/v1/sample-looks": {
                "get": {"summary": "Looks offered by the demo and judging pages (LOOKSYNC_JUDGING_LOOKS_DIR)",
                        "responses": {**_json({"type": "object"}), **_errors(401)}}
            },
            "/v1/sample-looks/{look_id}": {
                "get": {
                    "summary": "One sample look's image",
                    "parameters": [{"name": "look_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "the image"}, **_errors(401, 404)},
                }
            },
            "/healthz": {"get": {"summary": "Process up", "security": [], "responses": _json({"type": "object"})}},
            "/readyz": {
                "get": {"summary": "Model loaded, index reachable, live version known", "security": [],
                        "responses": {**_json({"type": "object"}), "503": {"description": "not ready"}}}
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": {"description": "text exposition format"}}}},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document())


@bp.get("/docs")
def docs_page():
    doc = openapi_document()
    rows = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            rows.append(
                f"<h2><code>{method.upper()} {html.escape(path)}</code></h2><p>{html.escape(op['summary'])}</p>"
                + (f"<p>parameters: <code>{html.escape(params)}</code></p>" if params else "")
                + (f"<pre>{html.escape(json.dumps(body, indent=2))}</pre>" if body else "")
                + f"<p>responses: {', '.join(sorted(op['responses']))}</p>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>LookSync API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:1em}</style>"
        f"</head><body><h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. Errors: "
        "<code>{\"error\": {\"code\", \"message\"}}</code>. API key header: <code>X-API-Key</code>.</p>"
        + "".join(rows)
        + "</body></html>"
    )
    return Response(page, mimetype="text/html")
