"""Fixtures for the pipeline tests: a sample catalog served on loopback, a tiny CLIP checkpoint, a
counting encoder, a real Redis database (7) under a per-test key prefix, a fresh data directory."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL

REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from embeddings import save_random_checkpoint

    return save_random_checkpoint(TINY_MODEL, tmp_path_factory.mktemp("models") / "tiny.pt", seed=5)


class CountingEncoder:
    """The real encoder, counting the images it actually embeds (what idempotency tests assert on)."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.images_embedded = 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_images_safe(self, items, batch_size=None):
        self.images_embedded += len(items)
        return self._encoder.encode_images_safe(items, batch_size)

    def encode_prepared(self, pixels):
        self.images_embedded += len(pixels)
        return self._encoder.encode_prepared(pixels)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint):
    from embeddings import load_encoder

    return load_encoder(TINY_MODEL, str(tiny_checkpoint), device="cpu")


@pytest.fixture
def counting_encoder(tiny_encoder) -> CountingEncoder:
    return CountingEncoder(tiny_encoder)


@dataclass
class ServedSample:
    root: Path
    manifest: object
    url: str
    faults: list[dict]


def _serve(tmp_path_factory, name: str, size: int, fault_rate: float, cross_listing_rate: float = 0.0):
    import json

    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample

    root = tmp_path_factory.mktemp(name)
    server = serve_sample(root, port=0)
    manifest = generate_sample(root, size=size, seed=21, fault_rate=fault_rate, image_base_url=server.url, n_looks=0,
                               cross_listing_rate=cross_listing_rate)  # fmt: skip
    faults = [json.loads(line) for line in Path(manifest.faults_path).read_text().splitlines() if line.strip()]
    return server, ServedSample(root, manifest, server.url, faults)


@pytest.fixture(scope="session")
def faulty_sample(tmp_path_factory):
    server, sample = _serve(tmp_path_factory, "faulty", size=45, fault_rate=0.25)
    yield sample
    server.close()


@pytest.fixture(scope="session")
def clean_sample(tmp_path_factory):
    server, sample = _serve(tmp_path_factory, "clean", size=45, fault_rate=0.0)
    yield sample
    server.close()


@pytest.fixture(scope="session")
def crossed_sample(tmp_path_factory):
    """Some items also listed by other vendors (groups.json says which)."""
    server, sample = _serve(tmp_path_factory, "crossed", size=60, fault_rate=0.0, cross_listing_rate=0.3)
    yield sample
    server.close()


@pytest.fixture
def settings(tmp_path, tiny_checkpoint):
    from looksync.settings import load_settings

    return load_settings(
        data_dir=tmp_path / "data",
        clip_model=TINY_MODEL,
        clip_weights=str(tiny_checkpoint),
        device="cpu",
        fetch_allow_private=True,
        attributes_redis_url=REDIS_URL,
        attributes_prefix=f"looksync-test:{uuid.uuid4().hex[:8]}:attr",
        queue_redis_url=REDIS_URL,
        queue_stream=f"looksync-test:{uuid.uuid4().hex[:8]}:updates",
        index_backend="embedded",
    )


@pytest.fixture
def mirror(settings):
    from looksync.catalog.attribute_mirror import AttributeMirror

    m = AttributeMirror.from_settings(settings)
    yield m
    m.clear()


def reprice_two(row: dict) -> dict:
    """A ``rewrite_csv`` change: DT100001 and DT100004 get a new price and stock (metadata only)."""
    if row["Item Code"] in ("DT100001", "DT100004"):
        row["Selling Price (INR)"] = "9,999.00"
        row["Stock Qty"] = "0" if row["Stock Qty"] != "0" else "5"
    return row


def rewrite_csv(src: Path, dst: Path, change) -> None:
    """Copy a CSV feed, passing each row (a dict) through ``change``; a row it returns None for is dropped."""
    with src.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = [r for r in (change(dict(row)) for row in reader) if r is not None]
    with dst.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
