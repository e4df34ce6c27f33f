"""How a look's crops are fitted to the CLIP model's square input (``Settings.look_crop_fit``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from looksync.search.regions import CROP_FITS, CropFitEncoder, box_crops, fit_crop, look_encoder

RED, GREEN, BLUE, GREY = (220, 20, 20), (20, 200, 20), (20, 20, 220), (128, 128, 128)


def _tall_crop() -> Image.Image:
    """40 x 80: a red top quarter, a green middle half, a blue bottom quarter (a dress from shoulders to hem)."""
    pixels = np.zeros((80, 40, 3), dtype=np.uint8)
    pixels[:20], pixels[20:60], pixels[60:] = RED, GREEN, BLUE
    return Image.fromarray(pixels)


def _open_clip_reads(image: Image.Image, side: int = 32) -> Image.Image:
    """What open_clip's preprocessing keeps of an image: its shorter side resized to ``side``, the centre square."""
    w, h = image.size
    scale = side / min(w, h)
    resized = image.resize((round(w * scale), round(h * scale)))
    left, top = (resized.width - side) // 2, (resized.height - side) // 2
    return resized.crop((left, top, left + side, top + side))


def _near(pixel, colour) -> bool:
    return max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) < 30  # resampling blurs the edges a little


def test_centre_reads_only_a_tall_crops_middle():
    seen = _open_clip_reads(fit_crop(_tall_crop(), "centre"))
    assert _near(seen.getpixel((16, 0)), GREEN) and _near(seen.getpixel((16, 31)), GREEN)  # the top and bottom are lost


def test_squash_keeps_a_tall_crops_top_and_bottom():
    fitted = fit_crop(_tall_crop(), "squash")
    assert fitted.size == (80, 80)
    seen = _open_clip_reads(fitted)
    assert _near(seen.getpixel((16, 1)), RED) and _near(seen.getpixel((16, 30)), BLUE)
    assert _near(seen.getpixel((16, 16)), GREEN)


def test_pad_keeps_the_crop_whole_and_unstretched_on_its_border_colour():
    pixels = np.full((30, 90, 3), GREY, dtype=np.uint8)  # a wide crop (both feet): grey ground, a shoe at each end
    pixels[10:25, 2:12], pixels[10:25, 78:88] = RED, BLUE
    fitted = fit_crop(Image.fromarray(pixels), "pad")
    assert fitted.size == (90, 90)
    out = np.asarray(fitted)
    assert (out[:30] == GREY).all() and (out[60:] == GREY).all()  # filled with the border's colour
    assert (out[30:60] == pixels).all()  # the crop itself, centred, pixel for pixel
    seen = _open_clip_reads(fitted, 90)
    assert seen.getpixel((5, 45)) == RED and seen.getpixel((84, 45)) == BLUE  # both shoes read


def test_a_square_crop_is_read_the_same_by_every_fit():
    square = Image.new("RGB", (50, 50), RED)
    assert all(fit_crop(square, fit) is square for fit in CROP_FITS)
    with pytest.raises(ValueError, match="crop fit 'stretch': not one of centre, squash, pad"):
        fit_crop(square, "stretch")


class RecordingEncoder:
    """Records the images it is asked to encode; one constant vector each."""

    model_id, dim = "rec@0", 4

    def __init__(self):
        self.seen: list = []

    def encode_images(self, images, batch_size=None):
        self.seen.extend(images)
        return np.ones((len(images), self.dim), dtype=np.float32) / 2


def test_the_fit_reaches_the_encoder_for_every_crop_and_catalog_files_pass_as_they_are():
    raw = RecordingEncoder()
    assert look_encoder(raw, "centre") is raw  # today's behaviour: nothing in between
    encoder = look_encoder(raw, "squash")
    assert isinstance(encoder, CropFitEncoder) and encoder.model_id == "rec@0" and encoder.dim == 4
    look = Image.new("RGB", (100, 200), GREY)
    crops = box_crops(look, encoder, [(0, 0, 40, 160), (10, 150, 100, 190)])
    assert [image.size for image in raw.seen] == [(160, 160), (90, 90)]
    assert [crop.size for crop in crops.crops] == [(40, 160), (90, 40)]  # the crops as cut; only the model's input is fitted
    raw.seen.clear()
    encoder.encode_images(["catalog/p1.jpg", b"bytes"])
    assert raw.seen == ["catalog/p1.jpg", b"bytes"]


def test_the_engine_crops_through_the_settings_fit_and_refuses_heads_trained_on_another(tmp_path):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.detection import DetectionHeads, DetectionHeadsError, LogisticHead
    from looksync.search.engine import SearchEngine
    from looksync.settings import Settings

    raw = RecordingEncoder()
    zeroshot = object()  # the engine builds no zero-shot heads of its own here
    settings = Settings(data_dir=tmp_path, region_finder="layout", look_crop_fit="pad")
    engine = SearchEngine(settings, raw, open_index(settings), MemoryCache(), zeroshot=zeroshot)  # type: ignore[arg-type]
    for encoder in (engine.region_finder.encoder, engine.local_query_generator.encoder, engine.reranker.encoder):
        assert isinstance(encoder, CropFitEncoder) and encoder.crop_fit == "pad"
    assert engine.encoder is raw  # the catalog side (product images, texts) is not fitted

    heads = DetectionHeads("rec@0", "layout", {}, LogisticHead(np.zeros(2), 0.0), meta={"crop_fit": "squash"})
    path = heads.save(tmp_path / "heads.npz")
    with pytest.raises(DetectionHeadsError, match="trained on 'squash' crops .* the engine fits crops by 'pad'"):
        SearchEngine(settings.model_copy(update={"detection_heads": path}), raw, open_index(settings), MemoryCache(),
                     zeroshot=zeroshot)  # type: ignore[arg-type]  # fmt: skip
    DetectionHeads.load(path).check("rec@0", "layout", "squash")
    # heads from before the setting were trained on centre crops
    DetectionHeads("rec@0", "layout", {}, LogisticHead(np.zeros(2), 0.0)).check("rec@0", "layout")
