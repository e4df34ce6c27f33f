"""The figure of a sample look shows its gender, as a photo of a woman or a man does: a simple detector
trained on figure crops of some looks tells the gender of other looks, framed in ways it never saw."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from looksync.sample.drawing import DrawingError
from looksync.sample.figure import GENDERS, draw_traits, dress_figure
from looksync.sample.framing import ASPECTS, POSE_FAMILIES, VARIATION, Framing, frame_look
from looksync.search.detection import fit_logistic
from tests.sample.outfits import full_outfit, outfits


def _figure_crop(image: Image.Image, side: tuple[int, int] = (20, 36)) -> np.ndarray:
    """The figure's silhouette (what differs from the plain backdrop), cropped to it and scaled to
    ``side``: a detector that sees shape only, not colours or garments' patterns."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    corner = pixels[0, 0]
    figure = np.abs(pixels - corner).sum(axis=2) > 40
    ys, xs = np.nonzero(figure)
    crop = figure[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8) * 255
    small = Image.fromarray(crop).resize(side, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64).ravel() / 255.0


def _framing(rng: random.Random, heldout: bool) -> Framing:
    """A full-body framing on a plain backdrop: the training one never uses a held-out pose, aspect or
    style; the held-out one always uses the held-out pose and style."""
    held = VARIATION["heldout"]
    poses = [p for p in POSE_FAMILIES if p != held["pose"]]
    aspects = [a for a in ASPECTS if a != held["aspect"]]
    return Framing(
        pose=held["pose"] if heldout else rng.choice(poses),
        aspect=rng.choice(list(ASPECTS)) if heldout else rng.choice(aspects),
        crop="full",
        style=held["style"] if heldout else "flat",
        background="plain",
        mirrored=rng.random() < 0.5,
        scale=rng.uniform(0.6, 1.0),
        rotation=rng.uniform(-6, 6),
        position=(rng.random(), rng.random()),
    )


def _accuracy(train: list[tuple[np.ndarray, int]], test: list[tuple[np.ndarray, int]]) -> float:
    x, y = np.array([f for f, _ in train]), np.array([g for _, g in train])
    head = fit_logistic(x, y, l2=1e-2, steps=600)
    guesses = head.prob(np.array([f for f, _ in test])) >= 0.5
    return float(np.mean(guesses == np.array([g for _, g in test])))


def test_a_detector_trained_on_figure_crops_tells_the_gender_of_held_out_looks():
    """Fitted on 48 looks in training framings (flat figure, no held-out pose or aspect), scored on 32
    looks posed and drawn in the held-out pose and figure style. With the same figure for both genders
    (the sample before figures were gendered) this is near chance: only the garments differ."""
    rng = random.Random(5)
    wardrobes = {gender: outfits(gender, 24) for gender in GENDERS}  # its gender's garments or unisex ones

    def looks(n: int, heldout: bool) -> list[tuple[np.ndarray, int]]:
        out = []
        for j in range(n):
            gender = GENDERS[j % 2]
            products = wardrobes[gender][j // 2 % len(wardrobes[gender])]
            framed = frame_look(products, _framing(rng, heldout), random.Random(f"figure:{heldout}:{j}"), gender)
            out.append((_figure_crop(framed.image), GENDERS.index(gender)))
        return out

    assert _accuracy(looks(48, False), looks(32, True)) >= 0.9


def test_women_and_men_differ_in_hair_and_body_shape():
    """Same outfit, same seed: the women's figure has hair falling to the shoulders and is narrower at the
    shoulders and wider at the hips than the men's."""
    products = full_outfit()
    products.pop("headwear", None)
    products.pop("bag", None)
    dressed = {}
    for gender in GENDERS:
        traits = draw_traits(random.Random(1), gender)
        dressed[gender] = dress_figure(products, traits, "flat")
        assert traits.gender == gender and traits.to_json()["gender"] == gender

    def width(gender: str, row: int) -> int:
        xs = np.nonzero(dressed[gender].label[row] > 0)[0]
        return int(xs.max() - xs.min())

    assert width("men", 160) > width("women", 160) * 1.1  # shoulders (sleeves included)
    assert width("women", 340) > width("men", 340) * 1.05  # hips
    # hair beside the face, below the chin: long or shoulder-length for every women's style
    for style in ("long", "wavy", "shoulder"):
        from dataclasses import replace

        traits = replace(draw_traits(random.Random(1), "women"), hair=style)
        women = dress_figure(products, traits, "flat")
        assert (women.label[130:150, 130:175] == 1).sum() > 100, style
    men = dressed["men"]
    assert (men.label[130:150, 130:175] == 1).sum() == 0


def test_a_figure_is_drawn_only_for_a_known_gender_and_hair_style():
    with pytest.raises(DrawingError, match="gender 'kids'"):
        draw_traits(random.Random(0), "kids")
    from dataclasses import replace

    traits = replace(draw_traits(random.Random(0), "men"), hair="long")  # a women's style on a man
    with pytest.raises(DrawingError, match="hair style 'long'"):
        dress_figure({}, traits, "flat")
