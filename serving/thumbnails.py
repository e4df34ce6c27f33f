"""Product thumbnails over HTTP: GET /v1/thumbnails/<image_hash> (the bytes the ingest stored, see
``looksync.catalog.thumbnails``), the response helper GET /v1/products/<id>/thumbnail shares, and the
``thumbnail_url`` that product JSON carries so the pages' cards point at this service, not the vendor.

The route is open (``serving.app.OPEN_PREFIXES``): an <img> tag cannot send X-API-Key, and a thumbnail
is a small copy of a product image its vendor already publishes, addressed by the sha256 of that image,
so one is found through an API answer. Content-addressed, so cached as immutable.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request, url_for

from looksync.catalog.object_store import StorageError
from looksync.catalog.thumbnails import THUMBNAIL_CONTENT_TYPE, is_image_hash
from serving.context import thumbnails
from serving.errors import ApiError

log = logging.getLogger(__name__)

bp = Blueprint("thumbnails", __name__, url_prefix="/v1/thumbnails")

IMMUTABLE = "public, max-age=31536000, immutable"


@bp.get("/<image_hash>")
def thumbnail(image_hash: str):
    if not is_image_hash(image_hash):
        raise ApiError(400, "invalid_request", f"image hash must be 64 lowercase hex digits, got {image_hash[:80]!r}")
    return thumbnail_response(image_hash, IMMUTABLE)


def thumbnail_response(image_hash: str | None, cache_control: str) -> Response:
    """The stored thumbnail of ``image_hash`` as image/jpeg with the hash as its ETag (a matching
    If-None-Match gets 304); 404 JSON when there is none, 503 when the store cannot be read."""
    try:
        data = thumbnails().get(image_hash) if is_image_hash(image_hash) else None
    except StorageError as exc:
        log.error("thumbnail store error: %s", exc)
        raise ApiError(503, "thumbnails_unavailable", "the thumbnail store cannot be read; see the service log") from exc
    if data is None:
        # a later ingest that fetches the image makes it; the cards fall back to the vendor's image_url
        raise ApiError(404, "thumbnail_not_found", f"no thumbnail stored for image {image_hash or '(none)'}")
    response = Response(data, mimetype=THUMBNAIL_CONTENT_TYPE)
    response.set_etag(image_hash)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response.make_conditional(request)


def thumbnail_url(image_hash: str | None) -> str | None:
    """This service's relative URL of an image's thumbnail; None without a (well-formed) image hash.
    Given whenever the hash is known, without asking the store: a missing thumbnail answers 404 and the
    pages show ``image_url`` instead."""
    return url_for("thumbnails.thumbnail", image_hash=image_hash) if is_image_hash(image_hash) else None


def with_thumbnail_urls(body: dict[str, Any]) -> dict[str, Any]:
    """Add ``thumbnail_url`` to every product of a response: ``products[]``, ``layers[].products[]``
    (searches, similar), ``outfit.items[]`` (look search) or ``product`` (one product). Returns ``body``."""
    products = [
        *body.get("products", []),
        *(p for layer in body.get("layers", []) for p in layer.get("products", [])),
        *(body.get("outfit") or {}).get("items", []),
    ]
    if isinstance(body.get("product"), dict):
        products.append(body["product"])
    if not products:
        return body
    # the route built once: a look answer has ~50 products, and url_for costs as much as the rest of a cache hit
    prefix = thumbnail_url(_ANY_HASH)[: -len(_ANY_HASH)]
    for product in products:
        image_hash = product.get("image_hash")
        product["thumbnail_url"] = prefix + image_hash if is_image_hash(image_hash) else None
    return body


_ANY_HASH = "0" * 64
