"""Product grouping on a sample: what each part of the rule contributes, and what the grouping costs.

Reads a catalog that ``looksync eval`` ingested and grouped (``<data_dir>/eval/<run>/indexes/<slug>``:
its product store and embeddings store) and the sample's ``groups.json``; regroups with the full rule
(``looksync.pipelines.dedup.group_near_duplicates``) and with parts of it switched off, and prints the
pairwise precision / recall of each against the truth. The variants switch parts off by standing in for
the functions ``dedup`` calls (``listings_agree``, ``term_key``) and by giving each product a vendor of
its own (no one-vendor rule); nothing in the package changes. Time: the full rule's grouping in ms,
against the anchor measured in the same run: loading the product store and the vectors, which the
ingest run's grouping step does anyway.

    PYTHONPATH=. python bench/bench_grouping.py --sample var/sample --index-dir <eval index dir> --model-id <id>
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import looksync.pipelines.dedup as dedup  # noqa: E402
from looksync.catalog.stores import EmbeddingStore, ProductStore  # noqa: E402
from looksync.quality.evaluation.grouping import pairwise_scores, truth_groups  # noqa: E402
from looksync.sample import SampleManifest  # noqa: E402


def regroup(products, vectors, threshold, title_min, agree=None, key=None):
    saved = dedup.listings_agree, dedup.term_key
    dedup.listings_agree, dedup.term_key = agree or saved[0], key or saved[1]
    try:
        return dedup.group_near_duplicates(products, vectors, threshold, title_min)
    finally:
        dedup.listings_agree, dedup.term_key = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--title-min", type=float, default=0.5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    t0 = time.perf_counter()
    products = ProductStore(args.index_dir).all()
    vectors = EmbeddingStore(args.index_dir).load(args.model_id)
    anchor_ms = (time.perf_counter() - t0) * 1000
    truth = truth_groups(SampleManifest.load(args.sample).groups_path)
    ids = {p.product_id for p in products}
    t0 = time.perf_counter()
    full = regroup(products, vectors, args.threshold, args.title_min)
    grouping_ms = (time.perf_counter() - t0) * 1000
    solo = [p.model_copy(update={"vendor": p.product_id}) for p in products]
    variants = {
        "full rule": full,
        "without the one-vendor rule": regroup(solo, vectors, args.threshold, args.title_min),
        "pictures, brand+category blocks": regroup(solo, vectors, args.threshold, args.title_min, agree=lambda a, b, t: True),
        "pictures, category blocks": regroup(
            solo, vectors, args.threshold, args.title_min, agree=lambda a, b, t: True, key=lambda brand: ""
        ),
    }
    print(f"{len(products)} products, {len(set(truth.values()))} items at several shops, threshold {args.threshold}, "
          f"title overlap {args.title_min}, model {args.model_id}")  # fmt: skip
    for name, grouping in variants.items():
        s = pairwise_scores(grouping.groups, truth, ids)
        print(f"{name:34s} precision {s['precision']:.4f}  recall {s['recall']:.4f}  "
              f"grouped pairs {s['grouped_pairs']:6d}  true pairs {s['true_pairs']}")  # fmt: skip
    print(f"grouping (full rule) {grouping_ms:.1f} ms for {full.pairs_compared} pairs compared; anchor (load store + "
          f"vectors) {anchor_ms:.1f} ms; ratio {grouping_ms / anchor_ms:.2f}")  # fmt: skip
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
