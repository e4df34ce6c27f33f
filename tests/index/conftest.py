"""Fixtures for the catalog index contract: one parametrised ``index_factory`` per backend (the embedded
one twice: searching through FAISS views, and through LanceDB), and a seeded catalog of varied products.

The ``elasticsearch`` parameter runs the same contract against a real cluster when LOOKSYNC_ES_URL is
set (each test gets its own index-name prefix); otherwise it is skipped.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from looksync.catalog.schema import Product
from looksync.index.base import CatalogIndex
from tests.factories import make_product, unit_vectors

MODEL_ID = "test-clip/random-16"
DIM = 16
CATEGORIES = ("t_shirt", "jeans", "dress", "sneakers", "jacket")
MARKETS = {"IN": "INR", "US": "USD", "JP": "JPY"}
GENDERS = ("women", "men", "unisex")
BRANDS = ("Northwind", "Acme", "O'Neill", "Zenith", "Back\\slash & Co")
SIZES = ("XS", "S", "M", "L", "XL")
COLOURS = ("black", "white", "navy", "red", "beige")
PATTERNS = (None, "solid", "striped", "checked")

IndexFactory = Callable[[], CatalogIndex]

# Read at import: the autouse ``_isolated_env`` fixture clears LOOKSYNC_* before each test runs.
ES_URL = os.environ.get("LOOKSYNC_ES_URL")
ES_SNAPSHOT_REPOSITORY = os.environ.get("LOOKSYNC_ES_SNAPSHOT_REPOSITORY", "looksync-snapshots")


def catalog_product(i: int, **overrides: object) -> Product:
    """Product number ``i`` of a varied, reproducible catalog (fields drawn from a generator seeded by i)."""
    rng = random.Random(i)
    market = overrides.pop("market", rng.choice(list(MARKETS)))
    fields: dict[str, object] = {
        "vendor": rng.choice(["northwind_apparel", "acme_store"]),
        "vendor_sku": f"SKU-{i:05d}",
        "market": market,
        "currency": MARKETS[str(market)],
        "title": f"Catalog item {i}",
        "description": f"Item {i}, described",
        "brand": rng.choice(BRANDS),
        "category": rng.choice(CATEGORIES),
        "gender": rng.choice(GENDERS),
        "colours": rng.sample(COLOURS, rng.randint(0, 2)),
        "pattern": rng.choice(PATTERNS),
        "material": rng.choice([None, "cotton", "denim"]),
        "sizes": sorted(rng.sample(SIZES, rng.randint(0, 3))),
        "price": float(rng.randint(5, 500)),
        "in_stock": rng.random() < 0.7,
        "image_urls": [f"https://images.example/{i}.jpg"],
        "product_url": f"https://shop.example/{i}",
        "updated_at": datetime(2025, 1, 1 + i % 28, 12, 30, tzinfo=UTC),
        "image_hash": f"{i:064x}",
        "model_id": MODEL_ID,
    }
    fields.update(overrides)
    return make_product(**fields)


def catalog(n: int, start: int = 0, **overrides: object) -> list[Product]:
    return [catalog_product(i, **overrides) for i in range(start, start + n)]


def vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return unit_vectors(n, dim, seed=seed)


def exact_top_k(
    query: np.ndarray, products: list[Product], matrix: np.ndarray, k: int, keep=lambda p: True
) -> list[tuple[str, float]]:
    """Brute-force cosine top-k over the products ``keep`` accepts: the ground truth for search."""
    q = query / np.linalg.norm(query)
    scored = [(p.product_id, float(matrix[i] @ q)) for i, p in enumerate(products) if keep(p.model_dump(mode="json"))]
    return sorted(scored, key=lambda t: -t[1])[:k]


def _embedded_factory(tmp_path: Path, search: str, structure: str = "hnsw") -> IndexFactory:
    """Readers re-check on every search (refresh 0). The FAISS handle builds a graph (HNSW, or IVF lists
    probed 8 at a time) for every partition at ``end_bulk_load`` and walks it whatever the filter (no
    exact shortcut), so the contract runs through the graph, the write journal and the exact rows together."""
    from looksync.index.embedded import EmbeddedIndex

    if search == "faiss":
        return lambda: EmbeddedIndex(
            tmp_path / "index", search="faiss", refresh_s=0, ann_min_rows=1, exact_max_rows=0,
            ann_structure=structure, ivf_nprobe=8,
        )  # fmt: skip
    return lambda: EmbeddedIndex(tmp_path / "index", search="lance", refresh_s=0)


def built_view_index(
    tmp_path: Path, products: list[Product], matrix: np.ndarray, structure: str = "hnsw"
) -> tuple[CatalogIndex, str, list[Product], np.ndarray]:
    """A live version of ``products`` on the contract's FAISS handle (``_embedded_factory``: refresh 0,
    a ``structure`` for every partition, walked whatever the filter), its graphs built: the set-up of the
    search view tests. Returns (index, version, products, matrix)."""
    index = _embedded_factory(tmp_path, "faiss", structure)()
    version = index.create_version(MODEL_ID, DIM)
    assert index.upsert(version, products, matrix).failures == []
    assert index.build_ann_index(version) is True
    index.set_live(version)
    return index, version, products, matrix


def drop_test_indices(client, prefix: str) -> list[str]:
    """Delete every index of ``prefix`` by name: a cluster refuses wildcard deletes by default
    (``action.destructive_requires_name``, elasticsearch-specification
    specification/indices/delete/IndicesDeleteRequest.ts), so the names are listed with a (read-only)
    wildcard GET and deleted as a comma-separated list of concrete names."""
    from looksync.index.es_bodies import index_pattern

    names = sorted(dict(client.indices.get(index=index_pattern(prefix), expand_wildcards="all", features="settings")))
    if names:
        client.indices.delete(index=",".join(names))
    return names


def _elasticsearch_factory(request: pytest.FixtureRequest) -> IndexFactory:
    """The real backend on the cluster at LOOKSYNC_ES_URL, under a per-test index name; every index,
    template and snapshot the test made is deleted afterwards."""
    url = ES_URL
    if not url:
        pytest.skip("Elasticsearch contract run needs LOOKSYNC_ES_URL (e.g. http://localhost:9200); none is set")
    from looksync.index.elasticsearch import ElasticsearchIndex
    from looksync.index.factory import open_index
    from looksync.settings import load_settings

    prefix = f"looksync-test-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        index_backend="elasticsearch",
        es_url=url,
        index_name=prefix,
        es_replicas=0,
        es_snapshot_repository=ES_SNAPSHOT_REPOSITORY,
    )
    handles: list[ElasticsearchIndex] = []

    def cleanup() -> None:
        if not handles:
            return
        client = handles[0].client
        if handles[0].snapshot_repository_exists():
            for snap in handles[0].list_snapshots():
                client.snapshot.delete(repository=settings.es_snapshot_repository, snapshot=snap.name)
        drop_test_indices(client, prefix)
        try:
            client.indices.delete_index_template(name=prefix)
        except Exception:  # noqa: BLE001 - no template made by this test
            pass

    request.addfinalizer(cleanup)

    def make() -> CatalogIndex:
        index = open_index(settings)
        assert isinstance(index, ElasticsearchIndex)
        handles.append(index)
        return index

    return make


@pytest.fixture(params=["embedded-faiss", "embedded-faiss-ivf", "embedded-lance", "elasticsearch"])
def index_factory(request: pytest.FixtureRequest, tmp_path: Path) -> IndexFactory:
    """Opens handles on one fresh index store; two calls give two handles (a writer and a reader)."""
    if request.param == "embedded-faiss-ivf":
        return _embedded_factory(tmp_path, "faiss", "ivf")
    if request.param.startswith("embedded-"):
        return _embedded_factory(tmp_path, request.param.removeprefix("embedded-"))
    return _elasticsearch_factory(request)


@pytest.fixture
def index(index_factory: IndexFactory) -> CatalogIndex:
    return index_factory()


@pytest.fixture
def live_catalog(index: CatalogIndex) -> tuple[CatalogIndex, str, list[Product], np.ndarray]:
    """A live version holding 300 catalog products with seeded vectors, bulk-loaded (``end_bulk_load``
    run, so a backend's ANN structures are built)."""
    products = catalog(300)
    matrix = vectors(len(products), seed=1)
    version = index.create_version(MODEL_ID, DIM)
    index.begin_bulk_load(version)
    result = index.upsert(version, products, matrix)
    assert result.failures == [] and result.written == len(products)
    index.end_bulk_load(version)
    index.set_live(version)
    return index, version, products, matrix
