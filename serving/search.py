"""POST /v1/search: a text, an image (upload, base64 or URL), or an image with a text modifier."""

from __future__ import annotations

from flask import Blueprint, jsonify

from serving.context import engine
from serving.inputs import load_image, request_body
from serving.models import SearchParams
from serving.thumbnails import with_thumbnail_urls

bp = Blueprint("search", __name__, url_prefix="/v1")


@bp.post("/search")
def search():
    eng = engine()
    params, data, url = request_body(SearchParams, image_field_required=False)
    search_request = params.to_request(eng.settings.default_k)
    search_request.validate(eng.taxonomy, has_image=data is not None or url is not None)
    image = load_image(data, url, eng.settings)
    response = eng.search(search_request, image.image if image else None)
    return jsonify(with_thumbnail_urls(eng.apply_preferences(response, params.shopper_id)))
