"""The OpenAPI 3.1 document (/openapi.json) and a self-contained docs page (/docs) rendered from it."""

from __future__ import annotations

import html
import json

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_FILTERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "brands_include": {"type": "array", "items": {"type": "string"}},
        "brands_exclude": {"type": "array", "items": {"type": "string"}},
        "price_min": {"type": "number", "description": "in the market's currency"},
        "price_max": {"type": "number"},
        "sizes": {"type": "array", "items": {"type": "string"}, "description": "a product matches if it has any"},
        "in_stock": {"type": "boolean"},
    },
}
_COMMON = {
    "market": {"type": "string", "enum": ["IN", "US", "JP"]},
    "gender": {"type": "string", "enum": ["women", "men", "unisex"]},
    "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
    "filters": {"$ref": "#/components/schemas/Filters"},
}
_PRODUCT = {
    "type": "object",
    "properties": {
        name: {"type": t}
        for name, t in {
            "product_id": "string", "score": "number", "rerank_score": "number", "title": "string", "brand": "string",
            "category": "string", "layer": "string", "gender": "string", "market": "string", "price": "number",
            "currency": "string", "in_stock": "boolean", "image_url": "string", "product_url": "string",
            "pattern": "string", "image_hash": "string",
        }.items()
    }
    | {
        "colours": {"type": "array", "items": {"type": "string"}, "description": "taxonomy colours, main first"},
        "sizes": {"type": "array", "items": {"type": "string"}},
        "thumbnail_url": {
            "type": ["string", "null"],
            "description": "this service's URL of the product image's thumbnail (/v1/thumbnails/{image_hash}); "
                           "null without an image hash. It answers 404 when no thumbnail was stored: show image_url then",
        },
    },
}
_THUMBNAIL = {
    "200": {"description": "the thumbnail (longest side at most 256 px); ETag = the image hash",
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
    "304": {"description": "not modified (If-None-Match matched the ETag)"},
}
_SCORE = {"type": ["integer", "null"], "minimum": 1, "maximum": 5}
_JUDGMENTS = {
    "type": "object",
    "description": "shared fields once; a rating may override them. One bad rating refuses the whole submission.",
    "required": ["judge_id", "model_id", "ratings"],
    "properties": {
        "judge_id": {"type": "string", "maxLength": 128},
        "look_id": {"type": "string", "maxLength": 200},
        "look_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "model_id": {"type": "string", "maxLength": 200},
        "index_version": {"type": "string", "maxLength": 200},
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
_DEGRADED = {"type": "array", "items": {"type": "string"}, "description": "why the answer is less than the best path"}
_TIMINGS = {"type": "object", "additionalProperties": {"type": "number"}, "description": "per-stage milliseconds"}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def _image_body(extra: dict, required_image: bool) -> dict:
    json_schema = {
        "type": "object",
        "properties": {
            "image_base64": {"type": "string", "format": "byte"},
            "image_url": {"type": "string", "format": "uri", "description": "fetched with the ingestion guards"},
            **_COMMON,
            **extra,
        },
    }
    multipart = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "params": {"type": "string", "description": "the JSON parameters as a string"},
        },
        **({"required": ["image"]} if required_image else {}),
    }
    return {
        "required": True,
        "content": {"application/json": {"schema": json_schema}, "multipart/form-data": {"schema": multipart}},
    }


def _query_params() -> list[dict]:
    params = [
        ("market", "string"), ("gender", "string"), ("k", "integer"), ("layers", "string"), ("categories", "string"),
        ("brands_include", "string"), ("brands_exclude", "string"), ("price_min", "number"),
        ("price_max", "number"), ("sizes", "string"), ("in_stock", "boolean"),
    ]
    return [{"name": n, "in": "query", "required": False, "schema": {"type": t}} for n, t in params]


def openapi_document() -> dict:
    look_layer = {
        "type": "object",
        "properties": {
            "layer": {"type": "string"},
            "query": {"type": "string"},
            "query_source": {"type": "string", "enum": ["llm", "local"]},
            "region": {"type": ["array", "null"], "items": {"type": "integer"}},
            "gender_filter": {"type": "string"},
            "products": {"type": "array", "items": _PRODUCT},
        },
    }
    look_response = {
        "type": "object",
        "properties": {
            "index_version": {"type": "string"},
            "model_id": {"type": "string"},
            "layers": {"type": "array", "items": look_layer},
            "region_source": {
                "type": ["string", "null"], "enum": ["layout", "pose", "person_box", None],
                "description": "what placed the layer regions (null: CLIP box search or LLM queries)",
            },
            "not_in_look": {
                "type": "array",
                "description": "layers the region finder found out of frame or not visible: no query was made",
                "items": {"type": "object", "properties": {"layer": {"type": "string"}, "reason": {"type": "string"}}},
            },
            "rerank": {"type": "string", "enum": ["llm", "local", "off"]},
            "outfit": {
                "type": "object",
                "description": "present when the request asked for an outfit: one product per layer within the budget",
                "properties": {
                    "budget": {"type": "number"},
                    "currency": {"type": "string"},
                    "within_budget": {"type": "boolean", "description": "false: nothing fits, items is the cheapest outfit"},
                    "total": {"type": "number"},
                    "score": {"type": "number", "description": "summed match score of the items"},
                    "items": {"type": "array", "items": _PRODUCT},
                    "missing_layers": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"layer": {"type": "string"}, "reason": {"type": "string"}}},
                    },
                    "note": {"type": ["string", "null"]},
                },
            },
            "cache": {"type": "string", "enum": ["hit", "miss", "unavailable", "off"]},
            "timings_ms": _TIMINGS,
            "degraded": _DEGRADED,
        },
    }
    list_response = {
        "type": "object",
        "properties": {
            "index_version": {"type": "string"},
            "model_id": {"type": "string"},
            "products": {"type": "array", "items": _PRODUCT},
            "timings_ms": _TIMINGS,
            "degraded": _DEGRADED,
        },
    }
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
                "Filters": _FILTERS,
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
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
                    "requestBody": _image_body(
                        {
                            "layers": {"type": "array", "items": {"type": "string"}},
                            "rerank": {"type": "string", "enum": ["auto", "llm", "local", "off"]},
                            "outfit": {
                                "type": "object",
                                "description": "assemble one in-stock product per layer whose total is within the budget (needs market)",
                                "properties": {
                                    "budget": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
                                    "currency": {"type": "string", "description": "the market's currency"},
                                },
                                "required": ["budget", "currency"],
                                "additionalProperties": False,
                            },
                        },
                        required_image=True,
                    ),
                    "responses": {**_json(look_response), **_errors(400, 401, 413, 503)},
                }
            },
            "/v1/search": {
                "post": {
                    "summary": "Text, image, or image + text modifier search",
                    "requestBody": _image_body(
                        {
                            "text": {"type": "string", "maxLength": 500},
                            "layers": {"type": "array", "items": {"type": "string"}},
                            "categories": {"type": "array", "items": {"type": "string"}},
                        },
                        required_image=False,
                    ),
                    "responses": {**_json(list_response), **_errors(400, 401, 413, 503)},
                }
            },
            "/v1/products/{product_id}": {
                "get": {
                    "summary": "One product of the live index",
                    "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {**_json({"type": "object"}), **_errors(401, 404, 503)},
                }
            },
            "/v1/products/{product_id}/similar": {
                "get": {
                    "summary": "Products similar to one product (same layer unless `layers` says otherwise)",
                    "parameters": [
                        {"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        *_query_params(),
                    ],
                    "responses": {**_json(list_response), **_errors(400, 401, 404, 501, 503)},
                }
            },
            "/v1/products/{product_id}/thumbnail": {
                "get": {
                    "summary": "The thumbnail of a product's current image (Cache-Control: no-cache; revalidate by ETag)",
                    "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}}],
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
            "/v1/judgments": {
                "post": {
                    "summary": "Store a judge's 1-5 ratings of returned products (all or none; the judging tool at /judge)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _JUDGMENTS}}},
                    "responses": {
                        "201": {"description": "stored", "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"ids": {"type": "array", "items": {"type": "integer"}}, "count": {"type": "integer"}},
                        }}}},
                        **_errors(400, 401, 503),
                    },
                }
            },
            "/v1/judgments/report": {
                "get": {
                    "summary": "Mean opinion score per criterion and model with 95% intervals, and inter-judge agreement",
                    "parameters": [{"name": "model_id", "in": "query", "required": False, "schema": {"type": "string"}}],
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
