"""Product grouping: the same item sold by several vendors or in several markets.

Two products are one item when their image vectors (same model) have cosine similarity of at least
``threshold`` (a re-encoded or resized copy of a picture stays close; another drawing of a similar item
does not) *and* nothing written about them disagrees: brand, category, gender, colour, pattern and
titles across languages (``looksync.catalog.groups.listings_agree``, with ``title_min`` the signature
overlap). Within one vendor only the same picture bytes count (a shop relisting an item under another
SKU reuses its picture; two SKUs with two similar pictures are variants, e.g. another shade), also
through a third listing: pairs join closest pictures first, and a join that would put two of one
vendor's variants in one group is refused. Re-encoded pictures are what other shops serve. Candidates are compared only within a block of the same brand key and category, which keeps
the work linear in the number of blocks rather than quadratic in the catalog. Groups are the connected
components; a group's id is derived from its smallest product id, so re-running on the same catalog
gives the same ids. Products without a duplicate get no group.

``group_catalog`` is the ingest run's grouping step (the ``catalog_ingest`` DAG's ``group_duplicates``
task): group ids into the product store and the Redis mirror, group records (canonical product and
offers) into the object store for the service, and counts for the run report.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from looksync.catalog.groups import group_records, listings_agree, write_group_records
from looksync.catalog.schema import Product
from looksync.catalog.terms import term_key


@dataclass
class Grouping:
    groups: dict[str, str]  # product id -> group id (only products with at least one duplicate)
    pairs_compared: int

    @property
    def group_count(self) -> int:
        return len(set(self.groups.values()))


def group_id_for(product_ids: Sequence[str]) -> str:
    return "grp-" + hashlib.sha1(min(product_ids).encode()).hexdigest()[:12]


class _UnionFind:
    """Components of products, each knowing its pictures per vendor, so that no union puts two of one
    vendor's products with different pictures (variants) into one group through a third listing."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.pictures: dict[str, dict[str, set[str]]] = {}  # root -> vendor -> image hashes

    def add(self, product: Product) -> None:
        if product.product_id not in self.parent:
            self.parent[product.product_id] = product.product_id
            self.pictures[product.product_id] = {product.vendor: {product.image_hash or ""}}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        pa, pb = self.pictures[ra], self.pictures[rb]
        if any(pa[v] != pb[v] for v in pa.keys() & pb.keys()):
            return False
        keep, gone = min(ra, rb), max(ra, rb)
        self.parent[gone] = keep
        merged = {v: pa.get(v, set()) | pb.get(v, set()) for v in pa.keys() | pb.keys()}
        self.pictures[keep] = merged
        del self.pictures[gone]
        return True


def group_near_duplicates(
    products: Sequence[Product], vectors: dict[str, np.ndarray], threshold: float = 0.95, title_min: float = 0.5
) -> Grouping:
    """Group ``products`` whose image hash has a vector in ``vectors`` (image hash -> unit vector)."""
    blocks: dict[tuple[str, str], list[Product]] = defaultdict(list)
    for p in products:
        if p.image_hash in vectors:
            blocks[(term_key(p.brand), p.category)].append(p)
    uf = _UnionFind()
    compared = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda p: p.product_id)
        matrix = np.stack([vectors[p.image_hash] for p in members]).astype(np.float32)
        sims = matrix @ matrix.T
        rows, cols = np.nonzero(np.triu(sims >= threshold, k=1))
        compared += len(members) * (len(members) - 1) // 2
        # the closest pictures join first, so a listing joins the item it is most like
        for i, j in sorted(zip(rows.tolist(), cols.tolist(), strict=True), key=lambda ij: (-sims[ij], ij)):
            a, b = members[i], members[j]
            if a.vendor == b.vendor and a.image_hash != b.image_hash:
                continue  # one shop's two SKUs with two pictures are variants; a relisting reuses its picture
            if listings_agree(a, b, title_min):
                uf.add(a)
                uf.add(b)
                uf.union(a.product_id, b.product_id)
    components: dict[str, list[str]] = defaultdict(list)
    for pid in list(uf.parent):
        components[uf.find(pid)].append(pid)
    groups = {}
    for ids in components.values():
        if len(ids) > 1:
            gid = group_id_for(ids)
            groups.update(dict.fromkeys(ids, gid))
    return Grouping(groups=groups, pairs_compared=compared)


def group_catalog(settings, model_id: str, mirror=None) -> dict[str, int | str]:
    """Regroup the whole product store (vectors of ``model_id``): changed group ids into the store and
    the Redis mirror, every group's record (canonical product, offers) into the object store; returns
    counts for the run report."""
    from looksync.catalog.stores import EmbeddingStore, ProductStore

    store = ProductStore(settings.data_dir)
    products = store.all()
    grouping = group_near_duplicates(
        products, EmbeddingStore.from_settings(settings).load(model_id), settings.dedup_threshold, settings.dedup_title_overlap
    )
    current = store.groups()
    changes = {pid: grouping.groups.get(pid) for pid in current if current[pid] != grouping.groups.get(pid)}
    store.set_groups(changes)
    if mirror is not None and changes:
        mirror.set_groups(changes)
    records = group_records(products, grouping.groups)
    uri = write_group_records(settings, records)
    return {
        "groups": grouping.group_count,
        "grouped_products": len(grouping.groups),
        "cross_market_groups": sum(len(r["markets"]) > 1 for r in records.values()),
        "cross_vendor_groups": sum(len(r["vendors"]) > 1 for r in records.values()),
        "group_changes": len(changes),
        "pairs_compared": grouping.pairs_compared,
        "records_uri": uri,
    }
