"""One card per item: search results collapse a product group (the same item at several shops or in
several markets, ``looksync.catalog.groups``) to its best-scoring listing, which carries the group's
offers, the best in-stock offer in the shopper's market first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from looksync.catalog.groups import ProductGroups
from looksync.index import Hit


def with_group_ids(hits: list[Hit], groups: ProductGroups) -> list[Hit]:
    """``hits`` with each grouped product's ``group_id`` in its product record (copies; the index's own
    records are left alone), so near-duplicate removal keeps one hit per group."""
    out = []
    for hit in hits:
        gid = groups.group_of(hit.product_id)
        out.append(replace(hit, product={**hit.product, "group_id": gid}) if gid else hit)
    return out


def with_offers(summary: dict[str, Any], groups: ProductGroups, market: str | None) -> dict[str, Any]:
    """Add ``group_id`` and ``offers`` (ordered for ``market``) to a grouped product's result card."""
    gid = groups.group_of(summary["product_id"])
    if gid:
        summary["group_id"] = gid
        summary["offers"] = groups.offers(gid, market)
    return summary


def product_group(product_id: str, groups: ProductGroups, market: str | None) -> dict[str, Any] | None:
    """The group of one product with every offer (``GET /v1/products/<id>``), None when it has none."""
    gid = groups.group_of(product_id)
    record = groups.record(gid) if gid else None
    if record is None:
        return None
    return {**{k: v for k, v in record.items() if k != "offers"}, "offers": groups.offers(gid, market)}
