"""``generate_sample``: a deterministic multi-vendor sample catalog with images, faults and looks.

Layout under ``out_dir``::

    feeds/<vendor>.<csv|jsonl|xml>   one feed per vendor, in that vendor's format
    images/<vendor>/<sku>.png        product images (plus the planted image faults)
    faults.jsonl                     every planted fault with the quarantine reason it must get
    groups.json                      which listings are one item sold by several vendors (cross-listings)
    looks/<look_id>.png              sample looks; looks/ground_truth.json
    manifest.json                    what was generated (also returned as a SampleManifest)

Rows are streamed: memory does not grow with ``size`` beyond the look candidate pools.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from looksync.catalog.schema import make_product_id
from looksync.catalog.taxonomy import get_taxonomy
from looksync.catalog.vendors import VendorConfig, load_vendor_config
from looksync.sample.catalog import ProductSpec, catalog_data, make_product_spec, make_sku, sample_vendors
from looksync.sample.drawing import product_image
from looksync.sample.faults import FAULT_REASONS, PlantedFault, plan_faults, write_fault
from looksync.sample.feeds import FeedWriter, open_feed_writer, vendor_values
from looksync.sample.listings import cross_listing, plan_cross_listing
from looksync.sample.looks import LookPools, make_looks, make_varied_looks

OWNED_PATHS = ("feeds", "images", "looks", "faults.jsonl", "groups.json", "manifest.json")


@dataclass
class SampleManifest:
    root: Path
    seed: int
    size: int
    fault_rate: float
    image_base_url: str
    feeds: dict[str, Path]  # vendor -> feed file
    images_dir: Path
    faults_path: Path
    looks_dir: Path
    ground_truth_path: Path
    manifest_path: Path
    product_counts: dict[str, int]  # vendor -> valid products (faulty rows not counted)
    fault_counts: dict[str, int]  # fault kind -> planted rows
    fault_rows: dict[str, int] = field(default_factory=dict)  # vendor -> planted rows
    look_count: int = 0
    cross_listing_rate: float = 0.0
    cross_listings: dict[str, int] = field(default_factory=dict)  # vendor -> listings of other vendors' items
    groups_path: Path | None = None  # groups.json: the items listed by several vendors

    def to_json(self) -> dict[str, Any]:
        """The manifest.json content: paths relative to root, so the file is the same wherever it lives."""
        return {
            "seed": self.seed,
            "size": self.size,
            "fault_rate": self.fault_rate,
            "image_base_url": self.image_base_url,
            "feeds": {v: p.relative_to(self.root).as_posix() for v, p in self.feeds.items()},
            "product_counts": self.product_counts,
            "fault_rows": self.fault_rows,
            "fault_counts": self.fault_counts,
            "look_count": self.look_count,
            "images_dir": "images",
            "faults_path": "faults.jsonl",
            "looks_dir": "looks",
            "ground_truth_path": "looks/ground_truth.json",
            "cross_listing_rate": self.cross_listing_rate,
            "cross_listings": self.cross_listings,
            "groups_path": "groups.json",
        }

    @classmethod
    def load(cls, root: str | Path) -> SampleManifest:
        """Read back the manifest of a generated sample."""
        root = Path(root)
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        return cls(
            root=root,
            seed=data["seed"],
            size=data["size"],
            fault_rate=data["fault_rate"],
            image_base_url=data["image_base_url"],
            feeds={v: root / p for v, p in data["feeds"].items()},
            images_dir=root / data["images_dir"],
            faults_path=root / data["faults_path"],
            looks_dir=root / data["looks_dir"],
            ground_truth_path=root / data["ground_truth_path"],
            manifest_path=root / "manifest.json",
            product_counts=data["product_counts"],
            fault_counts=data["fault_counts"],
            fault_rows=data["fault_rows"],
            look_count=data["look_count"],
            cross_listing_rate=data.get("cross_listing_rate", 0.0),  # samples from before cross-listings: none
            cross_listings=data.get("cross_listings", {}),
            groups_path=root / data["groups_path"] if "groups_path" in data else None,
        )


def generate_sample(
    out_dir: Path,
    *,
    size: int = 300,
    seed: int = 7,
    fault_rate: float = 0.0,
    image_base_url: str = "http://127.0.0.1:8765",
    n_looks: int = 12,
    n_varied_looks: int = 0,
    varied_split: str = "heldout",
    cross_listing_rate: float = 0.0,
) -> SampleManifest:
    """Write a sample catalog of ``size`` valid products split across the sample vendors (plus planted
    faulty rows when ``fault_rate`` > 0), ``n_looks`` looks on the fixed frame and ``n_varied_looks`` looks
    in varied framings of ``varied_split`` (``looksync.sample.framing``). With ``cross_listing_rate`` > 0,
    that share of the products is also listed by one or two other vendors (``looksync.sample.listings``;
    extra products, recorded in groups.json); the other products are the same either way. Same
    arguments, same bytes.

    Replaces what a previous run wrote under ``out_dir`` (feeds/, images/, looks/, faults.jsonl,
    manifest.json) and nothing else."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
    if n_looks < 0:
        raise ValueError(f"n_looks must not be negative, got {n_looks}")
    if not 0.0 <= cross_listing_rate <= 1.0:
        raise ValueError(f"cross_listing_rate must be within [0, 1], got {cross_listing_rate}")
    if n_varied_looks < 0:
        raise ValueError(f"n_varied_looks must not be negative, got {n_varied_looks}")
    from looksync.sample.framing import SPLITS

    if varied_split not in SPLITS:
        raise ValueError(f"varied_split must be one of {', '.join(SPLITS)}, got {varied_split!r}")
    root = Path(out_dir)
    _clear_owned(root)
    vendors = sample_vendors()
    counts = {v: len(range(i, size, len(vendors))) for i, v in enumerate(vendors)}
    for folder in ("feeds", "looks", *(f"images/{v}" for v in vendors)):
        (root / folder).mkdir(parents=True, exist_ok=True)
    pools = LookPools(cap=catalog_data()["looks"]["pool_cap"])
    listings = _Listings(vendors, seed, cross_listing_rate)
    feeds, by_kind, by_vendor = _write_feeds(
        root, vendors, counts, pools, listings, seed=seed, fault_rate=fault_rate, image_base_url=image_base_url
    )
    listings.write_truth(root / "groups.json")
    look_count = _write_looks(root, pools, n_looks, seed, n_varied_looks, varied_split)
    manifest = SampleManifest(
        root=root,
        seed=seed,
        size=size,
        fault_rate=fault_rate,
        image_base_url=image_base_url,
        feeds=feeds,
        images_dir=root / "images",
        faults_path=root / "faults.jsonl",
        looks_dir=root / "looks",
        ground_truth_path=root / "looks" / "ground_truth.json",
        manifest_path=root / "manifest.json",
        product_counts={v: counts[v] + listings.counts[v] for v in vendors},
        fault_counts={kind: by_kind[kind] for kind in FAULT_REASONS},
        fault_rows={v: by_vendor[v] for v in vendors},
        look_count=look_count,
        cross_listing_rate=cross_listing_rate,
        cross_listings=dict(listings.counts),
        groups_path=root / "groups.json",
    )
    manifest.manifest_path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_feeds(
    root: Path,
    vendors: list[str],
    counts: dict[str, int],
    pools: LookPools,
    listings: _Listings | None = None,
    *,
    seed: int,
    fault_rate: float,
    image_base_url: str,
) -> tuple[dict[str, Path], Counter[str], Counter[str]]:
    """Stream every vendor's feed, product images and planted faults; returns the feed paths and
    fault counts by kind and by vendor."""
    listings = listings or _Listings(vendors, seed, 0.0)  # none: no cross-listings
    configs = {v: load_vendor_config(v) for v in vendors}
    plan = plan_faults(counts, sum(counts.values()), fault_rate, seed)
    writers = {v: open_feed_writer(configs[v], root / "feeds") for v in vendors}
    by_kind: Counter[str] = Counter()
    by_vendor: Counter[str] = Counter()
    try:
        with (root / "faults.jsonl").open("w", encoding="utf-8") as fault_log:
            for i in range(sum(counts.values())):
                vendor = vendors[i % len(vendors)]
                spec, picture = _write_product(i, vendor, configs[vendor], writers[vendor], root, seed, image_base_url)
                pools.add(spec)
                listings.write(i, spec, picture, configs, writers, root, image_base_url)
                for kind in plan[vendor].get(i // len(vendors), []):
                    own_rows = writers[vendor].rows - listings.counts[vendor]  # cross-listings move no faulty row
                    fault = _write_fault_row(kind, spec, writers[vendor], root, seed, image_base_url, counts, own_rows)
                    fault_log.write(json.dumps(fault.to_json(), ensure_ascii=False) + "\n")
                    by_kind[fault.kind] += 1
                    by_vendor[fault.vendor] += 1
    finally:
        for writer in writers.values():
            writer.close()
    return {v: w.path for v, w in writers.items()}, by_kind, by_vendor


class _Listings:
    """Writes the cross-listings of each product as it is generated and keeps the truth: the groups of
    product ids that are one item."""

    def __init__(self, vendors: list[str], seed: int, rate: float):
        self.vendors, self.seed, self.rate = vendors, seed, rate
        self.counts: Counter[str] = Counter({v: 0 for v in vendors})
        self.groups: list[dict[str, Any]] = []

    def write(self, i: int, spec: ProductSpec, picture: Image.Image, configs: dict[str, VendorConfig],
              writers: dict[str, FeedWriter], root: Path, image_base_url: str) -> None:  # fmt: skip
        targets = plan_cross_listing(i, spec, self.vendors, self.seed, self.rate)
        if not targets:
            return
        members = [_member(spec)]
        for vendor in targets:
            listing = cross_listing(spec, picture, configs[vendor], self.counts[vendor], self.seed, image_base_url)
            self.counts[vendor] += 1
            writers[vendor].put(writers[vendor].text(vendor_values(listing.spec, configs[vendor])))
            (root / "images" / vendor / f"{listing.spec.sku}.jpg").write_bytes(listing.image)
            members.append(_member(listing.spec))
        self.groups.append({"item": members[0]["product_id"], "products": members})

    def write_truth(self, path: Path) -> None:
        truth = {"cross_listing_rate": self.rate, "groups": self.groups}
        path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _member(spec: ProductSpec) -> dict[str, str]:
    return {"product_id": make_product_id(spec.vendor, spec.sku), "vendor": spec.vendor, "sku": spec.sku,
            "market": spec.market}  # fmt: skip


def _write_looks(root: Path, pools: LookPools, n_looks: int, seed: int, n_varied: int = 0, split: str = "heldout") -> int:
    looks = make_looks(pools, n_looks, seed) + make_varied_looks(pools, n_varied, seed, split)
    for look in looks:
        look.image.save(root / "looks" / f"{look.look_id}.png", format="PNG")
    ground_truth = {look.look_id: look.ground_truth() for look in looks}
    text = json.dumps(ground_truth, indent=2, sort_keys=True) + "\n"
    (root / "looks" / "ground_truth.json").write_text(text, encoding="utf-8")
    return len(looks)


def _clear_owned(root: Path) -> None:
    for name in OWNED_PATHS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _write_product(
    i: int, vendor: str, config: VendorConfig, writer: FeedWriter, root: Path, seed: int, image_base_url: str
) -> tuple[ProductSpec, Image.Image]:
    categories = list(get_taxonomy().categories)
    rng = random.Random(f"{seed}:product:{i}")
    spec = make_product_spec(
        config,
        rng,
        category=categories[i % len(categories)],
        sku=make_sku(vendor, i // len(catalog_data()["vendors"])),
        image_base_url=image_base_url,
        first_of_category=i < len(categories),
    )
    writer.put(writer.text(vendor_values(spec, config)))
    image = product_image(
        spec.category, spec.draw_rgb, spec.pattern,
        scale=spec.draw_scale, shift=spec.draw_shift, pattern_period=spec.pattern_period,
    )  # fmt: skip
    image.save(root / "images" / vendor / f"{spec.sku}.png", format="PNG")
    return spec, image


def _write_fault_row(
    kind: str,
    previous: ProductSpec,
    writer: FeedWriter,
    root: Path,
    seed: int,
    image_base_url: str,
    counts: dict[str, int],
    own_rows: int,
) -> PlantedFault:
    # faulty rows get SKUs after the vendor's valid ones, so they never collide with a valid product
    config = writer.config
    rng = random.Random(f"{seed}:fault:{config.name}:{own_rows}")
    categories = list(get_taxonomy().categories)
    fresh = make_product_spec(
        config,
        rng,
        category=rng.choice(categories),
        sku=make_sku(config.name, counts[config.name] + own_rows),
        image_base_url=image_base_url,
    )
    return write_fault(kind, writer, fresh, previous, root / "images", image_base_url, rng)
