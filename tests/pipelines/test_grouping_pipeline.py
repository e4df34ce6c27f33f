"""Grouping in the ingest run: group ids stored with the products (store and Redis), group records with
their offers for the service, counts in the run report; pairwise quality against the sample's truth."""

from __future__ import annotations

import json

from looksync.catalog.groups import read_group_records
from looksync.catalog.stores import ProductStore
from looksync.pipelines.dedup import group_catalog
from looksync.pipelines.ingest import ingest_feed
from looksync.pipelines.run_report import report_stage
from looksync.quality.evaluation.grouping import pairwise_scores, truth_groups


def test_ingest_run_groups_cross_listings_and_reports_them(settings, crossed_sample, tiny_encoder, mirror):
    manifest = crossed_sample.manifest
    reports = [ingest_feed(settings, v, feed, tiny_encoder, "run-g", mirror=mirror) for v, feed in manifest.feeds.items()]
    counts = group_catalog(settings, tiny_encoder.model_id, mirror)

    store = ProductStore(settings.data_dir)
    products = {p.product_id: p for p in store.all()}
    truth = truth_groups(manifest.groups_path)
    scores = pairwise_scores(store.groups(), truth, set(products))
    assert scores["true_pairs"] >= 10 and scores["precision"] >= 0.95 and scores["recall"] >= 0.95, scores
    assert counts["groups"] == len({g for g in store.groups().values() if g}) >= len(set(truth.values())) - 1
    assert counts["grouped_products"] == sum(1 for g in store.groups().values() if g)
    assert counts["cross_market_groups"] == counts["groups"]  # every sample vendor sells in its own market

    grouped = next(pid for pid, gid in store.groups().items() if gid)
    gid = store.groups()[grouped]
    assert mirror.get(grouped)["group_id"] == gid
    record = read_group_records(settings)[gid]
    members = [pid for pid, g in store.groups().items() if g == gid]
    assert sorted(o["product_id"] for o in record["offers"]) == sorted(members)
    for offer in record["offers"]:
        p = products[offer["product_id"]]
        assert (offer["vendor"], offer["market"], offer["price"], offer["currency"], offer["in_stock"],
                offer["product_url"]) == (p.vendor, p.market, p.price, p.currency, p.in_stock, p.product_url)  # fmt: skip
    assert record["canonical_product_id"] in members

    report = report_stage(settings, "run-g", [r.__dict__ for r in reports], {"groups": counts}, mirror=mirror)
    stored = json.loads((settings.data_dir / "reports" / "run-g" / "report.json").read_text())
    assert stored["groups"]["groups"] == counts["groups"] and stored["coverage"]["missing"]["group_id"] == (
        len(products) - counts["grouped_products"]
    )
    page = (settings.data_dir / "reports" / "run-g" / "report.html").read_text()
    assert "Product groups" in page and f"cross market groups: {counts['cross_market_groups']}" in page
    assert report["uris"]["html"].endswith("report.html")

    # the next run with nothing changed changes no group
    assert group_catalog(settings, tiny_encoder.model_id, mirror)["group_changes"] == 0
