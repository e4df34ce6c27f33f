"""The local query generator on looks sent without hints: the crops embedded for the detection heads are
reused for the layers it searches, so each crop of the look goes through the model once, in one batch."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from looksync.search.detection import DetectionHeads, LogisticHead

PRESENT = ("topwear", "bottomwear", "bag")  # bottomwear and bag have other extents (alt_slots, pose extents)


class CountingEncoder:
    """An encoder that counts each distinct image it is asked to embed (by its pixels) and its batches."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.embedded: Counter[str] = Counter()
        self.batches = 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_images(self, images, batch_size=None):
        self.batches += 1
        self.embedded.update(hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest() for image in images)
        return self._encoder.encode_images(images, batch_size=batch_size)


def noise_look() -> Image.Image:
    """Noise, so that every box of the look crops different pixels."""
    return Image.fromarray(np.random.default_rng(7).integers(0, 256, (200, 120, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_encoder():
    from embeddings import load_encoder

    return load_encoder("LookSync-Tiny", "random:0", device="cpu")


@pytest.fixture(params=["layout", "pose"])
def placed(request) -> tuple:
    """A placer and a look: the layout slots on noise, and the pose finder on a generated sample look (its
    other extents: the knees, the bag in either hand, the wrists; every extent kept, even where the look shows
    which side holds the bag or that the garment runs past the knees)."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.regions import layout_placement

    if request.param == "layout":
        taxonomy = get_taxonomy()
        return (lambda look, layers: layout_placement(taxonomy, look.size, layers)), noise_look()
    from looksync.search.pose import PoseRegionFinder

    image, _ = request.getfixturevalue("sample_look")
    return PoseRegionFinder(None, estimator=request.getfixturevalue("blazepose"), pick_side=False, pick_length=False).place, image


@pytest.fixture
def generator(tiny_encoder, placed):
    """The local generator with heads that find ``PRESENT`` (where placed) and read men."""
    from embeddings.zeroshot import ZeroShot
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.querygen import LocalQueryGenerator

    taxonomy = get_taxonomy()
    dim = 2 * tiny_encoder.dim
    heads = DetectionHeads(
        tiny_encoder.model_id, "test",
        presence={layer: LogisticHead(np.zeros(dim), 4.0 if layer in PRESENT else -4.0) for layer in taxonomy.layers},
        gender=LogisticHead(np.zeros(dim), 4.0),
    )  # fmt: skip
    return LocalQueryGenerator(CountingEncoder(tiny_encoder), ZeroShot(tiny_encoder, taxonomy), taxonomy,
                               placer=placed[0], heads=heads)  # fmt: skip


@pytest.mark.parametrize("hints", [{}, {"gender": "men"}, {"layers": list(PRESENT)}], ids=["none", "gender", "layers"])
def test_a_look_without_hints_embeds_each_crop_once_and_asks_the_same_queries(generator, placed, hints):
    from looksync.search.detection import head_and_shoulders_box

    look = placed[1]
    placement = generator.placer(look, list(generator.taxonomy.layers))
    alts = sum(len(placement.boxes[layer]) - 1 for layer in PRESENT)
    assert all(layer in placement.boxes for layer in PRESENT) and alts >= 2

    out = generator.generate(look, **hints)
    assert [q.layer for q in out.layers] == list(PRESENT) and out.gender == "men"
    assert out.timings_ms["detection"] > 0
    embedded = generator.encoder.embedded
    assert set(embedded.values()) == {1}  # no crop twice
    # one batch: every placed layer's main box and other extents, the head and shoulders, the whole look
    boxes = {box for layer_boxes in placement.boxes.values() for box in layer_boxes}
    boxes |= {head_and_shoulders_box(placement.boxes), (0, 0, *look.size)}
    assert generator.encoder.batches == 1 and len(embedded) == len(boxes)

    # the same look with both hints given: no heads, every searched crop embedded by the generator itself
    embedded.clear()
    hinted = generator.generate(look, layers=list(PRESENT), gender="men")
    assert len(embedded) == len(PRESENT) + alts
    for query, expected in zip(out.layers, hinted.layers, strict=True):
        read = (query.layer, query.query, query.category, query.box, query.attributes)
        assert read == (expected.layer, expected.query, expected.category, expected.box, expected.attributes)
        assert query.confidence == pytest.approx(expected.confidence, abs=1e-5)
        np.testing.assert_allclose(query.crop_vector, expected.crop_vector, atol=1e-5)
        if expected.alt_crop_vectors is None:
            assert query.alt_crop_vectors is None
        else:
            np.testing.assert_allclose(query.alt_crop_vectors, expected.alt_crop_vectors, atol=1e-5)
    assert sum(q.alt_crop_vectors is not None for q in out.layers) >= 2


def test_box_crops_embeds_only_the_boxes_not_yet_embedded(tiny_encoder):
    from looksync.search.regions import box_crops

    look, encoder = noise_look(), CountingEncoder(tiny_encoder)
    boxes = [(0, 0, 60, 100), (20, 40, 120, 200), (0, 0, 60, 100), (10, 10, 50, 50)]
    first = box_crops(look, encoder, boxes[:2])
    assert sum(encoder.embedded.values()) == 2
    again = box_crops(look, encoder, boxes, dict(zip(first.boxes, first.vectors, strict=True)))
    assert sum(encoder.embedded.values()) == 3 and len(encoder.embedded) == 3  # only (10, 10, 50, 50), once
    assert again.boxes == boxes and len(again.crops) == 4 and again.vectors.dtype == np.float32
    fresh = box_crops(look, tiny_encoder, boxes)
    np.testing.assert_allclose(again.vectors, fresh.vectors, atol=1e-5)
    np.testing.assert_array_equal(again.vectors[0], again.vectors[2])
    batches = encoder.batches
    none = box_crops(look, encoder, [])
    assert none.vectors.shape == (0, tiny_encoder.dim) and none.vectors.dtype == np.float32
    assert encoder.batches == batches  # no boxes: no call to the model
