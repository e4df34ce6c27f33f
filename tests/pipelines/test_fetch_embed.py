"""The overlapped fetch + embed pass: results in input order, every refusal with its reason, each
distinct image thumbnailed and embedded once, vectors equal to the staged path's, and ``ingest_feed``
leaving the same catalog, quarantine and workspace as the fetch and embed stages run one after the other."""

from __future__ import annotations

import io
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.images import FetchError, FetchPolicy
from looksync.catalog.object_store import LocalStore
from looksync.catalog.quarantine import Reason, read_quarantine
from looksync.catalog.schema import image_digest
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.catalog.thumbnails import ThumbnailStore
from looksync.pipelines.fetch_embed import fetch_and_embed, ordered_map

POLICY = FetchPolicy(allow_private=True, timeout_s=5, retries=0)


def encoded(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def two_colour(size=(96, 80), left=(200, 30, 40), right=(20, 40, 200), mode="RGB") -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(Image.new(mode, (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def rotated_jpeg() -> bytes:
    """A JPEG whose EXIF says 'rotate 90°': decoded upright by the one decode helper."""
    image = two_colour((120, 60))
    exif = image.getexif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", quality=90, exif=exif)


IMAGES = {
    "/a.png": encoded(two_colour()),
    "/same-as-a.png": encoded(two_colour()),  # other URL, same bytes: one image
    "/b.jpg": rotated_jpeg(),
    "/c.png": encoded(two_colour(mode="RGBA", left=(0, 0, 0, 0), right=(30, 160, 60, 255))),  # transparent half
    "/d.gif": encoded(two_colour(mode="RGB").convert("P"), "GIF"),
    "/blank.png": encoded(Image.new("RGB", (64, 64), (250, 250, 250))),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/page.html":
            status, kind, body = 200, "text/html", b"<html>not an image</html>"
        elif self.path in IMAGES:
            status, kind, body = 200, "image/" + self.path.rsplit(".", 1)[1].replace("jpg", "jpeg"), IMAGES[self.path]
        else:
            status, kind, body = 404, "text/plain", b"no"
        time.sleep(random.random() * 0.01)  # replies finish out of order
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- ordered_map -------------------------------------------------------------------------------------


def test_ordered_map_keeps_input_order_and_bounds_what_is_ahead():
    taken = 0
    ahead: list[int] = []

    def items():
        for i in range(200):
            ahead.append(i - taken)  # submitted and not yet taken by the consumer, this one included
            yield i

    def slow_square(i: int) -> int:
        time.sleep(random.random() * 0.002)
        return i * i

    out = []
    for result in ordered_map(slow_square, items(), workers=4, window=10):
        out.append(result)
        taken += 1
    assert out == [i * i for i in range(200)]
    assert max(ahead) <= 10


def test_ordered_map_stopped_early_runs_nothing_more():
    calls = []

    def record(i: int) -> int:
        calls.append(i)
        time.sleep(0.005)
        return i

    results = ordered_map(record, range(1000), workers=2, window=8)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    done = len(calls)
    time.sleep(0.05)
    assert len(calls) == done <= 3 + 8


def test_ordered_map_raises_what_a_call_raises():
    def fail_on_five(i: int) -> int:
        if i == 5:
            raise OSError("disk full")
        return i

    with pytest.raises(OSError, match="disk full"):
        list(ordered_map(fail_on_five, range(20), workers=3, window=4))


# -- fetch_and_embed ---------------------------------------------------------------------------------


URL_PATHS = ["/a.png", "/missing.png", "/blank.png", "/same-as-a.png", "/page.html", "/b.jpg", "/c.png", "/d.gif", "/a.png"]


def _thumbs(tmp_path: Path) -> ThumbnailStore:
    return ThumbnailStore(LocalStore(tmp_path / "thumbnails"))


def test_outcomes_in_input_order_each_image_once_vectors_as_the_staged_path(host, tiny_encoder, tmp_path):
    kept: list[str] = []
    result = fetch_and_embed([host + p for p in URL_PATHS], POLICY, tiny_encoder, _thumbs(tmp_path),
                             keep=lambda h, data: kept.append(h), concurrency=4, batch_size=2)  # fmt: skip
    reasons = [o.reason if isinstance(o, FetchError) else None for o in result.outcomes]
    assert reasons == [None, Reason.IMAGE_UNREACHABLE, Reason.IMAGE_BLANK, None, Reason.IMAGE_NOT_IMAGE,
                       None, None, None, None]  # fmt: skip
    digest = {p: image_digest(IMAGES[p]) for p in IMAGES}
    assert [o for o in result.outcomes if isinstance(o, str)] == [digest[p] for p, why in zip(URL_PATHS, reasons, strict=True) if why is None]
    distinct = {digest[p] for p in ("/a.png", "/b.jpg", "/c.png", "/d.gif")}
    assert sorted(kept) == sorted(distinct)  # each image stored once
    assert sorted(result.thumbnails.written) == sorted(distinct) and not result.thumbnails.failed
    assert sorted(result.ids) == sorted(distinct) and not result.failures
    # the vectors of one decode equal the embed stage's, which decodes the stored bytes again
    by_hash = {image_digest(data): data for data in IMAGES.values()}
    ids, expected, failures = tiny_encoder.encode_images_safe([(h, by_hash[h]) for h in result.ids])
    assert ids == result.ids and not failures
    np.testing.assert_allclose(result.vectors, expected, atol=1e-6)


def test_known_images_are_thumbnailed_but_not_embedded(host, tiny_encoder, tmp_path):
    known = {image_digest(IMAGES["/a.png"])}
    result = fetch_and_embed([host + p for p in ("/a.png", "/b.jpg")], POLICY, tiny_encoder, _thumbs(tmp_path), known=known)
    assert result.ids == [image_digest(IMAGES["/b.jpg"])] and result.vectors.shape == (1, tiny_encoder.dim)
    assert len(result.thumbnails.written) == 2
    again = fetch_and_embed([host + "/a.png"], POLICY, tiny_encoder, _thumbs(tmp_path), known=known)
    assert again.thumbnails.existing == list(known) and again.ids == []


class _BrokenStore(LocalStore):
    def put_bytes(self, key: str, data: bytes) -> str:
        raise OSError("thumbnail area read-only")


def test_a_thumbnail_that_cannot_be_stored_is_recorded_and_the_image_still_embedded(host, tiny_encoder, tmp_path):
    broken = ThumbnailStore(_BrokenStore(tmp_path / "thumbnails"))
    result = fetch_and_embed([host + p for p in ("/a.png", "/b.jpg")], POLICY, tiny_encoder, broken)
    assert len(result.ids) == 2 and result.thumbnails.written == []
    assert all("read-only" in why for why in result.thumbnails.failed.values()) and len(result.thumbnails.failed) == 2


def test_a_workspace_that_cannot_be_written_fails_the_pass(host, tiny_encoder, tmp_path):
    def keep(image_hash: str, data: bytes) -> None:
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space left"):
        fetch_and_embed([host + "/a.png"], POLICY, tiny_encoder, _thumbs(tmp_path), keep=keep)


# -- through ingest_feed ------------------------------------------------------------------------------


def test_ingest_feed_leaves_what_the_staged_stages_leave(settings, faulty_sample, tiny_encoder):
    from looksync.index.factory import open_index
    from looksync.pipelines.feed_ref import FeedRef
    from looksync.pipelines.ingest import Workspace, ingest_feed, run_dir

    staged_settings = settings.model_copy(update={"data_dir": settings.data_dir.parent / "staged"})
    for vendor, feed in faulty_sample.manifest.feeds.items():
        overlapped = ingest_feed(settings, vendor, feed, tiny_encoder, "run-o", index=open_index(settings))
        staged = ingest_feed(staged_settings, vendor, feed, tiny_encoder, "run-s", index=open_index(staged_settings),
                             overlapped=False)  # fmt: skip
        ws = Workspace(run_dir(staged_settings, "run-s") / FeedRef(vendor, str(feed)).key)
        assert overlapped.outcomes == staged.outcomes and overlapped.quarantined == staged.quarantined
        assert overlapped.embedded == staged.embedded and overlapped.thumbnails == staged.thumbnails
        assert {"fetch", "embed"} <= set(overlapped.seconds)
        assert "thumbnails" in staged.seconds and "thumbnails" not in overlapped.seconds  # fetch_stage ran, not the pass
        mine = Workspace(run_dir(settings, "run-o") / ws.path.name)
        for name in ("fetched", "embed_failures", "embedded_hashes"):
            assert mine.read_json(name) == ws.read_json(name), name
        assert sorted(p.name for p in (mine.path / "images").iterdir()) == sorted(p.name for p in (ws.path / "images").iterdir())
        records = [Counter((q["reason"], q["row_ref"]) for q in read_quarantine(Path(r.quarantine_path)))
                   for r in (overlapped, staged)]  # fmt: skip
        assert records[0] == records[1]
    assert ProductStore(settings.data_dir).count() == ProductStore(staged_settings.data_dir).count() > 0
    mine, theirs = (EmbeddingStore(s.data_dir).load(tiny_encoder.model_id) for s in (settings, staged_settings))
    assert sorted(mine) == sorted(theirs)
    np.testing.assert_allclose(np.stack([mine[h] for h in sorted(mine)]), np.stack([theirs[h] for h in sorted(theirs)]), atol=1e-6)
