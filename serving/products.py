"""GET /v1/products/<id>, GET /v1/products/<id>/similar (product-to-product, same filters) and
GET /v1/products/<id>/thumbnail (the thumbnail of the product's current image)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from serving.context import engine
from serving.inputs import query
from serving.models import ProductPath, SimilarQuery
from serving.thumbnails import thumbnail_response, with_thumbnail_urls
from serving.validation import validate

bp = Blueprint("products", __name__, url_prefix="/v1/products")


def _product_id(product_id: str) -> str:
    return validate(ProductPath, {"product_id": product_id}).product_id


@bp.get("/<product_id>")
def product(product_id: str):
    return jsonify(with_thumbnail_urls(engine().product(_product_id(product_id))))


@bp.get("/<product_id>/thumbnail")
def product_thumbnail(product_id: str):
    # revalidated on every use (ETag = image hash): the product's image may change at the next ingest;
    # /v1/thumbnails/<hash> is the immutable form
    return thumbnail_response(engine().product(_product_id(product_id))["product"].get("image_hash"), "no-cache")


@bp.get("/<product_id>/similar")
def similar(product_id: str):
    eng = engine()
    product_id = _product_id(product_id)
    similar_request = query(SimilarQuery).to_request(eng.settings.default_k)
    return jsonify(with_thumbnail_urls(eng.similar(product_id, similar_request)))
