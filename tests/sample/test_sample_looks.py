"""Sample looks: real images of catalog products worn on a figure, with consistent ground truth."""

from __future__ import annotations

import json

from PIL import Image


def test_looks_are_pngs_of_the_right_size(served_sample):
    manifest = served_sample.manifest
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    assert len(truth) == manifest.look_count == 12
    for look_id in truth:
        with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
            image.load()
            assert (image.format, image.size) == ("PNG", (384, 640))


def test_ground_truth_products_exist_are_valid_and_fit_the_look(served_sample):
    truth = json.loads(served_sample.manifest.ground_truth_path.read_text(encoding="utf-8"))
    # a duplicate-SKU fault repeats a valid product's SKU; that first, valid row is fair game
    faulty = {(f["vendor"], f["vendor_sku"]) for f in served_sample.faults if f["kind"] != "duplicate_sku"}
    products = {r.product.product_id: r.product for rows in served_sample.rows.values() for r in rows if r.product}
    combos = set()
    for look_id, look in truth.items():
        layers = set(look["products"])
        assert "footwear" in layers, look_id
        assert {"topwear", "bottomwear"} <= layers or "one_piece" in layers, look_id
        for layer, product_id in look["products"].items():
            product = products[product_id]
            assert (product.vendor, product.vendor_sku) not in faulty
            assert product.layer == layer and product.market == look["market"]
            assert product.gender in (look["gender"], "unisex")
        combos.add((look["market"], look["gender"]))
    assert combos == {(m, g) for m in ("IN", "US", "JP") for g in ("women", "men")}
    assert any(len(look["products"]) >= 4 for look in truth.values())


def test_a_worn_garment_shows_its_product_colour(served_sample):
    """The look's pixels in a garment's region include the product's colour (drawn by draw_garment)."""
    from looksync.sample.drawing import look_box
    from looksync.taxonomy import get_taxonomy

    manifest = served_sample.manifest
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    products = {r.product.product_id: r.product for rows in served_sample.rows.values() for r in rows if r.product}
    look_id, look = next(iter(truth.items()))
    product = products[look["products"]["footwear"]]
    reference = get_taxonomy().colours[product.colours[0]]
    with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
        region = image.convert("RGB").crop(look_box(product.category))
        near = [px for px in region.getdata() if sum(abs(a - b) for a, b in zip(px, reference, strict=True)) <= 40]
    assert len(near) > 100
