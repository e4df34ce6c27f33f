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
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample.drawing import look_box

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


def test_ground_truth_records_how_much_of_each_garment_is_in_view(served_sample):
    """``visible``: per layer, the share of the garment's pixels that nothing drawn after it covers (later
    layers, long hair falling over the shoulders), on the figure's body shape as recorded."""
    import numpy as np
    from PIL import Image as PILImage

    from looksync.sample.drawing import drawing_data, garment_mask, look_box
    from looksync.sample.figure import OVER_HAIR, FigureTraits, bag_box, draw_hair_over, shape_body

    manifest = served_sample.manifest
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    products = {r.product.product_id: r.product for rows in served_sample.rows.values() for r in rows if r.product}
    order = drawing_data()["look_image"]["draw_order"]
    size = tuple(drawing_data()["look_image"]["size"])
    for look_id, look in truth.items():
        figure = look["figure"]
        assert figure["gender"] == look["gender"], look_id
        traits = FigureTraits(figure["gender"], (0, 0, 0), (0, 0, 0), figure["hair"], figure["beard"],
                              {row: figure[row] for row in ("shoulders", "waist", "hips")})  # fmt: skip
        assert set(look["visible"]) == set(look["products"]), look_id
        assert all(0.0 <= share <= 1.0 for share in look["visible"].values())
        last = max(look["products"], key=order.index)
        if last in (*OVER_HAIR, "bag") or figure["hair"] in ("short", "crew", "side_part"):
            assert look["visible"][last] == 1.0, look_id  # drawn last, no long hair over it
        masks = {}
        for layer, pid in look["products"].items():
            category = products[pid].category
            if layer == "bag":  # drawn at the hip after the body is shaped
                masks[layer] = np.asarray(garment_mask(category, bag_box(traits, category, size[0]), size)) > 0
            else:
                (masks[layer],) = shape_body([np.asarray(garment_mask(category, look_box(category), size)) > 0], traits)
        locks = PILImage.new("L", size, 0)
        draw_hair_over(locks, traits, "flat", paint=255)
        (hair,) = shape_body([np.asarray(locks) > 0], traits)
        for layer, mask in masks.items():  # recomputed independently: covered by what is drawn after it
            later = [m for other, m in masks.items() if order.index(other) > order.index(layer)]
            if layer not in OVER_HAIR:
                later.append(hair)
            covered = np.any(later, axis=0) if later else np.zeros_like(mask)
            assert look["visible"][layer] == round(float((mask & ~covered).sum() / mask.sum()), 3), (look_id, layer)
    # a top under outer topwear is mostly hidden: the sample has such looks
    assert any(
        look["visible"]["topwear"] < 0.5 for look in truth.values() if {"topwear", "outer_topwear"} <= set(look["products"])
    )
