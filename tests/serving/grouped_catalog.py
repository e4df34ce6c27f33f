"""A small catalog where some items are sold by several vendors: sample with cross-listings -> ingest ->
grouping -> index build (the ordinary pipeline functions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class GroupedCatalog:
    settings: object
    encoder: object
    manifest: object


def build_grouped_catalog(root: Path, size: int = 45, rate: float = 0.35) -> GroupedCatalog:
    from embeddings import load_encoder, save_random_checkpoint
    from looksync.index.factory import open_index
    from looksync.pipelines.dedup import group_catalog
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.reindex import build_index
    from looksync.sample import generate_sample, serve_sample
    from looksync.settings import load_settings
    from tests.conftest import TINY_MODEL

    checkpoint = save_random_checkpoint(TINY_MODEL, root / "tiny.pt", seed=3)
    encoder = load_encoder(TINY_MODEL, str(checkpoint), device="cpu")
    settings = load_settings(data_dir=root / "data", clip_model=TINY_MODEL, clip_weights=str(checkpoint), device="cpu",
                             fetch_allow_private=True, index_backend="embedded", look_cache_ttl_s=0)  # fmt: skip
    with serve_sample(root / "sample") as server:
        manifest = generate_sample(root / "sample", size=size, seed=5, n_looks=1, image_base_url=server.url,
                                   cross_listing_rate=rate)  # fmt: skip
        for vendor, feed in manifest.feeds.items():
            ingest_feed(settings, vendor, feed, encoder)
    counts = group_catalog(settings, encoder.model_id)
    build_index(settings, open_index(settings), encoder.model_id)
    assert counts["groups"] >= 8, counts
    return GroupedCatalog(settings, encoder, manifest)
