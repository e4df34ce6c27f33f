"""GET /v1/products/<id>, GET /v1/products/<id>/similar (product-to-product, same filters) and
GET /v1/products/<id>/thumbnail (the thumbnail of the product's current image)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from looksync.search.engine import SearchRequest
from serving.context import engine
from serving.inputs import optional_str, parse_filters, parse_k, parse_list, query_args_params
from serving.thumbnails import thumbnail_response, with_thumbnail_urls

bp = Blueprint("products", __name__, url_prefix="/v1/products")


@bp.get("/<product_id>")
def product(product_id: str):
    return jsonify(with_thumbnail_urls(engine().product(product_id)))


@bp.get("/<product_id>/thumbnail")
def product_thumbnail(product_id: str):
    # revalidated on every use (ETag = image hash): the product's image may change at the next ingest;
    # /v1/thumbnails/<hash> is the immutable form
    return thumbnail_response(engine().product(product_id)["product"].get("image_hash"), "no-cache")


@bp.get("/<product_id>/similar")
def similar(product_id: str):
    eng = engine()
    params = query_args_params()
    similar_request = SearchRequest(
        market=optional_str(params, "market"),
        gender=optional_str(params, "gender"),
        layers=parse_list(params.get("layers"), "layers"),
        categories=parse_list(params.get("categories"), "categories"),
        k=parse_k(params.get("k"), eng.settings.default_k),
        filters=parse_filters(params["filters"]),
    )
    return jsonify(with_thumbnail_urls(eng.similar(product_id, similar_request)))
