"""Contrastive fine-tuning of CLIP on catalog pairs (image, caption), as FashionCLIP-style models are made.

Pairs come from a catalog: each valid product's image with a caption built from its standard
attributes (gender, colour, pattern, category, material) in several phrasings, so the text tower
learns the words the query generator and the zero-shot prompts use. open_clip's model classes and
``ClipLoss`` do the work; a held-out split measures text->image Recall@k before and after.

Images are augmented the way look crops differ from packshots: random scale/position inside the
frame and random background colours behind the garment (colours of the garment itself are never
jittered: colour is what the model must learn).

On-figure crops (``OnFigure``, on by default) close the gap between packshots and looks: each
training garment is cut out of its packshot (white background) and pasted, with garments of other
layers from the training split, on a plain mannequin at its layer's ``slot`` in the taxonomy (copy-paste
augmentation); the crop is the region-finder candidate box that best covers it, or a jittered box
around it. Each step then trains three contrastive pairings: packshot-caption, crop-caption and
crop-packshot, the last being what the crop rerank and the crop term of the look query use.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from looksync.catalog.images import FetchError, FetchPolicy, check_image_bytes
from looksync.catalog.schema import Product
from looksync.catalog.taxonomy import Taxonomy, get_taxonomy
from looksync.search.querygen import compose_query
from looksync.search.regions import box_iou

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

# Bumped when what training does changes, so a checkpoint cached for a sample (``make demo``) is not
# reused across recipes. 2: on-figure crops and the crop-caption / crop-packshot losses.
RECIPE_VERSION = 2

CAPTION_TEMPLATES = (
    "{query}",
    "a photo of a {query}",
    "{query}, {material}",
    "a photo of a {colour} {category}",
    "a photo of a {colour} garment",
    "a photo of a {pattern} garment",
    "a photo of a {category}",
    "a photo of {gender} clothing",
    "a photo of {layer_prompt}",
    "{title}",
)


@dataclass
class Pair:
    product: Product
    image_path: Path


@dataclass
class FinetuneConfig:
    model: str = "LookSync-Tiny"
    init_weights: str = "random:0"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    holdout: float = 0.15
    seed: int = 0
    threads: int | None = None
    on_figure: bool = True  # add on-figure crops (crop-caption and crop-packshot losses)
    # on-figure looks framed like the varied sample looks (mirrored, turned, small, on gradient or textured
    # backgrounds) and cropped loosely, as the pose finder's padded regions are
    figure_variety: bool = False


@dataclass
class FinetuneReport:
    checkpoint: str
    model_id: str
    config: dict
    train_pairs: int
    heldout_pairs: int
    seconds: float
    loss_curve: list[float] = field(default_factory=list)  # mean loss per epoch
    recall_before: dict[str, float] = field(default_factory=dict)
    recall_after: dict[str, float] = field(default_factory=dict)
    # held-out on-figure crop -> its own packshot among the held-out packshots (image -> image)
    crop_recall_before: dict[str, float] = field(default_factory=dict)
    crop_recall_after: dict[str, float] = field(default_factory=dict)


def sample_pairs(sample_root: Path) -> list[Pair]:
    """Valid products of a generated sample with their image files (faulty rows are skipped)."""
    from looksync.catalog.vendors import load_vendor_config, read_feed
    from looksync.sample import SampleManifest

    manifest = SampleManifest.load(sample_root)
    base = urlsplit(manifest.image_base_url).path.rstrip("/")
    policy = FetchPolicy()
    pairs = []
    skipped: dict[str, int] = {}
    for vendor, feed in manifest.feeds.items():
        for row in read_feed(load_vendor_config(vendor), feed):
            if row.product is None:
                continue
            rel = urlsplit(row.product.image_urls[0]).path[len(base) :].lstrip("/")
            path = Path(manifest.root) / rel
            if not path.is_file():
                skipped["missing image"] = skipped.get("missing image", 0) + 1
                continue
            try:  # the same check ingestion makes: a planted fault (an HTML page, a truncated file) is no pair
                check_image_bytes(path.read_bytes(), policy, str(path))
            except FetchError as exc:
                skipped[exc.reason.value] = skipped.get(exc.reason.value, 0) + 1
                continue
            pairs.append(Pair(row.product, path))
    if skipped:
        log.info("sample pairs: %d kept, skipped %s", len(pairs), skipped)
    return pairs


def canonical_caption(product: Product, taxonomy: Taxonomy | None = None) -> str:
    """The caption a query generator would write for this product."""
    taxonomy = taxonomy or get_taxonomy()
    colour = product.colours[0] if product.colours else None
    return compose_query(taxonomy, product.category, product.gender, colour, product.pattern)


def random_caption(product: Product, rng: random.Random, taxonomy: Taxonomy | None = None) -> str:
    taxonomy = taxonomy or get_taxonomy()
    fields = {
        "query": canonical_caption(product, taxonomy),
        "material": product.material or "fabric",
        "colour": product.colours[0] if product.colours else "coloured",
        "pattern": product.pattern or "solid",
        "category": taxonomy.categories[product.category].label,
        "gender": taxonomy.genders[product.gender],
        "title": product.title,
        "layer_prompt": taxonomy.layers[product.layer].prompt,
    }
    return rng.choice(CAPTION_TEMPLATES).format(**fields)


def _garment_mask(rgb: Image) -> np.ndarray:
    """Pixels of a packshot that are garment, not its white background."""
    return ~np.all(np.asarray(rgb) > 235, axis=2)


def _augment(image: Image, rng: random.Random, size: int) -> Image:
    """Garment on a random background at a random scale and position (look crops look like this)."""
    from PIL import Image as PILImage

    rgb = image.convert("RGB")
    mask = PILImage.fromarray((_garment_mask(rgb) * 255).astype(np.uint8))
    bg = tuple(rng.randint(150, 255) for _ in range(3)) if rng.random() < 0.7 else (255, 255, 255)
    canvas = PILImage.new("RGB", rgb.size, bg)
    canvas.paste(rgb, (0, 0), mask)
    scale = rng.uniform(0.55, 1.0)
    w, h = canvas.size
    cw, ch = int(w * scale), int(h * scale)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = canvas.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:  # a garment cut by the frame, as region boxes often are
        pad = PILImage.new("RGB", (int(cw * rng.uniform(1.0, 1.3)), int(ch * rng.uniform(1.0, 1.3))), bg)
        pad.paste(crop, (rng.randint(0, pad.width - cw), rng.randint(0, pad.height - ch)))
        crop = pad
    return crop.resize((size, size))


# Garments are pasted body first, then what is worn over them, then accessories.
_PASTE_ORDER = ("footwear", "bottomwear", "one_piece", "topwear", "outer_topwear", "other_accessory",
                "jewellery_watch", "bag", "headwear", "eyewear")  # fmt: skip
# Chance that a companion garment of each layer is worn with the one being trained on.
_COMPANION_RATE = {"footwear": 0.8, "topwear": 0.7, "bottomwear": 0.7, "outer_topwear": 0.3}
_DEFAULT_COMPANION_RATE = 0.25
_SKIN_TONES = ((241, 208, 180), (224, 172, 130), (198, 134, 92), (141, 85, 54), (92, 58, 38))
_MANNEQUIN = (  # (shape, fractions) of a plain front-facing figure; "hair" and "skin" parts
    ("skin", "ellipse", (0.40, 0.03, 0.60, 0.17)),
    ("hair", "ellipse", (0.40, 0.02, 0.60, 0.08)),
    ("skin", "rect", (0.46, 0.15, 0.54, 0.20)),
    ("skin", "rect", (0.30, 0.19, 0.70, 0.50)),
    ("skin", "rect", (0.20, 0.20, 0.29, 0.55)),
    ("skin", "rect", (0.71, 0.20, 0.80, 0.55)),
    ("skin", "rect", (0.37, 0.49, 0.49, 0.92)),
    ("skin", "rect", (0.51, 0.49, 0.63, 0.92)),
)


def _cutout(image: Image) -> Image:
    """The garment of a packshot as RGBA, cropped to its pixels (white background made transparent)."""
    from PIL import Image as PILImage

    rgb = image.convert("RGB")
    garment = _garment_mask(rgb)
    rgba = rgb.copy()
    rgba.putalpha(PILImage.fromarray((garment * 255).astype(np.uint8)))
    ys, xs = np.nonzero(garment)
    return rgba.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)) if len(xs) else rgba


class OnFigure:
    """On-figure training crops: copy-paste of catalog garments onto a plain mannequin at their layer slots."""

    def __init__(self, pairs: list[Pair], images: dict[int, Image], taxonomy: Taxonomy | None = None,
                 canvas: tuple[int, int] = (192, 320), variety: bool = False):  # fmt: skip
        from looksync.search.regions import pixel_boxes

        self.variety = variety
        self.taxonomy = taxonomy or get_taxonomy()
        self.canvas = canvas
        self.candidates = pixel_boxes(canvas)  # the boxes the region finder chooses from
        self.cutouts = {id(p): _cutout(images[id(p)]) for p in pairs if self.slot(p.product.layer)}
        self.by_layer: dict[str, list[Pair]] = {}
        for p in pairs:
            if id(p) in self.cutouts:
                self.by_layer.setdefault(p.product.layer, []).append(p)

    def slot(self, layer: str) -> tuple[float, float, float, float] | None:
        return self.taxonomy.layers[layer].slot if layer in self.taxonomy.layers else None

    def covers(self, pair: Pair) -> bool:
        return id(pair) in self.cutouts

    def _companions(self, pair: Pair, rng: random.Random) -> dict[str, Pair]:
        worn = {pair.product.layer: pair}
        for layer, options in self.by_layer.items():
            if layer in worn or rng.random() >= _COMPANION_RATE.get(layer, _DEFAULT_COMPANION_RATE):
                continue
            if "one_piece" in worn and layer in ("topwear", "bottomwear"):
                continue
            if layer == "one_piece" and {"topwear", "bottomwear"} & set(worn):
                continue
            worn[layer] = rng.choice(options)
        return worn

    def _box(self, layer: str, rng: random.Random) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.slot(layer)  # type: ignore[misc]
        w, h = self.canvas
        sx, sy = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
        cx, cy = (x0 + x1) / 2 + rng.uniform(-0.03, 0.03), (y0 + y1) / 2 + rng.uniform(-0.02, 0.02)
        hw, hh = (x1 - x0) * sx / 2, (y1 - y0) * sy / 2
        return (round((cx - hw) * w), round((cy - hh) * h), max(round((cx + hw) * w), round((cx - hw) * w) + 2),
                max(round((cy + hh) * h), round((cy - hh) * h) + 2))  # fmt: skip

    def look(self, pair: Pair, rng: random.Random) -> tuple[Image, tuple[int, int, int, int]]:
        """A composed look wearing ``pair``'s garment, and the box it was pasted into."""
        from PIL import Image as PILImage
        from PIL import ImageDraw

        w, h = self.canvas
        look = PILImage.new("RGB", self.canvas, tuple(rng.randint(200, 250) for _ in range(3)))
        draw = ImageDraw.Draw(look)
        colours = {"skin": rng.choice(_SKIN_TONES), "hair": tuple(rng.randint(10, 120) for _ in range(3))}
        for part, shape, (fx0, fy0, fx1, fy1) in _MANNEQUIN:
            corners = (fx0 * w, fy0 * h, fx1 * w, fy1 * h)
            (draw.ellipse if shape == "ellipse" else draw.rectangle)(corners, fill=colours[part])
        worn = self._companions(pair, rng)
        target_box = None
        order = [layer for layer in _PASTE_ORDER if layer in worn] + [
            layer for layer in worn if layer not in _PASTE_ORDER
        ]
        for layer in order:
            box = self._box(layer, rng)
            garment = self.cutouts[id(worn[layer])].resize((box[2] - box[0], box[3] - box[1]))
            look.paste(garment, box[:2], garment)
            if worn[layer] is pair:
                target_box = box
        return look, target_box  # type: ignore[return-value]

    def _vary(self, look: Image, box: tuple[int, int, int, int], rng: random.Random) -> tuple[Image, tuple[int, int, int, int]]:
        """The look framed like a varied sample look: another background behind the figure, mirrored,
        turned a little, shown small (fewer pixels); the garment's box follows."""
        from PIL import Image as PILImage

        from looksync.sample.framing import BACKGROUNDS, background

        w, h = look.size
        pixels = np.asarray(look)
        figure = np.any(pixels != pixels[0, 0], axis=2)  # the mannequin's canvas is one colour
        backdrop = background((w, h), rng.choice(BACKGROUNDS), rng)
        backdrop.paste(look, (0, 0), PILImage.fromarray((figure * 255).astype(np.uint8)))
        look = backdrop
        if rng.random() < 0.5:
            look = look.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
            box = (w - box[2], box[1], w - box[0], box[3])
        angle = rng.uniform(-8, 8)
        look = look.rotate(angle, resample=PILImage.Resampling.BILINEAR, fillcolor=tuple(pixels[0, 0].tolist()))
        corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]], dtype=float)
        a = np.radians(angle)  # PIL turns counter-clockwise about the centre
        c, s_ = np.cos(a), np.sin(a)
        centre = np.array([w / 2, h / 2])
        d = corners - centre
        turned = np.stack([d[:, 0] * c + d[:, 1] * s_, -d[:, 0] * s_ + d[:, 1] * c], axis=1) + centre
        box = (max(0, int(turned[:, 0].min())), max(0, int(turned[:, 1].min())),
               min(w, int(np.ceil(turned[:, 0].max()))), min(h, int(np.ceil(turned[:, 1].max()))))  # fmt: skip
        scale = rng.uniform(0.4, 1.0)
        if scale < 0.95:  # a small figure: the garment has fewer pixels
            look = look.resize((max(8, round(w * scale)), max(8, round(h * scale)))).resize((w, h))
        return look, box

    def crop(self, pair: Pair, rng: random.Random, size: int) -> Image:
        look, box = self.look(pair, rng)
        if self.variety:
            look, box = self._vary(look, box, rng)
        if rng.random() < 0.5 and not self.variety:  # what the region finder would pick: the candidate covering it best
            crop_box = max(self.candidates, key=lambda c: box_iou(c, box))
        else:  # a looser box around it
            bw, bh = box[2] - box[0], box[3] - box[1]
            gx, gy = bw * rng.uniform(0.0, 0.5), bh * rng.uniform(0.0, 0.5)
            dx, dy = rng.uniform(-0.5, 0.5) * gx, rng.uniform(-0.5, 0.5) * gy
            crop_box = (round(max(0, box[0] - gx / 2 + dx)), round(max(0, box[1] - gy / 2 + dy)),
                        round(min(look.width, box[2] + gx / 2 + dx)), round(min(look.height, box[3] + gy / 2 + dy)))  # fmt: skip
        return look.crop(crop_box).resize((size, size))


def _image_size(model) -> int:
    """The side of the square images the model's vision tower takes."""
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def _crop_to_packshot_recall(
    encoder, pairs: list[Pair], on_figure: OnFigure, seed: int, ks=(1, 5, 10)
) -> dict[str, float]:
    """Held-out street-to-shop Recall@k: each product's on-figure crop (seeded, so before and after see
    the same crops) must retrieve its own packshot among the held-out packshots."""
    covered = [p for p in pairs if on_figure.covers(p)]
    if not covered:
        return {}
    size = _image_size(encoder.model)
    crops = [on_figure.crop(p, random.Random(f"{seed}:crop:{i}"), size) for i, p in enumerate(covered)]
    sims = encoder.encode_images(crops) @ encoder.encode_images([str(p.image_path) for p in covered]).T
    order = np.argsort(-sims, axis=1)
    return {f"recall@{k}": float(np.mean([i in order[i, :k] for i in range(len(covered))])) for k in ks}


def _text_to_image_recall(encoder, pairs: list[Pair], ks=(1, 5, 10)) -> dict[str, float]:
    """Held-out text->image Recall@k: the canonical caption must retrieve its own product's image.
    Products sharing (category, gender, colour, pattern) count as correct (their captions are identical)."""
    images = encoder.encode_images([str(p.image_path) for p in pairs])
    captions = [canonical_caption(p.product) for p in pairs]
    texts = encoder.encode_texts(captions)
    sims = texts @ images.T
    order = np.argsort(-sims, axis=1)
    out = {}
    for k in ks:
        hits = [any(captions[j] == captions[i] for j in order[i, :k]) for i in range(len(pairs))]
        out[f"recall@{k}"] = float(np.mean(hits))
    return out


def finetune(
    pairs: list[Pair],
    config: FinetuneConfig,
    out_path: Path,
    progress: Callable[[int, int, float], None] | None = None,
) -> FinetuneReport:
    """Train, save a checkpoint loadable through the checkpoint weights source, and report.

    ``progress``, when given, is called after each epoch with (epochs done, epochs, the epoch's mean loss)."""
    import open_clip
    import torch
    from PIL import Image as PILImage

    from embeddings import load_encoder

    if len(pairs) < 10:
        raise ValueError(f"need at least 10 catalog pairs to fine-tune, got {len(pairs)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    n_hold = max(5, int(len(shuffled) * config.holdout))
    heldout, train = shuffled[:n_hold], shuffled[n_hold:]

    encoder = load_encoder(config.model, config.init_weights, device="cpu")
    before = _text_to_image_recall(encoder, heldout)
    model, tokenizer = encoder.model, encoder.tokenizer
    image_size = _image_size(model)
    normalize = open_clip.image_transform(image_size, is_train=False).transforms[-1]  # the model's mean/std
    to_tensor = __import__("torchvision").transforms.functional.to_tensor
    images = {id(p): PILImage.open(p.image_path).convert("RGB") for p in train}
    on_figure = heldout_figure = None
    if config.on_figure:
        on_figure = OnFigure(train, images, variety=config.figure_variety)
        heldout_figure = OnFigure(heldout, {id(p): PILImage.open(p.image_path).convert("RGB") for p in heldout},
                                  variety=config.figure_variety)  # fmt: skip
    crop_before = _crop_to_packshot_recall(encoder, heldout, heldout_figure, config.seed) if heldout_figure else {}

    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay, foreach=True
    )
    steps_per_epoch = max(1, len(train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / config.warmup_steps) * 0.5 * (1 + np.cos(np.pi * min(s, total) / total)),
    )
    start = time.perf_counter()
    curve = []
    model.train()
    for epoch in range(config.epochs):
        rng.shuffle(train)
        losses = []
        for step in range(steps_per_epoch):
            batch = train[step * config.batch_size : (step + 1) * config.batch_size]
            pixels = torch.stack([normalize(to_tensor(_augment(images[id(p)], rng, image_size))) for p in batch])
            tokens = tokenizer([random_caption(p.product, rng) for p in batch])
            if on_figure is None:
                image_features, text_features, logit_scale = model(pixels, tokens)[:3]
                loss = loss_fn(image_features, text_features, logit_scale)
            else:
                crops = torch.stack([
                    normalize(to_tensor(
                        on_figure.crop(p, rng, image_size) if on_figure.covers(p) else _augment(images[id(p)], rng, image_size)
                    ))
                    for p in batch
                ])  # fmt: skip
                features = model.encode_image(torch.cat([pixels, crops]), normalize=True)
                packshot_features, crop_features = features[: len(batch)], features[len(batch) :]
                text_features = model.encode_text(tokens, normalize=True)
                logit_scale = model.logit_scale.exp()
                loss = (
                    loss_fn(packshot_features, text_features, logit_scale)
                    + loss_fn(crop_features, text_features, logit_scale)
                    + loss_fn(crop_features, packshot_features, logit_scale)
                ) / 3
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(float(loss.detach()))
        curve.append(float(np.mean(losses)))
        log.info("epoch %d/%d loss %.4f", epoch + 1, config.epochs, curve[-1])
        if progress is not None:
            progress(epoch + 1, config.epochs, curve[-1])
    model.eval()
    seconds = time.perf_counter() - start

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".part")
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, partial)
    partial.replace(out_path)
    tuned = load_encoder(config.model, str(out_path), device="cpu")  # through the users' checkpoint path
    report = FinetuneReport(
        checkpoint=str(out_path),
        model_id=tuned.model_id,
        config=asdict(config),
        train_pairs=len(train),
        heldout_pairs=len(heldout),
        seconds=round(seconds, 1),
        loss_curve=[round(x, 4) for x in curve],
        recall_before=before,
        recall_after=_text_to_image_recall(tuned, heldout),
        crop_recall_before=crop_before,
        crop_recall_after=_crop_to_packshot_recall(tuned, heldout, heldout_figure, config.seed)
        if heldout_figure
        else {},
    )
    out_path.with_suffix(".report.json").write_text(json.dumps(asdict(report), indent=2))
    return report
