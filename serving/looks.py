"""POST /v1/looks/search: a look image (multipart or JSON base64) -> per-layer products."""

from __future__ import annotations

import base64
import binascii
import io
import json

from flask import Blueprint, jsonify, request

from looksync.images import FetchPolicy, check_image_bytes
from looksync.index import SearchFilters
from looksync.search import LookSearchRequest
from serving.app import engine
from serving.errors import ApiError

bp = Blueprint("looks", __name__, url_prefix="/v1/looks")

_FILTER_FIELDS = {"brands_include", "brands_exclude", "price_min", "price_max", "sizes", "in_stock"}


def _params_and_image() -> tuple[dict, bytes]:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ApiError(400, "missing_image", "multipart request needs an 'image' file field")
        params = json.loads(request.form["params"]) if "params" in request.form else {}
        return params, upload.read()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "send multipart/form-data with an 'image' file, or a JSON object")
    if "image_base64" not in body:
        raise ApiError(400, "missing_image", "JSON body needs 'image_base64'")
    try:
        data = base64.b64decode(body.pop("image_base64"), validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ApiError(400, "invalid_image", f"image_base64 is not valid base64: {exc}") from exc
    return body, data


def _parse_request(params: dict) -> LookSearchRequest:
    filters = params.get("filters") or {}
    unknown = set(filters) - _FILTER_FIELDS
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown filter(s) {sorted(unknown)}; known: {sorted(_FILTER_FIELDS)}")
    layers = params.get("layers")
    if isinstance(layers, str):
        layers = [x.strip() for x in layers.split(",") if x.strip()]
    try:
        return LookSearchRequest(
            market=params.get("market"),
            gender=params.get("gender"),
            layers=layers,
            k=int(params.get("k", engine().settings.default_k)),
            filters=SearchFilters(**filters),
        )
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc


@bp.post("/search")
def search_look():
    from PIL import Image

    params, data = _params_and_image()
    look_request = _parse_request(params)
    check_image_bytes(data, FetchPolicy.from_settings(engine().settings), "uploaded image")
    look = Image.open(io.BytesIO(data))
    return jsonify(engine().search_look(look, look_request))
