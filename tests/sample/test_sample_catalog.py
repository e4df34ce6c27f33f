"""The generated catalog: deterministic, complete, and readable by the vendor parsers."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from looksync.catalog.taxonomy import get_taxonomy
from looksync.sample import generate_sample
from looksync.sample.faults import IMAGE_FAULTS


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path, digest):
    args = dict(size=45, fault_rate=0.1, n_looks=4, image_base_url="http://127.0.0.1:9")
    generate_sample(tmp_path / "a", seed=3, **args)
    generate_sample(tmp_path / "b", seed=3, **args)
    generate_sample(tmp_path / "c", seed=4, **args)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert len(a) > 45 + 4  # feeds, images, looks, faults, manifest
    changed = [path for path in a if a[path] != c.get(path)]
    assert {"feeds/desi_threads.csv", "feeds/northwind_apparel.jsonl", "feeds/sakura_mode.xml"} <= set(changed)
    assert any(path.startswith("looks/") for path in changed) and any(path.startswith("images/") for path in changed)


def test_regenerating_into_the_same_folder_replaces_the_old_sample(tmp_path, digest):
    generate_sample(tmp_path, size=30, seed=1, n_looks=2)
    first = digest(tmp_path)
    generate_sample(tmp_path, size=12, seed=2, n_looks=1)
    generate_sample(tmp_path, size=30, seed=1, n_looks=2)
    assert digest(tmp_path) == first


def test_size_valid_products_cover_every_category_gender_and_market(served_sample):
    manifest = served_sample.manifest
    image_fault_skus = {f["vendor_sku"] for f in served_sample.faults if f["kind"] in IMAGE_FAULTS}
    products = [r.product for rows in served_sample.rows.values() for r in rows if r.product]
    valid = [p for p in products if p.vendor_sku not in image_fault_skus]
    assert len(valid) == manifest.size == sum(manifest.product_counts.values())
    taxonomy = get_taxonomy()
    assert {p.category for p in valid} == set(taxonomy.categories)
    assert {p.gender for p in valid} == set(taxonomy.genders)
    for vendor, rows in served_sample.rows.items():
        vendor_products = [r.product for r in rows if r.product]
        assert len({p.market for p in vendor_products}) == 1
        assert len({p.brand for p in vendor_products}) >= 3, vendor
        assert {p.currency for p in vendor_products} == {taxonomy.currency_of(vendor_products[0].market)}
        assert any(not p.in_stock for p in vendor_products) and any(p.in_stock for p in vendor_products)
        assert all(p.sizes and p.image_urls and p.updated_at.tzinfo for p in vendor_products)


def test_prices_are_realistic_for_each_market(served_sample):
    products = [r.product for rows in served_sample.rows.values() for r in rows if r.product]
    by_market = {m: [p.price for p in products if p.market == m] for m in ("IN", "US", "JP")}
    assert 299 <= min(by_market["IN"]) and max(by_market["IN"]) <= 10_000
    assert 10 <= min(by_market["US"]) and max(by_market["US"]) <= 350
    assert 1_000 <= min(by_market["JP"]) and max(by_market["JP"]) <= 40_000
    assert all(p == int(p) for p in by_market["JP"])  # whole yen


def test_japanese_vendor_titles_are_japanese(served_sample):
    titles = [r.product.title for r in served_sample.rows["sakura_mode"] if r.product]
    assert titles and all(any("\u3040" <= ch <= "\u9fff" for ch in t) for t in titles)


def test_feed_image_urls_point_at_real_product_pngs(served_sample):
    manifest = served_sample.manifest
    image_fault_skus = {f["vendor_sku"] for f in served_sample.faults if f["kind"] in IMAGE_FAULTS}
    checked = 0
    for vendor, rows in served_sample.rows.items():
        for product in (r.product for r in rows if r.product and r.product.vendor_sku not in image_fault_skus):
            assert product.image_urls == [f"{manifest.image_base_url}/images/{vendor}/{product.vendor_sku}.png"]
            with Image.open(manifest.images_dir / vendor / f"{product.vendor_sku}.png") as image:
                image.load()
                assert (image.format, image.size, image.mode) == ("PNG", (224, 224), "RGB")
            checked += 1
    assert checked == manifest.size


def test_manifest_file_matches_the_returned_manifest(served_sample):
    manifest = served_sample.manifest
    on_disk = json.loads(manifest.manifest_path.read_text(encoding="utf-8"))
    assert on_disk == manifest.to_json()
    assert on_disk["fault_counts"] == dict(Counter(f["kind"] for f in served_sample.faults))
    assert sum(on_disk["fault_rows"].values()) == len(served_sample.faults)
    assert type(manifest).load(manifest.root) == manifest


def test_no_faults_means_every_row_is_a_product(tmp_path):
    manifest = generate_sample(tmp_path, size=20, n_looks=0)
    assert manifest.faults_path.read_text() == "" and manifest.look_count == 0
    from looksync.catalog.vendors import load_vendor_config, read_feed

    rows = [r for v, p in manifest.feeds.items() for r in read_feed(load_vendor_config(v), p)]
    assert len(rows) == 20 and all(r.product for r in rows)


@pytest.mark.parametrize("kwargs", [dict(size=0), dict(fault_rate=1.5), dict(fault_rate=-0.1), dict(n_looks=-1)])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        generate_sample(tmp_path, **kwargs)
