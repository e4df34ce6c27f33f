"""The catalog index contract: what the DAGs write and the service reads, whatever the backend.

Vectors are L2-normalised float32; scores are cosine similarities (higher is better). An index
*version* is one physical index built for one model id and vector size; exactly one version is *live*
and is what searches without an explicit version read. At most one other version is *shadow*: a
candidate built beside live that the service mirrors a share of queries to for comparison, serving no
one until ``promote_shadow`` makes it live (the same atomic swap as ``set_live``). Bulk calls return
per-document failures.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from looksync.catalog.schema import Product
from looksync.index.errors import IndexBackendError
from looksync.index.validation import ValidationReport, validate_version


def filter_number(value: object, name: str) -> float:
    """A numeric filter value (prices) as a finite float, or IndexBackendError naming the filter."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise IndexBackendError(f"filter {name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise IndexBackendError(f"filter {name}={value!r} must be finite")
    return number


@dataclass
class SearchFilters:
    """Pre-filters applied inside the kNN search. ``None`` means 'no constraint'."""

    layers: list[str] | None = None
    categories: list[str] | None = None
    genders: list[str] | None = None
    market: str | None = None
    brands_include: list[str] | None = None
    brands_exclude: list[str] | None = None
    price_min: float | None = None  # in the market's currency
    price_max: float | None = None
    sizes: list[str] | None = None  # a product matches if it has any of them
    in_stock: bool | None = None
    exclude_ids: list[str] | None = None

    def matches(self, product: dict[str, Any]) -> bool:
        """Reference semantics of the filters on one stored product (used by tests and exact search)."""
        if self.layers and product["layer"] not in self.layers:
            return False
        if self.categories and product["category"] not in self.categories:
            return False
        if self.genders and product["gender"] not in self.genders:
            return False
        if self.market and product["market"] != self.market:
            return False
        if self.brands_include and product["brand"] not in self.brands_include:
            return False
        if self.brands_exclude and product["brand"] in self.brands_exclude:
            return False
        if self.price_min is not None and product["price"] < self.price_min:
            return False
        if self.price_max is not None and product["price"] > self.price_max:
            return False
        if self.sizes and not set(self.sizes) & set(product.get("sizes") or []):
            return False
        if self.in_stock is not None and bool(product["in_stock"]) != self.in_stock:
            return False
        if self.exclude_ids and product["product_id"] in self.exclude_ids:
            return False
        return True


@dataclass
class Hit:
    product_id: str
    score: float
    product: dict[str, Any]


@dataclass
class BulkResult:
    written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (product_id, reason)


@dataclass
class VersionInfo:
    name: str
    model_id: str
    dim: int
    count: int
    live: bool
    created_at: str
    shadow: bool = False


@dataclass
class SnapshotInfo:
    """One stored snapshot of an index version: enough to restore it and to check what came back."""

    name: str
    version: str  # the version it was taken from
    model_id: str
    dim: int
    count: int
    created_at: str
    location: str  # where it lives: an object-store URI, or the Elasticsearch repository and snapshot
    checksum: str | None = None  # over every file in it (embedded); None where the backend checks its own


class CatalogIndex(ABC):
    """One interface, several backends (embedded on local disk; Elasticsearch)."""

    @abstractmethod
    def create_version(self, model_id: str, dim: int, name: str | None = None) -> str:
        """Create an empty versioned index for vectors of ``model_id`` with ``dim`` dimensions."""

    @abstractmethod
    def upsert(self, version: str, products: Sequence[Product], vectors: np.ndarray) -> BulkResult:
        """Insert or replace products with their vectors (row i of ``vectors`` belongs to products[i])."""

    @abstractmethod
    def update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        """Replace the stored fields of existing products, keeping their vectors."""

    @abstractmethod
    def delete(self, version: str, product_ids: Sequence[str]) -> int:
        """Delete products; returns how many existed."""

    @abstractmethod
    def get(self, product_id: str, version: str | None = None) -> dict[str, Any] | None:
        """The stored fields of one product (no vector), or None."""

    @abstractmethod
    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: SearchFilters | None = None,
        num_candidates: int | None = None,
        version: str | None = None,
    ) -> list[Hit]:
        """Top-k by cosine among products passing ``filters`` (pre-filtered), best first."""

    @abstractmethod
    def count(self, version: str | None = None) -> int: ...

    @abstractmethod
    def set_live(self, version: str) -> None:
        """Atomically make ``version`` the one that searches read."""

    @abstractmethod
    def live_version(self) -> str | None: ...

    @abstractmethod
    def list_versions(self) -> list[VersionInfo]: ...

    @abstractmethod
    def set_shadow(self, version: str | None) -> None:
        """Mark ``version`` (not the live one) as the shadow version, or clear the mark (None). Searches
        without an explicit version never read it. ``set_live`` of the shadow version clears the mark in
        the same atomic step; dropping it clears it too."""

    @abstractmethod
    def shadow_version(self) -> str | None: ...

    @abstractmethod
    def prune(self, keep: int) -> list[str]:
        """Drop all but the newest ``keep`` versions (never the live one); returns the dropped names."""

    @abstractmethod
    def drop_version(self, version: str) -> None:
        """Drop one version that is not live (a build that failed validation); IndexBackendError for the
        live version or an unknown one."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Backend, live version and per-version figures (count, size, indexes), for ops pages."""

    @abstractmethod
    def snapshot(self, version: str | None = None, name: str | None = None) -> SnapshotInfo:
        """Copy ``version`` (default: the live one) to the backend's snapshot store as ``name``
        (default: derived from the version and the time). The version stays as it was."""

    @abstractmethod
    def restore(self, snapshot: str, as_version: str | None = None) -> str:
        """Bring a snapshot back as a version named ``as_version`` (default: its original name, which
        must then be free); returns the version name. The restored version is not made live."""

    @abstractmethod
    def list_snapshots(self) -> list[SnapshotInfo]:
        """Snapshots in the backend's snapshot store, oldest first."""

    def begin_bulk_load(self, version: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Before a large load into a not-yet-live version: trade freshness for write speed."""

    def end_bulk_load(self, version: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """After the load: make the version ready to serve at full speed (indexes built, settings restored)."""

    def validate(
        self,
        version: str,
        product_ids: Sequence[str],
        vectors: np.ndarray,
        *,
        queries: int = 20,
        k: int = 10,
        min_recall: float = 0.9,
        seed: int = 0,
    ) -> ValidationReport:
        """Check a freshly built ``version`` against the vectors it was built from (the embeddings
        store's): the count must equal ``len(product_ids)``, and ``queries`` sampled rows searched
        unfiltered must reach ``min_recall`` recall@k against the exact top-k of ``vectors``."""
        return validate_version(self, version, product_ids, vectors, queries=queries, k=k, min_recall=min_recall, seed=seed)

    def live_model_id(self) -> str | None:
        live = self.live_version()
        for info in self.list_versions():
            if info.name == live:
                return info.model_id
        return None

    def version_info(self, version: str) -> VersionInfo:
        for info in self.list_versions():
            if info.name == version:
                return info
        raise IndexBackendError(f"{self!r}: no index version {version!r}")

    def promote_shadow(self) -> tuple[str | None, str]:
        """Make the shadow version live in one atomic swap (``set_live``, which also clears the shadow
        mark); returns (was live, now live). The old live version becomes the rollback target."""
        shadow = self.shadow_version()
        if shadow is None:
            raise IndexBackendError(f"{self!r}: no shadow version to promote")
        was = self.live_version()
        self.set_live(shadow)
        return was, shadow

    def previous_version(self) -> VersionInfo | None:
        """The version a rollback returns to: the newest one created before the live one (a build that
        failed its validation never went live and is pruned, so this is the version live before the
        last swap), never the shadow one. None when nothing is live or the live version is the oldest kept."""
        infos = [info for info in self.list_versions() if not info.shadow]  # oldest first
        at = next((i for i, info in enumerate(infos) if info.live), None)
        return infos[at - 1] if at else None

    def rollback(self, allow_model_change: bool = False) -> tuple[str, str]:
        """Make the previous version live again in one atomic swap; returns (from, to). Refused when
        there is none, and, unless ``allow_model_change``, when it holds another model's vectors (a
        service still loading the live model would answer 503 until it loads the old one)."""
        live = self.live_version()
        previous = self.previous_version()
        if live is None or previous is None:
            known = [info.name for info in self.list_versions()]
            raise IndexBackendError(f"rollback: no version older than the live one {live!r} to return to; known: {known}")
        live_model = self.live_model_id()
        if previous.model_id != live_model and not allow_model_change:
            raise IndexBackendError(
                f"rollback: {previous.name} holds vectors of {previous.model_id}, the live {live} of {live_model}; "
                "the service must load the older model to answer from it. Allow the model change explicitly."
            )
        self.set_live(previous.name)
        return live, previous.name

    def vectors(self, product_ids: Sequence[str], version: str | None = None) -> dict[str, np.ndarray]:
        """Stored vectors of the products found (id -> unit float32 vector), for the service's
        crop-cosine rerank and product-to-product search. A backend that cannot return them raises
        NotImplementedError, and the service degrades (text order kept; /similar answers 501)."""
        raise NotImplementedError(f"{type(self).__name__} does not return stored vectors")
