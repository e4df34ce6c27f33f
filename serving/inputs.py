"""Request parsing shared by the blueprints: the image (multipart upload, base64 or URL, all checked
by the same guards as ingestion), JSON parameters, filters and k. Everything bad is an ApiError 4xx."""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import request

from looksync.catalog.images import FetchPolicy, check_image_bytes, fetch_image
from looksync.catalog.schema import image_digest
from looksync.index import SearchFilters
from serving.errors import ApiError

if TYPE_CHECKING:
    from PIL.Image import Image

    from looksync.settings import Settings

FILTER_FIELDS = ("brands_include", "brands_exclude", "price_min", "price_max", "sizes", "in_stock")
_LIST_FILTERS = {"brands_include", "brands_exclude", "sizes"}


@dataclass
class ImageInput:
    image: Image
    sha256: str
    source: str  # "upload", "base64" or the URL


def request_body(image_field_required: bool) -> tuple[dict[str, Any], bytes | None, str | None]:
    """(parameters, image bytes or None, image URL or None) from multipart or JSON."""
    if request.mimetype == "multipart/form-data":
        try:
            params = json.loads(request.form["params"]) if "params" in request.form else {}
        except json.JSONDecodeError as exc:
            raise ApiError(400, "invalid_json", f"'params' form field is not JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise ApiError(400, "invalid_json", "'params' form field must be a JSON object")
        for name in ("text", "image_url"):
            if name in request.form:
                params.setdefault(name, request.form[name])
        upload = request.files.get("image")
        data = upload.read() if upload is not None else None
        url = params.pop("image_url", None)
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "send multipart/form-data with an 'image' file, or a JSON object")
        params = dict(body)
        data = None
        if "image_base64" in params:
            try:
                data = base64.b64decode(params.pop("image_base64"), validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise ApiError(400, "invalid_image", f"image_base64 is not valid base64: {exc}") from exc
        url = params.pop("image_url", None)
    if data is not None and url is not None:
        raise ApiError(400, "invalid_request", "give one image: an upload/base64 or an image_url, not both")
    if url is not None and not isinstance(url, str):
        raise ApiError(400, "invalid_request", "image_url must be a string")
    if image_field_required and data is None and url is None:
        raise ApiError(
            400, "missing_image", "send an 'image' file (multipart), 'image_base64' or 'image_url' (JSON)"
        )
    return params, data, url


def load_image(data: bytes | None, url: str | None, settings: Settings) -> ImageInput | None:
    """Check and decode the image: byte and pixel caps before decoding (bombs never reach the decoder)."""
    from PIL import Image

    from looksync.catalog.pixels import to_rgb

    if data is None and url is None:
        return None
    policy = FetchPolicy.from_settings(settings)
    if url is not None:
        fetched = fetch_image(url, policy)
        data, source = fetched.data, fetched.url
    else:
        source = "upload"
        check_image_bytes(data, policy, "uploaded image")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        image = to_rgb(image)  # as ingestion embeds products: 16-bit, alpha on white, CMYK, EXIF, first frame
    except Exception as exc:  # truncated or corrupt past the header check
        raise ApiError(400, "image_not_image", f"the image cannot be decoded: {type(exc).__name__}: {exc}") from exc
    return ImageInput(image=image, sha256=image_digest(data), source=source)


def parse_filters(raw: Any) -> SearchFilters:
    if raw is None:
        return SearchFilters()
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_request", "filters must be an object")
    unknown = set(raw) - set(FILTER_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown filter(s) {sorted(unknown)}; known: {list(FILTER_FIELDS)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _LIST_FILTERS:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(400, "invalid_request", f"filter {name} must be a list of strings")
        elif name in ("price_min", "price_max"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ApiError(400, "invalid_request", f"filter {name} must be a number, got {value!r}") from None
        elif name == "in_stock":
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                value = value.lower() in ("true", "1")
            if not isinstance(value, bool):
                raise ApiError(400, "invalid_request", f"filter in_stock must be true or false, got {value!r}")
        values[name] = value
    return SearchFilters(**values)


def parse_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [x.strip() for x in value.split(",") if x.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "invalid_request", f"{name} must be a list of strings")
    return value


def parse_k(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_request", f"k must be an integer, got {value!r}") from None


def optional_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"{name} must be a string")
    return value or None


def query_args_params() -> dict[str, Any]:
    """GET endpoints: the same parameters from the query string (filters as top-level names)."""
    args = request.args
    filters = {name: args[name] for name in FILTER_FIELDS if name in args}
    params: dict[str, Any] = {name: args[name] for name in ("market", "gender", "k", "layers", "categories") if name in args}
    params["filters"] = filters
    return params
