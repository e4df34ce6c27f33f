"""Grouping quality: pairwise precision and recall of product groups against the sample's truth.

The sample's ``groups.json`` lists the items it cross-listed (one item, several vendors). A pair of
products is *truly together* when they are listings of one item, *grouped* when the grouping step put
them in one group. Precision = truly together / grouped pairs; recall = grouped / truly together pairs,
over every product the sample's feeds hold (products the truth does not name are single items).
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any


def truth_groups(groups_path: Path | None) -> dict[str, str]:
    """Product id -> the item it lists, from a sample's groups.json ({} when the sample has none)."""
    if groups_path is None or not Path(groups_path).is_file():
        return {}
    truth = json.loads(Path(groups_path).read_text(encoding="utf-8"))
    return {m["product_id"]: g["item"] for g in truth["groups"] for m in g["products"]}


def _pairs(assignment: dict[str, str], products: set[str]) -> set[tuple[str, str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for pid, gid in assignment.items():
        if pid in products and gid:
            members[gid].append(pid)
    return {pair for ids in members.values() for pair in combinations(sorted(ids), 2)}


def pairwise_scores(predicted: dict[str, str | None], truth: dict[str, str], products: set[str]) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of ``predicted`` (product id -> group id) against ``truth``
    over ``products``; with no grouped pair precision is 1.0, with no true pair recall is 1.0."""
    got = _pairs({k: v for k, v in predicted.items() if v}, products)
    want = _pairs(truth, products)
    hits = len(got & want)
    precision = hits / len(got) if got else 1.0
    recall = hits / len(want) if want else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "grouped_pairs": len(got),
        "true_pairs": len(want),
        "correct_pairs": hits,
        "products": len(products),
        "items_listed_twice_or_more": len(set(truth.values())),
        "wrong_pairs": [list(p) for p in sorted(got - want)[:10]],
        "missed_pairs": [list(p) for p in sorted(want - got)[:10]],
    }


def score_index_grouping(data_dir: Path, truth: dict[str, str]) -> dict[str, Any]:
    """Pairwise scores of the groups stored by an evaluation index's ingest + grouping."""
    from looksync.catalog.stores import ProductStore

    store = ProductStore(data_dir)
    groups = store.groups()
    return pairwise_scores(groups, truth, set(groups))
