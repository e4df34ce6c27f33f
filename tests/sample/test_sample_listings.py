"""Cross-listings: some items sold by several vendors, in other words, markets and picture encodings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.terms import term_key
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.sample import generate_sample

ARGS = dict(size=60, seed=7, n_looks=1, fault_rate=0.1, image_base_url="http://127.0.0.1:9")


def _products(manifest):
    return {
        r.product.product_id: r.product
        for vendor, path in manifest.feeds.items()
        for r in read_feed(load_vendor_config(vendor), path)
        if r.product
    }


def _faults(manifest):
    return [json.loads(line) for line in manifest.faults_path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("listings")
    plain = generate_sample(root / "plain", **ARGS)
    crossed = generate_sample(root / "crossed", cross_listing_rate=0.25, **ARGS)
    return plain, crossed


def test_cross_listings_leave_every_other_product_and_fault_as_it_was(samples):
    plain, crossed = samples
    before, after = _products(plain), _products(crossed)
    assert set(before) < set(after)
    assert all(after[pid] == before[pid] for pid in before)
    assert [(f["kind"], f["vendor_sku"]) for f in _faults(plain)] == [(f["kind"], f["vendor_sku"]) for f in _faults(crossed)]
    added = sum(crossed.cross_listings.values())
    assert added == len(after) - len(before) > 0
    assert sum(crossed.product_counts.values()) == sum(plain.product_counts.values()) + added
    assert plain.cross_listings == dict.fromkeys(plain.feeds, 0)
    assert json.loads(plain.groups_path.read_text())["groups"] == []
    for name in ("images", "looks"):  # the plain sample's pictures and looks, byte for byte
        for path in (plain.root / name).rglob("*"):
            if path.is_file():
                assert (crossed.root / path.relative_to(plain.root)).read_bytes() == path.read_bytes(), path


def test_groups_truth_names_one_item_at_several_vendors(samples):
    _, crossed = samples
    products = _products(crossed)
    groups = json.loads(crossed.groups_path.read_text(encoding="utf-8"))["groups"]
    assert len(groups) == sum(crossed.cross_listings.values()) - sum(len(g["products"]) - 2 for g in groups)
    languages = set()
    for group in groups:
        members = [products[m["product_id"]] for m in group["products"]]
        assert len({p.vendor for p in members}) == len(members) >= 2
        assert len({p.market for p in members}) == len(members)  # each sample vendor sells in its own market
        assert len({p.currency for p in members}) == len(members)
        assert len({p.title for p in members}) == len(members)
        assert len({term_key(p.brand) for p in members}) == 1
        for field in ("category", "gender", "colours", "pattern"):
            assert len({json.dumps(getattr(p, field)) for p in members}) == 1, field
        languages.add(frozenset(any("\u3040" <= ch <= "\u9fff" for ch in p.title.replace(p.brand, "")) for p in members))
    assert frozenset({True, False}) in languages  # an item titled in Japanese at one shop and in English at another


def test_cross_listed_pictures_are_reencoded_not_copied(samples):
    _, crossed = samples
    products = _products(crossed)
    groups = json.loads(crossed.groups_path.read_text(encoding="utf-8"))["groups"]
    for group in groups:
        original, *copies = (products[m["product_id"]] for m in group["products"])
        with Image.open(crossed.images_dir / original.vendor / f"{original.vendor_sku}.png") as image:
            source = np.asarray(image.convert("RGB"), dtype=np.int16)
        for copy in copies:
            path = crossed.images_dir / copy.vendor / f"{copy.vendor_sku}.jpg"
            assert copy.image_urls == [f"{crossed.image_base_url}/images/{copy.vendor}/{copy.vendor_sku}.jpg"]
            with Image.open(path) as image:
                assert image.format == "JPEG" and image.size != (224, 224)
                again = np.asarray(image.convert("RGB").resize((224, 224)), dtype=np.int16)
            difference = np.abs(again - source).mean()
            assert 0 < difference < 12  # the same picture, not the same pixels


def test_same_arguments_same_bytes_and_rate_checked(tmp_path, digest):
    generate_sample(tmp_path / "a", cross_listing_rate=0.3, **ARGS)
    generate_sample(tmp_path / "b", cross_listing_rate=0.3, **ARGS)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    with pytest.raises(ValueError, match="cross_listing_rate"):
        generate_sample(tmp_path / "c", cross_listing_rate=1.5, **ARGS)


def test_the_command_lists_some_items_at_other_vendors_by_default(tmp_path):
    from click.testing import CliRunner

    from looksync.cli import main
    from looksync.sample import SampleManifest

    out = tmp_path / "sample"
    result = CliRunner().invoke(main, ["sample", "generate", "--out", str(out), "--size", "60", "--looks", "0"])
    assert result.exit_code == 0, result.output
    manifest = SampleManifest.load(out)
    assert manifest.cross_listing_rate == 0.1 and sum(manifest.cross_listings.values()) > 0
    assert "cross-listings {" in result.output
    assert json.loads(manifest.groups_path.read_text(encoding="utf-8"))["groups"]
