"""draw_garment: one distinct silhouette per standard category, coloured and patterned."""

from __future__ import annotations

import pytest
from PIL import Image

from looksync.catalog.taxonomy import get_taxonomy
from looksync.sample import draw_garment
from looksync.sample.drawing import DrawingError

BOX = (10, 10, 150, 150)


def drawn(category: str, colour=(200, 30, 40), pattern: str = "solid") -> Image.Image:
    canvas = Image.new("RGB", (160, 160), (255, 255, 255))
    draw_garment(canvas, category, colour, pattern, BOX)
    return canvas


def footprint(image: Image.Image) -> bytes:
    return image.convert("L").point(lambda v: 255 if v < 250 else 0).tobytes()


def test_every_category_has_its_own_silhouette():
    prints = {category: footprint(drawn(category)) for category in get_taxonomy().categories}
    assert len(set(prints.values())) == len(prints)
    box_area = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])
    for category, mask in prints.items():
        covered = mask.count(255)
        assert 0.02 * box_area < covered <= box_area, category


def test_garments_stay_inside_their_box():
    image = drawn("coat")
    outside = [
        image.getpixel((x, y))
        for x in range(160)
        for y in range(160)
        if not (BOX[0] <= x < BOX[2] and BOX[1] <= y < BOX[3])
    ]
    assert set(outside) == {(255, 255, 255)}


@pytest.mark.parametrize("pattern", ["striped", "checked", "dotted"])
def test_patterns_change_the_fill_but_keep_the_colour(pattern):
    solid, patterned = drawn("t_shirt"), drawn("t_shirt", pattern=pattern)
    assert solid.tobytes() != patterned.tobytes()
    assert footprint(solid) == footprint(patterned)
    assert patterned.getcolors(10_000) and any(c == (200, 30, 40) for _, c in patterned.getcolors(10_000))


def test_unknown_category_or_pattern_is_a_clear_error():
    with pytest.raises(DrawingError, match="kimono"):
        drawn("kimono")
    with pytest.raises(DrawingError, match="paisley"):
        drawn("shirt", pattern="paisley")
