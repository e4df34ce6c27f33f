"""Change detection, idempotency (counting embeddings), live-index upserts, Redis mirror, run report, thumbnails."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps

from looksync.catalog.quarantine import read_quarantine
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.index.factory import open_index
from looksync.pipelines.ingest import STAGES, ingest_feed
from tests.pipelines.conftest import reprice_two, rewrite_csv

VENDOR = "desi_threads"


def _ingest_all(settings, sample, encoder, index, mirror, run_id):
    return [
        ingest_feed(settings, vendor, feed, encoder, run_id, index=index, mirror=mirror)
        for vendor, feed in sample.manifest.feeds.items()
    ]


def test_planted_faults_are_quarantined_and_valid_rows_indexed(settings, faulty_sample, counting_encoder, mirror):
    index = open_index(settings)
    reports = _ingest_all(settings, faulty_sample, counting_encoder, index, mirror, "run-faults")
    quarantined = [q for r in reports for q in read_quarantine(Path(r.quarantine_path))]
    got = Counter((q["vendor"], q["reason"]) for q in quarantined)
    expected = Counter((f["vendor"], f["expected_reason"]) for f in faulty_sample.faults)
    assert got == expected and len({f["kind"] for f in faulty_sample.faults}) == 10
    valid = sum(faulty_sample.manifest.product_counts.values())
    assert index.count() == valid == ProductStore(settings.data_dir).count()
    assert len(mirror.members()) == valid
    assert sum(r.outcomes["new"] for r in reports) == valid
    # every distinct image embedded once (the planted oversized/HTML ones never reach the encoder)
    assert counting_encoder.images_embedded == sum(r.embedded for r in reports) == valid


def test_rerun_changes_only_what_changed(settings, clean_sample, counting_encoder, mirror, tmp_path):
    index = open_index(settings)
    feed = clean_sample.manifest.feeds[VENDOR]
    stages: list[str] = []
    first = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-1", index=index, mirror=mirror,
                        progress=stages.append)  # fmt: skip
    assert stages == list(STAGES)  # each stage reported as it finishes, in order
    n = first.outcomes["new"]
    assert counting_encoder.images_embedded == n == index.count()

    # same feed again: nothing fetched, nothing embedded, nothing written
    again = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-2", index=index, mirror=mirror)
    assert counting_encoder.images_embedded == n
    assert again.outcomes["unchanged"] == n and again.embedded == 0 and again.products_stored == 0

    # price and stock changes only: 0 embeddings, fields updated in the store, the index and Redis
    priced = tmp_path / "priced.csv"
    rewrite_csv(feed, priced, reprice_two)
    before = {p.vendor_sku: p for p in ProductStore(settings.data_dir).by_vendor(VENDOR).values()}
    report = ingest_feed(settings, VENDOR, priced, counting_encoder, "run-3", index=index, mirror=mirror)
    assert counting_encoder.images_embedded == n, "a metadata-only rerun computed embeddings"
    assert report.embedded == 0 and report.outcomes["metadata_only"] == 2 and report.outcomes["unchanged"] == n - 2
    changed = before["DT100001"]
    stored = ProductStore(settings.data_dir).get_many([changed.product_id])[changed.product_id]
    assert stored.price == 9999.0 and stored.in_stock != changed.in_stock
    assert index.get(changed.product_id)["price"] == 9999.0
    assert mirror.get(changed.product_id)["in_stock"] == ("1" if stored.in_stock else "0")

    # two changed images (new files, new content): exactly those two embedded; one row gone: deleted
    images = clean_sample.root / "images" / VENDOR
    for sku in ("DT100002", "DT100005"):
        ImageOps.mirror(Image.open(images / f"{sku}.png").convert("RGB")).save(images / f"{sku}-v2.png")

    def new_images(row):
        if row["Item Code"] == "DT100007":
            return None
        if row["Item Code"] in ("DT100002", "DT100005"):
            row["Image Link"] = row["Image Link"].replace(".png", "-v2.png")
        return row

    reimaged = tmp_path / "reimaged.csv"
    rewrite_csv(priced, reimaged, new_images)
    report = ingest_feed(settings, VENDOR, reimaged, counting_encoder, "run-4", index=index, mirror=mirror)
    assert counting_encoder.images_embedded == n + 2
    assert report.outcomes["image_changed"] == 2 and report.outcomes["vanished"] == 1
    gone = before["DT100007"].product_id
    assert index.get(gone) is None and not mirror.get(gone)
    assert gone not in ProductStore(settings.data_dir).get_many([gone])
    assert index.count() == n - 1 == len(mirror.members())
    moved = before["DT100002"].product_id
    assert index.get(moved)["image_hash"] != before["DT100002"].image_hash

    # the same message delivered again: same contents, no embeddings
    snapshot = {pid: index.get(pid) for pid in mirror.members()}
    report = ingest_feed(settings, VENDOR, reimaged, counting_encoder, "run-5", index=index, mirror=mirror)
    assert counting_encoder.images_embedded == n + 2 and report.outcomes["unchanged"] == n - 1
    assert {pid: index.get(pid) for pid in mirror.members()} == snapshot


def test_force_refetch_detects_an_image_replaced_at_the_same_url(settings, clean_sample, counting_encoder, tmp_path):
    feed = clean_sample.manifest.feeds[VENDOR]
    ingest_feed(settings, VENDOR, feed, counting_encoder, "run-a")
    n = counting_encoder.images_embedded
    path = clean_sample.root / "images" / VENDOR / "DT100010.png"
    original = path.read_bytes()
    try:
        ImageOps.flip(Image.open(path).convert("RGB")).save(path)
        plain = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-b")
        assert plain.outcomes["unchanged"] == n and counting_encoder.images_embedded == n  # URL unchanged: not fetched
        report = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-c", refetch=True)
        assert report.outcomes["image_changed"] == 1 and counting_encoder.images_embedded == n + 1
    finally:
        path.write_bytes(original)


def test_dedup_groups_same_product_across_vendors(settings, tiny_encoder):
    from looksync.pipelines.dedup import group_near_duplicates
    from tests.factories import make_product, unit_vectors

    v = unit_vectors(4, 8, seed=1)
    near = v[0] + 0.01 * v[1]
    near /= (near**2).sum() ** 0.5
    products = [
        make_product(vendor_sku="A", title="Navy striped cotton tee", image_hash="h0"),
        make_product(vendor="desi_threads", vendor_sku="B", market="IN", title="Navy Striped Cotton Tee", image_hash="h1"),
        make_product(vendor_sku="C", title="Red leather handbag", image_hash="h2", category="handbag"),
        make_product(vendor_sku="D", title="Navy striped tee", brand="Other", image_hash="h3"),
    ]
    vectors = {"h0": v[0], "h1": near, "h2": near, "h3": v[0]}
    grouping = group_near_duplicates(products, vectors, threshold=0.95, title_min=0.5)
    ids = [p.product_id for p in products]
    # same image + same brand + similar title: grouped; other layer or other brand: not
    assert grouping.groups == {ids[0]: grouping.groups[ids[0]], ids[1]: grouping.groups[ids[0]]}
    again = group_near_duplicates(list(reversed(products)), vectors)
    assert again.groups == grouping.groups


def test_dedup_through_ingest_records_group_ids(settings, clean_sample, tiny_encoder, mirror, tmp_path):
    """A second vendor listing the same item (same image bytes, brand, title) is grouped with it."""
    from looksync.pipelines.dedup import group_catalog

    feed = clean_sample.manifest.feeds[VENDOR]
    copy = tmp_path / "copy.csv"
    # the same rows again as another SKU range of the same vendor: same images, brands and titles
    rewrite_csv(feed, copy, lambda row: {**row, "Item Code": row["Item Code"].replace("DT", "DX")} if row["Item Code"] <= "DT100003" else None)
    index = open_index(settings)
    ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-d1", index=index, mirror=mirror, mode="delta")
    ingest_feed(settings, VENDOR, copy, tiny_encoder, "run-d2", index=index, mirror=mirror, mode="delta")
    counts = group_catalog(settings, tiny_encoder.model_id, mirror)
    groups = ProductStore(settings.data_dir).groups()
    assert counts["groups"] >= 3 and counts["grouped_products"] >= 6
    by_sku = {p.vendor_sku: p.product_id for p in ProductStore(settings.data_dir).all()}
    assert groups[by_sku["DT100001"]] == groups[by_sku["DX100001"]] is not None
    assert mirror.get(by_sku["DX100001"])["group_id"] == groups[by_sku["DT100001"]]
    assert group_catalog(settings, tiny_encoder.model_id, mirror)["group_changes"] == 0


def test_coverage_and_run_report(settings, clean_sample, tiny_encoder, mirror):
    from looksync.catalog.attribute_mirror import coverage
    from looksync.pipelines.run_report import report_stage

    reports = _ingest_all(settings, clean_sample, tiny_encoder, open_index(settings), mirror, "run-cov")
    cov = coverage(mirror)
    assert cov.total == 45
    per_market = {m: sum(layers.values()) for m, layers in cov.by_market_layer.items()}
    assert per_market == {"IN": 15, "US": 15, "JP": 15}
    assert cov.missing["group_id"] == 45 and cov.missing["colours"] == 0
    report = report_stage(settings, "run-cov", [r.__dict__ for r in reports], mirror=mirror)
    stored = json.loads((settings.data_dir / "reports" / "run-cov" / "report.json").read_text())
    assert stored["outcomes"]["new"] == 45 and stored["coverage"]["total"] == 45
    html = (settings.data_dir / "reports" / "run-cov" / "report.html").read_text()
    assert "<svg" in html and "outer_topwear" in html and report["uris"]["html"].endswith("report.html")


def test_embeddings_are_keyed_by_model(settings, clean_sample, tiny_encoder):
    ingest_feed(settings, VENDOR, clean_sample.manifest.feeds[VENDOR], tiny_encoder, "run-m")
    store = EmbeddingStore(settings.data_dir)
    assert len(store.load(tiny_encoder.model_id)) == 15
    assert store.load("other-model@x") == {}


def _thumbnail_files(settings) -> dict[str, int]:
    """Thumbnail object path -> modification time (ns), under the local thumbnails area."""
    root = settings.data_dir / "thumbnails"
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*.jpg")}


def test_thumbnails_are_written_once_per_image(settings, clean_sample, tiny_encoder):
    from looksync.catalog.thumbnails import ThumbnailStore

    feed = clean_sample.manifest.feeds[VENDOR]
    first = ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-t1")
    products = ProductStore(settings.data_dir).by_vendor(VENDOR).values()
    hashes = {p.image_hash for p in products}
    assert first.thumbnails == {"written": len(hashes), "existing": 0, "failed": 0} and len(hashes) == 15
    assert {"fetch", "embed"} <= set(first.seconds)  # thumbnails are made in the overlapped fetch pass
    store = ThumbnailStore.from_settings(settings)
    for image_hash in hashes:
        thumb = Image.open(io.BytesIO(store.get(image_hash)))
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    files = _thumbnail_files(settings)
    assert sorted(files) == sorted(f"{h[:2]}/{h}.jpg" for h in hashes)

    # unchanged feed: nothing fetched, no thumbnail made or written
    again = ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-t2")
    assert again.outcomes["unchanged"] == 15 and again.thumbnails == {"written": 0, "existing": 0, "failed": 0}
    # fetched again (same bytes): every thumbnail is already there; none rewritten
    refetched = ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-t3", refetch=True)
    assert refetched.thumbnails == {"written": 0, "existing": 15, "failed": 0}
    assert _thumbnail_files(settings) == files

    # the run report carries the totals
    from looksync.pipelines.run_report import build_run_report

    totals = build_run_report("run-t", [r.__dict__ for r in (first, again, refetched)])["thumbnails"]
    assert totals == {"written": 15, "existing": 15, "failed": 0}


def test_a_thumbnail_failure_keeps_the_product(settings, clean_sample, tiny_encoder, caplog):
    """The thumbnails area cannot be written (a file where its directory should be): every product is
    still ingested and indexed; the failures are counted and logged with the products they concern."""
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "thumbnails").write_text("not a directory")
    index = open_index(settings)
    with caplog.at_level("WARNING", logger="looksync.pipelines.ingest"):
        report = ingest_feed(settings, VENDOR, clean_sample.manifest.feeds[VENDOR], tiny_encoder, "run-tf", index=index)
    assert report.outcomes["new"] == 15 == index.count() and report.quarantined_total == 0
    assert report.thumbnails == {"written": 0, "existing": 0, "failed": 15}
    warnings = [r for r in caplog.records if r.getMessage().startswith("no thumbnail for image")]
    assert len(warnings) == 15 and all(r.run_id == "run-tf" and r.vendor == VENDOR and r.product_ids for r in warnings)
    # every stage module logs under the one name operators filter on, whichever module the stage lives in
    assert {r.name for r in warnings} == {"looksync.pipelines.ingest"}


def test_cli_refetch_stores_missing_thumbnails(settings, clean_sample, tiny_encoder):
    """A catalog whose thumbnails are missing (ingested before them): `looksync ingest --refetch` fetches
    the images again and stores them, reusing every vector."""
    import shutil

    from click.testing import CliRunner

    from looksync.cli import main

    feed = clean_sample.manifest.feeds[VENDOR]
    ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-c1")
    shutil.rmtree(settings.data_dir / "thumbnails")
    env = {"LOOKSYNC_DATA_DIR": str(settings.data_dir), "LOOKSYNC_CLIP_MODEL": settings.clip_model,
           "LOOKSYNC_CLIP_WEIGHTS": settings.clip_weights, "LOOKSYNC_DEVICE": "cpu", "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true"}  # fmt: skip
    result = CliRunner().invoke(main, ["ingest", "--vendor", VENDOR, "--feed", str(feed), "--refetch"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["thumbnails"] == {"written": 15, "existing": 0, "failed": 0}
    assert report["embedded"] == 0 and report["outcomes"]["unchanged"] == 15
    assert len(_thumbnail_files(settings)) == 15


def test_cli_ingest_applies_to_the_live_index_as_the_dag_does(settings, clean_sample, tmp_path):
    """`looksync ingest` upserts new products into the live index and deletes vanished ones from it (a
    deleted product is not searchable until the next `index build`); --no-index leaves the index alone."""
    from click.testing import CliRunner

    from looksync.cli import main

    feed = Path(clean_sample.manifest.feeds[VENDOR])
    env = {"LOOKSYNC_DATA_DIR": str(settings.data_dir), "LOOKSYNC_CLIP_MODEL": settings.clip_model,
           "LOOKSYNC_CLIP_WEIGHTS": settings.clip_weights, "LOOKSYNC_DEVICE": "cpu", "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true"}  # fmt: skip
    result = CliRunner().invoke(main, ["ingest", "--vendor", VENDOR, "--feed", str(feed)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    index = open_index(settings)
    assert report["index_version"] == index.live_version() and index.count() == report["outcomes"]["new"] == 15

    lines = feed.read_text(encoding="utf-8").splitlines(keepends=True)
    header = 1 if feed.suffix == ".csv" else 0
    assert feed.suffix in (".csv", ".jsonl"), feed
    shorter = tmp_path / f"shorter{feed.suffix}"
    shorter.write_text("".join(lines[: header + 14]), encoding="utf-8")  # the last product vanishes

    result = CliRunner().invoke(main, ["ingest", "--vendor", VENDOR, "--feed", str(shorter)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["outcomes"]["vanished"] == 1 and index.count() == 14

    result = CliRunner().invoke(main, ["ingest", "--vendor", VENDOR, "--feed", str(feed), "--no-index"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["outcomes"]["new"] == 1 and index.count() == 14  # stored, not indexed
    assert any("no index given" in note for note in report["notes"])


def test_cleaned_display_text_is_recorded_in_the_run_report(settings, clean_sample, tmp_path):
    from looksync.pipelines.feed_ref import FeedRef
    from looksync.pipelines.ingest import parse_stage

    feed = Path(clean_sample.manifest.feeds[VENDOR])
    import csv

    assert feed.suffix == ".csv"
    with feed.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index("Product Name")] = "Kurta " + "very " * 100  # over the 300-character cap
    edited = tmp_path / "edited.csv"
    with edited.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)

    report = parse_stage(settings, FeedRef(VENDOR, str(edited)), "run-text").report()

    (note,) = [n for n in report.notes if n.startswith("text cleaned:")]
    assert note.startswith("text cleaned: title truncated in 1 row(s) (")
