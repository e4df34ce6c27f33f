"""Contrastive fine-tuning of CLIP on catalog pairs (image, caption), as FashionCLIP-style models are made.

Pairs come from a catalog: each valid product's image with a caption built from its standard
attributes (gender, colour, pattern, category, material) in several phrasings, so the text tower
learns the words the query generator and the zero-shot prompts use. open_clip's model classes and
``ClipLoss`` do the work; a held-out split measures text->image Recall@k before and after.

Images are augmented the way look crops differ from packshots: random scale/position inside the
frame and random background colours behind the garment (colours of the garment itself are never
jittered: colour is what the model must learn).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from looksync.images import FetchError, FetchPolicy, check_image_bytes
from looksync.querygen import compose_query
from looksync.schema import Product
from looksync.taxonomy import Taxonomy, get_taxonomy

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

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


def sample_pairs(sample_root: Path) -> list[Pair]:
    """Valid products of a generated sample with their image files (faulty rows are skipped)."""
    from looksync.sample import SampleManifest
    from looksync.vendors import load_vendor_config, read_feed

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


def _augment(image: Image, rng: random.Random, size: int) -> Image:
    """Garment on a random background at a random scale and position (look crops look like this)."""
    from PIL import Image as PILImage

    rgb = image.convert("RGB")
    arr = np.asarray(rgb)
    garment = ~np.all(arr > 235, axis=2)  # packshots have a white background
    mask = PILImage.fromarray((garment * 255).astype(np.uint8))
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


def finetune(pairs: list[Pair], config: FinetuneConfig, out_path: Path) -> FinetuneReport:
    """Train, save a checkpoint loadable through the checkpoint weights source, and report."""
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
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    normalize = open_clip.image_transform(image_size, is_train=False).transforms[-1]  # the model's mean/std
    to_tensor = __import__("torchvision").transforms.functional.to_tensor
    images = {id(p): PILImage.open(p.image_path).convert("RGB") for p in train}

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
            image_features, text_features, logit_scale = model(pixels, tokens)[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(float(loss.detach()))
        curve.append(float(np.mean(losses)))
        log.info("epoch %d/%d loss %.4f", epoch + 1, config.epochs, curve[-1])
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
    )
    out_path.with_suffix(".report.json").write_text(json.dumps(asdict(report), indent=2))
    return report
