"""Where each layer is read from (layout slots or the CLIP box search) and the look kNN query that
blends the layer's text query with its crop."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.taxonomy import DEFAULT_TAXONOMY_PATH, get_taxonomy, load_taxonomy
from looksync.index.factory import open_index
from looksync.search.regions import CANDIDATE_BOXES, LayoutRegionFinder, pixel_boxes, slot_fraction
from tests.serving.conftest import alt_boxes, b64

LAYERS = ["topwear", "bottomwear", "footwear"]


def _post(client, look, **params):
    _, data, truth = look
    body = {"image_base64": b64(data), "market": truth["market"], "k": 5, "layers": LAYERS, "rerank": "off", **params}
    resp = client.post("/v1/looks/search", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _image(look) -> Image.Image:
    return Image.open(io.BytesIO(look[1])).convert("RGB")


def test_slot_fraction_widens_and_clips():
    assert slot_fraction((0.2, 0.2, 0.6, 0.4), margin=0.5) == pytest.approx((0.1, 0.15, 0.7, 0.45))
    assert slot_fraction((0.0, 0.9, 0.5, 1.0), margin=0.5) == pytest.approx((0.0, 0.875, 0.625, 1.0))


def test_layout_regions_are_the_layer_slots(built_catalog, look):
    image = _image(look)
    finder = LayoutRegionFinder(built_catalog.encoder)
    regions = finder.find(image, {layer: layer for layer in LAYERS})
    taxonomy = get_taxonomy()
    expected = pixel_boxes(image.size, [slot_fraction(taxonomy.layers[layer].slot) for layer in LAYERS])
    assert [regions[layer].box for layer in LAYERS] == expected
    crops = built_catalog.encoder.encode_images([image.crop(box) for box in expected])
    for layer, vector in zip(LAYERS, crops, strict=True):
        assert float(regions[layer].vector @ vector) == pytest.approx(1.0, abs=1e-4)


def test_layers_without_a_slot_fall_back_to_the_box_search(built_catalog, look, tmp_path):
    text = DEFAULT_TAXONOMY_PATH.read_text().replace("    slot: [0.3, 0.84, 0.7, 0.96]\n", "")  # footwear's slot
    custom = tmp_path / "taxonomy.yaml"
    custom.write_text(text)
    taxonomy = load_taxonomy(custom)
    assert taxonomy.layers["footwear"].slot is None
    image = _image(look)
    regions = LayoutRegionFinder(built_catalog.encoder, taxonomy=taxonomy).find(
        image, {"footwear": "shoes", "topwear": "a top"}
    )
    assert regions["topwear"].box == pixel_boxes(image.size, [slot_fraction(taxonomy.layers["topwear"].slot)])[0]
    assert regions["footwear"].box in pixel_boxes(image.size, CANDIDATE_BOXES)  # the CLIP-searched candidates


def test_local_queries_are_read_at_the_layout_slots_by_default(make_client, look):
    image = _image(look)
    slots = pixel_boxes(image.size, [slot_fraction(get_taxonomy().layers[layer].slot) for layer in LAYERS])
    body = _post(make_client(None), look)
    assert body["query_source"] == "local"
    assert {layer["layer"]: tuple(layer["region"]) for layer in body["layers"]} == dict(zip(LAYERS, slots, strict=True))
    # the CLIP box search reads them at candidate boxes instead
    searched = _post(make_client(None, region_finder="clip_boxes"), look)
    candidates = pixel_boxes(image.size, CANDIDATE_BOXES)
    assert all(tuple(layer["region"]) in candidates for layer in searched["layers"])


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_look_knn_query_blends_the_text_query_with_the_crop(make_client, built_catalog, look, weight):
    """Each layer's kNN query is normalise((1 - w) * text + w * crop): the scores returned are the
    cosines of that vector with the products' stored image vectors."""
    body = _post(make_client(None, look_crop_weight=weight), look)
    image = _image(look)
    encoder = built_catalog.encoder
    index = open_index(built_catalog.settings)
    for layer in body["layers"]:
        assert layer["products"], layer["layer"]
        text = encoder.encode_texts([layer["query"]])[0]
        boxes = [tuple(layer["region"]), *alt_boxes(image, layer["layer"])]
        queries = []
        for crop in encoder.encode_images([image.crop(box) for box in boxes]):
            query = (1 - weight) * text + weight * crop
            queries.append(query / np.linalg.norm(query))
        if weight == 0:
            queries = queries[:1]
        stored = index.vectors([p["product_id"] for p in layer["products"]])
        for p in layer["products"]:
            # a layer with other extents (bottomwear: short and long) scores each product's best match
            expected = max(float(stored[p["product_id"]] @ q) for q in queries)
            assert p["score"] == pytest.approx(expected, abs=2e-3), (layer["layer"], weight)
    assert any(alt_boxes(image, layer["layer"]) for layer in body["layers"])  # the merge was exercised
