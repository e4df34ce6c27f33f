"""POST /v1/looks/search: a look image (multipart, JSON base64 or image URL) -> per-layer products."""

from __future__ import annotations

from flask import Blueprint, jsonify

from looksync.search.engine import LookSearchRequest, OutfitRequest
from serving.context import engine
from serving.inputs import load_image, optional_str, parse_filters, parse_k, parse_list, request_body
from serving.thumbnails import with_thumbnail_urls

bp = Blueprint("looks", __name__, url_prefix="/v1/looks")


@bp.post("/search")
def search_look():
    eng = engine()
    params, data, url = request_body(image_field_required=True)
    look_request = LookSearchRequest(
        market=optional_str(params, "market"),
        gender=optional_str(params, "gender"),
        layers=parse_list(params.get("layers"), "layers"),
        k=parse_k(params.get("k"), eng.settings.default_k),
        filters=parse_filters(params.get("filters")),
        rerank=optional_str(params, "rerank") or eng.settings.rerank_mode,
        outfit=OutfitRequest.parse(params.get("outfit")),
    )
    look_request.validate(eng.taxonomy)  # before fetching or decoding anything
    look = load_image(data, url, eng.settings)
    return jsonify(with_thumbnail_urls(eng.search_look(look.image, look_request, look_sha256=look.sha256)))
