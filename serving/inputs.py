"""Request reading shared by the blueprints: the parameters (a typed model from ``serving.models``, through
``serving.validation``) and the image (multipart upload, base64 or URL, all checked by the same guards
as ingestion). Everything bad is a JSON 4xx."""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, TypeVar

from flask import Request, request
from pydantic import BaseModel

from looksync.catalog.images import FetchPolicy, check_image_bytes, fetch_image
from looksync.catalog.schema import image_digest
from serving.errors import ApiError
from serving.models import FORM_FIELDS
from serving.validation import (
    RequestProblem,
    clean_text,
    json_body,
    parse_json,
    query_args,
    require_media_type,
    validate,
)

if TYPE_CHECKING:
    from PIL.Image import Image

    from looksync.settings import Settings

M = TypeVar("M", bound=BaseModel)


class ImageInput:
    """A checked image: its bytes' sha256 now, the decoded pixels on first use of ``image`` (a look
    answered from the response cache, keyed by that sha256, is never decoded)."""

    def __init__(self, data: bytes, sha256: str, source: str):
        self.data = data
        self.sha256 = sha256
        self.source = source  # "upload", "base64" or the URL
        self._image: Image | None = None

    @property
    def image(self) -> Image:
        """The decoded RGB image; ApiError 400 ``image_not_image`` when it cannot be decoded."""
        if self._image is None:
            self._image = decode_image(self.data)
        return self._image


def request_body(model: type[M], image_field_required: bool, req: Request | None = None) -> tuple[M, bytes | None, str | None]:
    """(parameters, image bytes or None, image URL or None) from the multipart/form-data or JSON body of
    ``req`` (default: Flask's current request); any other Content-Type is a 415."""
    req = request if req is None else req
    if require_media_type("application/json", "multipart/form-data", req=req) == "multipart/form-data":
        form = req.form  # werkzeug's form parser: byte caps of the request and of each field (413)
        raw = form.get("params")
        params = parse_json(raw, where="params") if raw is not None else {}
        if not isinstance(params, dict):
            raise RequestProblem(400, "invalid_json", "'params' form field must be a JSON object", field="params")
        for name in FORM_FIELDS.get(model, ()):
            if name in form:
                params.setdefault(name, clean_text(form[name], name))
        if "image_base64" in params:
            raise RequestProblem(400, "invalid_request", "send the image as the 'image' file in a multipart form",
                                 field="image_base64")  # fmt: skip
        parsed = validate(model, params)
        upload = req.files.get("image")
        data = upload.read() if upload is not None else None
    else:
        body = json_body(req)
        if not isinstance(body, dict):
            raise RequestProblem(400, "invalid_json", "send multipart/form-data with an 'image' file, or a JSON object")
        parsed = validate(model, body)
        data = None
        if parsed.image_base64 is not None:
            try:
                data = base64.b64decode(parsed.image_base64, validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise ApiError(400, "invalid_image", f"image_base64 is not valid base64: {exc}", field="image_base64") from exc
    url = parsed.image_url
    if data is not None and url is not None:
        raise ApiError(400, "invalid_request", "give one image: an upload/base64 or an image_url, not both", field="image_url")
    if image_field_required and data is None and url is None:
        raise ApiError(
            400, "missing_image", "send an 'image' file (multipart), 'image_base64' or 'image_url' (JSON)", field="image"
        )
    return parsed, data, url


def load_image(data: bytes | None, url: str | None, settings: Settings) -> ImageInput | None:
    """Fetch (an URL) and check the image: byte and pixel caps before decoding (bombs never reach the
    decoder); the pixels are decoded when ``ImageInput.image`` is first read."""
    if data is None and url is None:
        return None
    policy = FetchPolicy.from_settings(settings)
    if url is not None:
        fetched = fetch_image(url, policy)
        data, source = fetched.data, fetched.url
    else:
        source = "upload"
        check_image_bytes(data, policy, "uploaded image")
    return ImageInput(data=data, sha256=image_digest(data), source=source)


def decode_image(data: bytes) -> Image:
    from PIL import Image

    from looksync.catalog.pixels import to_rgb

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return to_rgb(image)  # as ingestion embeds products: 16-bit, alpha on white, CMYK, EXIF, first frame
    except Exception as exc:  # truncated or corrupt past the header check
        raise ApiError(400, "image_not_image", f"the image cannot be decoded: {type(exc).__name__}: {exc}") from exc


def query(model: type[M]) -> M:
    """GET endpoints: the query string as ``model`` (lists as ``a,b``)."""
    return validate(model, query_args())
