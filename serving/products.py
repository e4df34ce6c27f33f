"""GET /v1/products/<id> and GET /v1/products/<id>/similar (product-to-product, same filters)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from looksync.search.engine import SearchRequest
from serving.context import engine
from serving.inputs import optional_str, parse_filters, parse_k, parse_list, query_args_params

bp = Blueprint("products", __name__, url_prefix="/v1/products")


@bp.get("/<product_id>")
def product(product_id: str):
    return jsonify(engine().product(product_id))


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
    return jsonify(eng.similar(product_id, similar_request))
