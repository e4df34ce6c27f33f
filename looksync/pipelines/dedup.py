"""Near-duplicate grouping: the same product sold by several vendors or in several markets.

Two products are near-duplicates when their image vectors (same model) have cosine similarity of at
least ``threshold`` *and* their brands agree (case-insensitive) *and* their titles share at least
``title_overlap`` of their words (Jaccard). Candidates are compared only within a block of the same
normalised brand and layer, which keeps the work linear in the number of blocks rather than quadratic
in the catalog. Groups are the connected components; a group's id is derived from its smallest product
id, so re-running on the same catalog gives the same ids. Products without a duplicate get no group.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from looksync.catalog.schema import Product

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class Grouping:
    groups: dict[str, str]  # product id -> group id (only products with at least one duplicate)
    pairs_compared: int

    @property
    def group_count(self) -> int:
        return len(set(self.groups.values()))


def title_tokens(title: str) -> set[str]:
    return {t for t in _TOKEN.findall(title.lower()) if len(t) > 1}


def title_overlap(a: str, b: str) -> float:
    ta, tb = title_tokens(a), title_tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def group_id_for(product_ids: Sequence[str]) -> str:
    return "grp-" + hashlib.sha1(min(product_ids).encode()).hexdigest()[:12]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_near_duplicates(
    products: Sequence[Product], vectors: dict[str, np.ndarray], threshold: float = 0.95, title_min: float = 0.5
) -> Grouping:
    """Group ``products`` whose image hash has a vector in ``vectors`` (image hash -> unit vector)."""
    blocks: dict[tuple[str, str], list[Product]] = defaultdict(list)
    for p in products:
        if p.image_hash in vectors:
            blocks[(p.brand.strip().lower(), p.layer)].append(p)
    uf = _UnionFind()
    compared = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        matrix = np.stack([vectors[p.image_hash] for p in members]).astype(np.float32)
        sims = matrix @ matrix.T
        rows, cols = np.nonzero(np.triu(sims >= threshold, k=1))
        compared += len(members) * (len(members) - 1) // 2
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if title_overlap(members[i].title, members[j].title) >= title_min:
                uf.union(members[i].product_id, members[j].product_id)
    components: dict[str, list[str]] = defaultdict(list)
    for pid in list(uf.parent):
        components[uf.find(pid)].append(pid)
    groups = {}
    for ids in components.values():
        if len(ids) > 1:
            gid = group_id_for(ids)
            groups.update(dict.fromkeys(ids, gid))
    return Grouping(groups=groups, pairs_compared=compared)


def group_catalog(settings, model_id: str, mirror=None) -> dict[str, int]:
    """Regroup the whole product store (vectors of ``model_id``) and record changed group ids in the
    store and the Redis mirror; returns counts for the run report."""
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
    return {
        "groups": grouping.group_count,
        "grouped_products": len(grouping.groups),
        "group_changes": len(changes),
        "pairs_compared": grouping.pairs_compared,
    }
