"""Product thumbnails: a small JPEG of each product image, made at ingest from the bytes the fetch stage
already holds, kept in the object store beside the embeddings and served by the service, so result
cards show a picture whatever the vendor's image host does later.

Content-addressed: a thumbnail is keyed by the image hash (sha256 of the source image's bytes, the key
of the embeddings store too), so an image named by many products, vendors or runs is stored once, and
an image already stored is never made or written again. Objects live in the configured store's
``thumbnails`` area (``s3://<bucket>/<prefix>/thumbnails`` when ``LOOKSYNC_S3_BUCKET`` is set, else
``<data_dir>/thumbnails``) at ``<hash[:2]>/<hash>.jpg``. Nothing deletes them: like vectors, one may be
shared by products that are still live.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from looksync.catalog.object_store import ObjectStore, default_store
from looksync.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image

THUMBNAIL_MAX_SIDE = 256  # px, longest side; smaller images are kept at their size
THUMBNAIL_QUALITY = 85
THUMBNAIL_CONTENT_TYPE = "image/jpeg"
_IMAGE_HASH = re.compile(r"[0-9a-f]{64}")


class ThumbnailError(ValueError):
    """Bytes that cannot become a thumbnail (not a decodable image); the message says why."""


def is_image_hash(value: object) -> bool:
    """64 lowercase hex digits: the form of ``looksync.catalog.schema.image_digest``."""
    return isinstance(value, str) and _IMAGE_HASH.fullmatch(value) is not None


def make_thumbnail(data: bytes, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """JPEG bytes of the image with its EXIF orientation applied, transparency flattened onto white and
    its longest side at most ``max_side`` (never enlarged). Only the colour profile of an RGB source is
    kept; other metadata (EXIF, GPS) is dropped. Raises ``ThumbnailError`` for bytes that do not decode.

    The caller bounds the input: ingestion only hands over images that passed the fetch guards' byte and
    pixel caps (``looksync.catalog.images``)."""
    from PIL import Image, UnidentifiedImageError

    from looksync.catalog.pixels import to_rgb

    try:
        with Image.open(io.BytesIO(data)) as source:
            source.draft("RGB", (max_side, max_side))  # JPEG: decode at the smallest scale still >= max_side
            icc_profile = source.info.get("icc_profile") if source.mode in ("RGB", "RGBA") else None
            image = to_rgb(source)  # the one decode helper: EXIF, alpha on white, 16-bit, CMYK, first frame
            return _encode(image, icc_profile, max_side)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"not a decodable image: {exc}") from exc


def thumbnail_of_decoded(rgb: Image, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """``make_thumbnail`` of an image already decoded to RGB by ``looksync.catalog.images.decode_visible``
    (which keeps an RGB source's colour profile in ``info``), so ingestion decodes each image once; the
    caller's image is not changed."""
    from PIL import Image

    try:
        return _encode(rgb, rgb.info.get("icc_profile"), max_side)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot make a thumbnail: {exc}") from exc


def _encode(image: Image, icc_profile: bytes | None, max_side: int) -> bytes:
    from PIL import Image as PILImage

    if max(image.size) > max_side:
        image = image.copy()  # thumbnail() resizes in place: never the caller's image
        image.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True, icc_profile=icc_profile)
    return out.getvalue()


@dataclass
class ThumbnailRun:
    """What one ``ThumbnailStore.ensure_many`` call did: thumbnails written, already stored, failed."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # image hash -> why

    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "existing": len(self.existing), "failed": len(self.failed)}


class ThumbnailStore:
    """Thumbnails keyed by image hash in an object store (see the module docstring)."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects

    @classmethod
    def from_settings(cls, settings: Settings) -> ThumbnailStore:
        return cls(default_store(settings, "thumbnails"))

    @property
    def uri(self) -> str:
        return self.objects.uri

    @staticmethod
    def key(image_hash: str) -> str:
        if not is_image_hash(image_hash):
            raise ValueError(f"image hash must be 64 lowercase hex digits, got {image_hash!r}")
        return f"{image_hash[:2]}/{image_hash}.jpg"

    def exists(self, image_hash: str) -> bool:
        return self.objects.exists(self.key(image_hash))

    def get(self, image_hash: str) -> bytes | None:
        """The thumbnail's bytes, None when there is none; ``StorageError`` when the store cannot be read."""
        key = self.key(image_hash)
        if not self.objects.exists(key):
            return None
        return self.objects.get_bytes(key)

    def ensure(self, image_hash: str, image: bytes) -> bool:
        """Make and store the thumbnail of ``image`` (whose hash is ``image_hash``) unless it is stored
        already; True when written. ``ThumbnailError`` / ``StorageError`` when it cannot be."""
        key = self.key(image_hash)
        if self.objects.exists(key):
            return False
        self.objects.put_bytes(key, make_thumbnail(image))
        return True

    def ensure_decoded(self, image_hash: str, rgb: Image) -> bool:
        """``ensure`` from the image already decoded (``thumbnail_of_decoded``); True when written."""
        key = self.key(image_hash)
        if self.objects.exists(key):
            return False
        self.objects.put_bytes(key, thumbnail_of_decoded(rgb))
        return True

    def ensure_many(self, images: Mapping[str, bytes], concurrency: int = 4) -> ThumbnailRun:
        """``ensure`` for each (image hash -> image bytes), ``concurrency`` at a time (decoding and
        resizing release the GIL; S3 writes are I/O). A failure is recorded with its reason, never raised:
        a product keeps its place in the catalog without a thumbnail."""

        def one(item: tuple[str, bytes]) -> tuple[str, bool | str]:
            image_hash, image = item
            try:
                return image_hash, self.ensure(image_hash, image)
            except Exception as exc:  # a thumbnail is optional: any failure (undecodable image, store
                # down, a botocore error that S3Store does not wrap) is recorded, never raised
                return image_hash, f"{exc.__class__.__name__}: {exc}"

        run = ThumbnailRun()
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for image_hash, outcome in pool.map(one, sorted(images.items())):
                if outcome is True:
                    run.written.append(image_hash)
                elif outcome is False:
                    run.existing.append(image_hash)
                else:
                    run.failed[image_hash] = outcome
        return run
