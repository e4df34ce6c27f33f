"""POST /v1/search: a text, an image (upload, base64 or URL), or an image with a text modifier."""

from __future__ import annotations

from flask import Blueprint, jsonify

from looksync.search.engine import SearchRequest
from serving.context import engine
from serving.inputs import load_image, optional_str, parse_filters, parse_k, parse_list, request_body
from serving.thumbnails import with_thumbnail_urls

bp = Blueprint("search", __name__, url_prefix="/v1")


@bp.post("/search")
def search():
    eng = engine()
    params, data, url = request_body(image_field_required=False)
    search_request = SearchRequest(
        text=optional_str(params, "text"),
        market=optional_str(params, "market"),
        gender=optional_str(params, "gender"),
        layers=parse_list(params.get("layers"), "layers"),
        categories=parse_list(params.get("categories"), "categories"),
        k=parse_k(params.get("k"), eng.settings.default_k),
        filters=parse_filters(params.get("filters")),
    )
    search_request.validate(eng.taxonomy, has_image=data is not None or url is not None)
    image = load_image(data, url, eng.settings)
    return jsonify(with_thumbnail_urls(eng.search(search_request, image.image if image else None)))
