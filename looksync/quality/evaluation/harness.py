"""``looksync eval``: offline match quality of one or more configurations on a generated sample.

For each distinct (model, weights) the sample's feeds are ingested and an index version is built
with the ordinary ingest and reindex functions, under ``<data_dir>/eval/<run_id>/indexes/<slug>/``.
Each configuration then answers three tasks in-process through ``SearchEngine``:

1. ``look``: every sample look (its market and gender requested, its planted layers in frame asked for)
   -> per-layer products, scored against the planted product of each layer; ``look_nohint``: the same
   looks with only the market given (the search detects gender and layers), scored the same way, plus
   per-layer presence precision/recall and gender accuracy; both broken down by the looks' framing
   (aspect, scale, crop, mirrored, pose family, figure style, background; ``fixed`` for the fixed frame);
2. ``text``: a product's canonical caption (relevant: every product of that market the caption
   describes equally, i.e. same category, gender, colour and pattern) and its title (relevant: the
   product itself), with the product's market requested;
3. ``similar``: a product's own image (itself excluded) -> products; relevant: products with the same
   image or the same stored near-duplicate group. When the sample has none, the task is reported as
   skipped with the reason, never scored against invented relevance.

Ground truth comes from the sample (feeds and looks/ground_truth.json), never from the model under test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from embeddings.runtime import RUNTIMES
from looksync.quality.evaluation.grouping import score_index_grouping, truth_groups
from looksync.quality.evaluation.scoring import (
    Detection,
    ScoredQuery,
    compare,
    detection_breakdown,
    framing_breakdown,
    framing_value,
    look_of,
    score_query,
    summarise,
)
from looksync.search.region_finders import REGION_FINDERS
from looksync.search.rerank import RERANK_MODES
from looksync.settings import Settings, load_settings

log = logging.getLogger(__name__)

GENERATORS = ("local", "llm")
# region finders a config may name: the service's, plus the ground-truth oracle (eval only; truth_regions)
TRUTH_REGIONS = "truth"
EVAL_REGION_FINDERS = (*REGION_FINDERS, TRUTH_REGIONS)
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class EvalError(ValueError):
    """Bad evaluation input (config spec, sample directory); the message names the value."""


# the config options that override one setting each: option -> the setting it sets for this config (switches take
# 0 or 1; numbers must lie within their range); ``with_config_options`` applies them, ``EvalConfig.parse`` reads them
SETTING_SWITCHES = {"blank": "pose_blank_background", "retry": "pose_retry", "figure": "pose_figure_axis",
                    "side": "pose_pick_side", "length": "pose_pick_length", "figroi": "pose_figure_roi"}  # fmt: skip
SETTING_NUMBERS = {"crop_weight": ("look_crop_weight", 0.0, 1.0), "gender_conf": ("look_gender_min_confidence", 0.5, 1.0),
                   "max_tilt": ("pose_max_tilt", 0.0, 180.0), "min_span": ("pose_min_span", 0.0, 1.0),
                   "refine_tol": ("pose_refine_tolerance", 0.0, 1.0)}  # fmt: skip
_OPTION_FORMS = {"rerank": "MODE", "generator": "local|llm", "regions": "FINDER", "crop_weight": "W", "heads": "PATH",
                 "gender_conf": "C", "runtime": "torch|onnx|onnx-int8", "max_tilt": "DEGREES", "min_span": "S",
                 "refine_tol": "T", **dict.fromkeys(SETTING_SWITCHES, "0|1")}  # fmt: skip


@dataclass(frozen=True)
class EvalConfig:
    """One side of the comparison: ``NAME=MODEL:WEIGHTS[,rerank=MODE][,generator=local|llm][,regions=FINDER][,crop_weight=W][,heads=PATH][,gender_conf=C]``.
    ``regions`` (a region finder), ``crop_weight``, ``heads`` (detection heads) and ``gender_conf`` (the least
    confidence at which a gender read from a no-hint look filters its search) override the settings for this
    config only. ``regions=truth`` places each look's layers at their ground-truth boxes (``truth_regions``):
    only the hinted look tasks run for it (``look_nohint`` is skipped, and ``heads`` refused)."""

    name: str
    model: str
    weights: str
    rerank: str = "auto"
    generator: str = "local"
    regions: str | None = None
    crop_weight: float | None = None
    heads: str | None = None  # detection heads file for the no-hint looks
    gender_conf: float | None = None  # LOOKSYNC_LOOK_GENDER_MIN_CONFIDENCE for this config
    runtime: str = "torch"  # what runs the CLIP towers (embeddings.runtime); the index is built by the first config of a model
    blank: bool | None = None  # LOOKSYNC_POSE_BLANK_BACKGROUND for this config (pose finder: crops on a blanked background)
    max_tilt: float | None = None  # LOOKSYNC_POSE_MAX_TILT for this config (pose finder: degrees from upright)
    min_span: float | None = None  # LOOKSYNC_POSE_MIN_SPAN for this config (pose finder: share of the person's height)
    refine_tol: float | None = None  # LOOKSYNC_POSE_REFINE_TOLERANCE (pose finder: ROI change that skips a landmark read)
    retry: bool | None = None  # LOOKSYNC_POSE_RETRY for this config (pose finder: detect again in the person mask's box)
    figure: bool | None = None  # LOOKSYNC_POSE_FIGURE_AXIS for this config (person-box slots from the mask's head and midline)
    side: bool | None = None  # LOOKSYNC_POSE_PICK_SIDE for this config (a bag cropped on the side that shows it)
    length: bool | None = None  # LOOKSYNC_POSE_PICK_LENGTH for this config (no knee crop of trousers running on)
    figroi: bool | None = None  # LOOKSYNC_POSE_FIGURE_ROI for this config (no detector pose: landmarks in the ROI from the mask)

    @classmethod
    def parse(cls, spec: str) -> EvalConfig:
        name, sep, rest = spec.partition("=")
        if not sep or not _CONFIG_NAME.match(name):
            raise EvalError(f"config {spec!r}: expected NAME=MODEL:WEIGHTS[,rerank=MODE][,generator=local|llm][,regions=FINDER][,crop_weight=W]")
        head, *options = rest.split(",")
        model, sep, weights = head.partition(":")
        if not sep or not model or not weights:
            raise EvalError(f"config {spec!r}: expected MODEL:WEIGHTS after '{name}=' (e.g. LookSync-Tiny:random:0)")
        values: dict[str, Any] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in _OPTION_FORMS:
                known = ", ".join(f"{option}={form}" for option, form in _OPTION_FORMS.items())
                raise EvalError(f"config {spec!r}: unknown option {option!r}; known: {known}")
            values[key] = value
        for key in SETTING_SWITCHES:
            if key in values:
                if values[key] not in ("0", "1"):
                    raise EvalError(f"config {spec!r}: {key} must be 0 or 1")
                values[key] = values[key] == "1"
        for key, (_, low, high) in SETTING_NUMBERS.items():
            if key in values:
                try:
                    values[key] = float(values[key])
                except ValueError:
                    values[key] = None
                if values[key] is None or not low <= values[key] <= high:
                    raise EvalError(f"config {spec!r}: {key} must be a number in [{low:g}, {high:g}]")
        if values.get("regions", "layout") not in EVAL_REGION_FINDERS:
            raise EvalError(
                f"config {spec!r}: regions {values['regions']!r} is not one of {', '.join(EVAL_REGION_FINDERS)}"
            )
        if values.get("regions") == TRUTH_REGIONS and "heads" in values:
            raise EvalError(f"config {spec!r}: heads serve look_nohint, which regions=truth skips (the oracle "
                            "would tell the detection which layers the look wears)")  # fmt: skip
        config = cls(name, model, weights, **values)
        if config.rerank not in RERANK_MODES:
            raise EvalError(f"config {spec!r}: rerank {config.rerank!r} is not one of {', '.join(RERANK_MODES)}")
        if config.runtime not in RUNTIMES:
            raise EvalError(f"config {spec!r}: runtime {config.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if config.generator not in GENERATORS:
            raise EvalError(f"config {spec!r}: generator {config.generator!r} is not one of {', '.join(GENERATORS)}")
        return config

    @property
    def index_slug(self) -> str:
        """Directory name of this model's index: readable, plus a digest so distinct weights never collide."""
        digest = hashlib.sha1(f"{self.model}\x00{self.weights}".encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.model}-{self.weights}")[-60:] + "-" + digest


@dataclass
class EvalOptions:
    k: int = 10
    max_text_products: int = 300  # products whose caption and title are queried (deterministic sample)
    max_similar_queries: int = 200
    n_resamples: int = 1000
    report_looks: int = 3  # looks shown with their results in the HTML report
    seed: int = 0
    nohint: bool = True  # also the look_nohint task (only the market given) and its detection figures


@dataclass
class SampleTruth:
    """What the sample says is right, independent of any model."""

    root: Path
    manifest: Any
    looks: dict[str, dict[str, Any]]  # look_id -> {market, gender, products: {layer: product_id}}
    products: dict[str, Any]  # product_id -> Product (valid rows of the feeds)
    images: dict[str, Path]  # product_id -> image file in the sample


@dataclass
class EvalRun:
    run_id: str
    run_dir: Path
    configs: list[EvalConfig]
    summary: dict[str, Any]
    queries: dict[str, list[ScoredQuery]] = field(default_factory=dict)

    @property
    def json_path(self) -> Path:
        return self.run_dir / "eval.json"

    @property
    def html_path(self) -> Path:
        return self.run_dir / "report.html"


def load_truth(sample_root: Path) -> SampleTruth:
    from looksync.quality.finetune import sample_pairs
    from looksync.sample import SampleManifest

    sample_root = Path(sample_root)
    if not (sample_root / "manifest.json").is_file():
        raise EvalError(f"{sample_root}: not a generated sample (no manifest.json); run `looksync sample generate`")
    manifest = SampleManifest.load(sample_root)
    looks = json.loads(Path(manifest.ground_truth_path).read_text(encoding="utf-8"))
    pairs = sample_pairs(sample_root)
    if not pairs:
        raise EvalError(f"{sample_root}: the sample has no valid products with images")
    return SampleTruth(
        root=sample_root,
        manifest=manifest,
        looks=looks,
        products={p.product.product_id: p.product for p in pairs},
        images={p.product.product_id: p.image_path for p in pairs},
    )


@contextmanager
def serving_sample(manifest: Any) -> Iterator[None]:
    """Serve the sample's images at the URL its feeds were written with (ingestion fetches them);
    when that port is taken, go on only if it already serves this sample's files."""
    import requests

    from looksync.sample.server import serve_sample

    parts = urlsplit(manifest.image_base_url)
    server = None
    try:
        server = serve_sample(manifest.root, host=parts.hostname or "127.0.0.1", port=parts.port or 80)
    except OSError as exc:
        probe = next(iter(sorted(Path(manifest.images_dir).rglob("*.png"))), None)
        url = f"{manifest.image_base_url.rstrip('/')}/{probe.relative_to(manifest.root).as_posix()}" if probe else None
        try:
            ok = url is not None and requests.get(url, timeout=5).content == probe.read_bytes()
        except requests.RequestException:
            ok = False
        if not ok:
            raise EvalError(
                f"cannot serve {manifest.root} at {manifest.image_base_url} ({exc}) and that address does not serve "
                "this sample's images"
            ) from exc
        log.info("%s is already served at %s; using that server", manifest.root, manifest.image_base_url)
    try:
        yield
    finally:
        if server is not None:
            server.close()


def config_settings(index_dir: Path, config: EvalConfig, base: Settings | None = None) -> Settings:
    """Settings of one configuration: its own data dir, embedded index, in-process cache, no look cache."""
    inherited = {"llm_base_url", "llm_api_key", "llm_model", "llm_timeout_s", "llm_max_retries", "torch_threads"}
    kept = {k: v for k, v in (base.model_dump() if base else {}).items() if k in inherited}
    return load_settings(
        **kept,
        data_dir=index_dir,
        index_backend="embedded",
        index_path=None,
        es_url=None,
        redis_url=None,
        s3_bucket=None,
        clip_model=config.model,
        clip_weights=config.weights,
        device="cpu",
        fetch_allow_private=True,  # the sample is served on loopback
        look_cache_ttl_s=0,
        reindex_sample=10,  # the build's own recall check; the evaluation measures quality itself
    )


def build_config_index(truth: SampleTruth, settings: Settings, encoder: Any) -> dict[str, Any]:
    """Ingest every sample feed, group the items several vendors sell, and build a live index version,
    with the ordinary pipeline functions."""
    from looksync.index.factory import open_index
    from looksync.pipelines.dedup import group_catalog
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.reindex import build_index

    t0 = time.perf_counter()
    ingested = {}
    for vendor, feed in truth.manifest.feeds.items():
        report = ingest_feed(settings, vendor, feed, encoder)
        ingested[vendor] = {"rows": report.rows_read, "stored": report.products_stored, "embedded": report.embedded}
    groups = {k: v for k, v in group_catalog(settings, encoder.model_id).items() if k != "records_uri"}
    build = build_index(settings, open_index(settings), encoder.model_id)
    return {"version": build.version, "indexed": build.indexed, "ingest": ingested, "groups": groups,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def with_config_options(settings: Settings, config: EvalConfig) -> Settings:
    """The settings with the config's options in place of theirs (an option not given keeps the setting)."""
    overrides = {"region_finder": config.regions, "detection_heads": Path(config.heads) if config.heads else None,
                 **{setting: getattr(config, option) for option, setting in SETTING_SWITCHES.items()},
                 **{setting: getattr(config, option) for option, (setting, _, _) in SETTING_NUMBERS.items()}}  # fmt: skip
    if config.regions == TRUTH_REGIONS:
        overrides["region_finder"] = "pose"  # the oracle's fallback for layers the look does not wear
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def make_engine(settings: Settings, encoder: Any, config: EvalConfig, truth: SampleTruth | None = None) -> Any:
    """The config's search engine; ``truth``: the sample, for ``regions=truth``."""
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from looksync.search.llm import LLMClient

    llm = None
    if config.generator == "llm" or config.rerank == "llm":
        llm = LLMClient.from_settings(settings)
        if llm is None:
            raise EvalError(f"config {config.name}: needs an LLM but LOOKSYNC_LLM_BASE_URL is not set")
    settings = with_config_options(settings, config)
    finder = truth_finder(settings, encoder, truth) if config.regions == TRUTH_REGIONS else None
    try:
        engine = SearchEngine(settings, encoder, open_index(settings), MemoryCache(ttl_s=0), llm=llm, region_finder=finder)
    except ValueError as exc:  # detection heads for another model or finder, or no such file
        raise EvalError(f"config {config.name}: {exc}") from exc
    if config.generator == "local":
        engine.query_generator = engine.local_query_generator
    return engine


def truth_finder(settings: Settings, encoder: Any, truth: SampleTruth | None) -> Any:
    """``regions=truth``: the sample's ground-truth boxes, ``pose`` for the layers the look does not wear."""
    from embeddings import EmbeddingsError
    from looksync.quality.evaluation.truth_regions import TruthRegionFinder
    from looksync.search.region_finders import make_region_finder

    if truth is None:
        raise EvalError("regions=truth needs the sample's ground truth")
    try:
        fallback = make_region_finder("pose", encoder, settings=settings)
    except (EmbeddingsError, ImportError) as exc:  # the pose model files missing or mismatched
        raise EvalError(f"regions=truth falls back to the pose finder, which is unavailable: {exc}") from exc
    return TruthRegionFinder.from_sample(encoder, Path(truth.manifest.looks_dir), truth.looks, fallback)


# ---- tasks ---------------------------------------------------------------------------------------


def _gender_ok(requested: str | None) -> Callable[[dict], bool]:
    return lambda r: requested is None or r.get("gender") in (requested, "unisex")


# look_visible: the look queries whose planted garment has at least this share of its pixels in view
# (the sample's ground truth records it; a top under a closed coat can be nearly hidden)
VISIBLE_MIN = 0.5
LOOK_TASKS = ("look", "look_visible", "look_nohint", "look_nohint_visible")


def in_frame_layers(expected: dict[str, Any]) -> dict[str, str]:
    """The planted layers the look shows (layer -> product id): all of them on the fixed frame; on a
    varied look those its ground truth says are in frame (a half-body look shows no footwear)."""
    in_frame = expected.get("in_frame", {})
    return {layer: pid for layer, pid in expected["products"].items() if in_frame.get(layer, True)}


def look_task(
    engine: Any, truth: SampleTruth, config: EvalConfig, k: int, *, hints: bool = True
) -> tuple[list[ScoredQuery], list[Detection]]:
    """One query per planted layer in frame: task ``look`` (market, gender and those layers given) or,
    with ``hints=False``, ``look_nohint`` (only the market given: the search detects gender and layers;
    a planted layer it did not search scores zero). Each is repeated as ``<task>_visible`` for the layers
    at least ``VISIBLE_MIN`` visible, when the ground truth says. No-hint looks also return what was
    detected, for presence precision/recall and gender accuracy."""
    from PIL import Image

    from looksync.search.engine import LookSearchRequest

    task = "look" if hints else "look_nohint"
    scored, detections = [], []
    for look_id, expected in sorted(truth.looks.items()):
        market, gender = expected["market"], expected["gender"]
        planted = in_frame_layers(expected)
        if not planted:
            continue
        if hints:
            request = LookSearchRequest(market=market, gender=gender, layers=sorted(planted), k=k, rerank=config.rerank)
        else:
            request = LookSearchRequest(market=market, k=k, rerank=config.rerank)
        with Image.open(Path(truth.manifest.looks_dir) / f"{look_id}.png") as image:
            response = engine.search_look(image.convert("RGB"), request)
        by_layer = {layer["layer"]: layer for layer in response["layers"]}
        if not hints:
            detections.append(
                Detection(
                    look_id=look_id,
                    expected=set(planted),
                    found=set(by_layer),
                    gender=gender,
                    found_gender=(response.get("gender_detected") or {}).get("gender") or response.get("gender"),
                    gender_used=response.get("gender") is not None,
                    hidden={layer for layer in planted if expected.get("visible", {}).get(layer, 0.0) < VISIBLE_MIN},
                    ignored=set(expected["products"]) - set(planted),
                    framing=expected.get("framing"),
                )
            )
        for layer, product_id in sorted(planted.items()):
            found = by_layer.get(layer, {"products": [], "query": None})
            results = found["products"]

            def allowed(r: dict, layer: str = layer, market: str = market, gender: str = gender) -> bool:
                return r.get("market") == market and r.get("layer") == layer and _gender_ok(gender)(r)

            scored.append(
                ScoredQuery(
                    task=task,
                    layer=layer,
                    query_id=f"{look_id}:{layer}",
                    query=found.get("query") or "",
                    ranked=[r["product_id"] for r in results],
                    relevant=[product_id],
                    metrics=score_query([r["product_id"] for r in results], {product_id}, results, allowed),
                    results=results,
                    candidates=sum(
                        p.market == market and p.layer == layer and p.gender in (gender, "unisex")
                        for p in truth.products.values()
                    ),
                )
            )
            if expected.get("visible", {}).get(layer, 0.0) >= VISIBLE_MIN:
                scored.append(replace(scored[-1], task=f"{task}_visible"))
    return scored, detections


def caption_key(product: Any) -> str:
    from looksync.quality.finetune import canonical_caption

    return f"{product.market}|{canonical_caption(product)}"


def text_products(truth: SampleTruth, limit: int, seed: int) -> list[str]:
    ids = sorted(truth.products)
    if len(ids) > limit:
        ids = sorted(random.Random(seed).sample(ids, limit))
    return ids


def text_task(engine: Any, truth: SampleTruth, product_ids: list[str], k: int) -> list[ScoredQuery]:
    from looksync.quality.finetune import canonical_caption
    from looksync.search.engine import SearchRequest

    keys = {pid: caption_key(p) for pid, p in truth.products.items()}
    scored = []
    for pid in product_ids:
        product = truth.products[pid]
        caption = canonical_caption(product)
        for kind, text in (("caption", caption), ("title", product.title)):
            response = engine.search(SearchRequest(text=text, market=product.market, k=k))
            results = response["products"]
            ids = [r["product_id"] for r in results]
            if kind == "caption":  # every product the caption describes equally is right
                ranked, relevant = [keys.get(i, i) for i in ids], {keys[pid]}
            else:
                ranked, relevant = ids, {pid}
            scored.append(
                ScoredQuery(
                    task=f"text_{kind}",
                    layer=product.layer,
                    query_id=f"{pid}:{kind}",
                    query=text,
                    ranked=ranked,
                    relevant=sorted(relevant),
                    metrics=score_query(ranked, relevant, results, lambda r, m=product.market: r.get("market") == m),
                    results=results,
                )
            )
    return scored


def similar_relevance(products: list[Any], groups: dict[str, str | None]) -> dict[str, set[str]]:
    """product id -> the other products that are the same item: same image bytes (e.g. the same
    listing in another market) or the same stored near-duplicate group. Products with none are absent."""
    by_key: dict[str, set[str]] = defaultdict(set)
    for p in products:
        if p.image_hash:
            by_key[f"img:{p.image_hash}"].add(p.product_id)
        if groups.get(p.product_id):
            by_key[f"grp:{groups[p.product_id]}"].add(p.product_id)
    relevant: dict[str, set[str]] = defaultdict(set)
    for members in by_key.values():
        if len(members) > 1:
            for pid in members:
                relevant[pid] |= members - {pid}
    return dict(relevant)


def similar_task(
    engine: Any, truth: SampleTruth, relevance: dict[str, set[str]], k: int, limit: int, seed: int
) -> list[ScoredQuery]:
    """The product's own picture as an image query, itself excluded. (``SearchEngine.similar`` drops the
    product's own duplicates by design, so it cannot be scored on finding them.)"""
    from PIL import Image

    from looksync.index import SearchFilters
    from looksync.search.engine import SearchRequest

    ids = sorted(pid for pid in relevance if pid in truth.images)
    if len(ids) > limit:
        ids = sorted(random.Random(seed).sample(ids, limit))
    scored = []
    for pid in ids:
        product = truth.products[pid]
        request = SearchRequest(layers=[product.layer], k=k, filters=SearchFilters(exclude_ids=[pid]))
        with Image.open(truth.images[pid]) as image:
            response = engine.search(request, image=image.convert("RGB"))
        results = response["products"]
        ids_found = [r["product_id"] for r in results]
        scored.append(
            ScoredQuery(
                task="similar",
                layer=product.layer,
                query_id=pid,
                query=pid,
                ranked=ids_found,
                relevant=sorted(relevance[pid]),
                metrics=score_query(
                    ids_found, relevance[pid], results,
                    lambda r, layer=product.layer, pid=pid: r.get("layer") == layer and r["product_id"] != pid,
                ),  # fmt: skip
                results=results,
            )
        )
    return scored


# ---- the run -------------------------------------------------------------------------------------


def new_run_id() -> str:
    return "eval-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{random.randrange(16**4):04x}"


def run_eval(
    sample_root: Path,
    configs: list[EvalConfig],
    data_dir: Path,
    options: EvalOptions | None = None,
    run_id: str | None = None,
    base_settings: Settings | None = None,
    echo: Callable[[str], None] = log.info,
) -> EvalRun:
    """Build one index per distinct model, run every task for every config, write eval.json and report.html."""
    from embeddings import EmbeddingsError, load_encoder
    from looksync.catalog.stores import ProductStore
    from looksync.quality.evaluation.report import write_report

    options = options or EvalOptions()
    if not configs:
        raise EvalError("give at least one --config")
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise EvalError(f"config names must be unique, got {names}")
    needs_llm = [c.name for c in configs if "llm" in (c.generator, c.rerank)]
    if needs_llm and not (base_settings and base_settings.llm_enabled):
        raise EvalError(f"config(s) {needs_llm} need an LLM but LOOKSYNC_LLM_BASE_URL is not set")
    truth = load_truth(sample_root)
    run_id = run_id or new_run_id()
    run_dir = Path(data_dir) / "eval" / run_id
    if run_dir.exists():
        raise EvalError(f"{run_dir} already exists; choose another --run-id")
    started = time.perf_counter()
    encoders: dict[tuple[str, str], Any] = {}  # (index slug, runtime) -> encoder
    for config in configs:  # before anything is written: unknown models and bad weights fail here
        if (config.index_slug, config.runtime) not in encoders:
            try:
                encoders[config.index_slug, config.runtime] = load_encoder(
                    config.model, config.weights, device="cpu", runtime=config.runtime, cache_dir=Path(data_dir) / "models"
                )
            except EmbeddingsError as exc:
                raise EvalError(f"config {config.name}: {exc}") from exc
    run_dir.mkdir(parents=True)

    builds: dict[str, dict[str, Any]] = {}
    with serving_sample(truth.manifest):
        for config in configs:
            slug = config.index_slug
            if slug in builds:
                continue
            settings = config_settings(run_dir / "indexes" / slug, config, base_settings)
            echo(f"index {slug}: ingest {sum(truth.manifest.product_counts.values())} products, build")
            encoder = encoders[slug, config.runtime]  # the first config of this model builds its index
            builds[slug] = {"model_id": encoder.model_id, **build_config_index(truth, settings, encoder)}

    items = truth_groups(truth.manifest.groups_path)
    grouping = (
        {slug: score_index_grouping(run_dir / "indexes" / slug, items) for slug in builds}
        if items
        else {"skipped": "the sample lists no item at several vendors (generated without cross-listings)"}
    )
    first_dir = run_dir / "indexes" / configs[0].index_slug
    store = ProductStore(first_dir)
    relevance = similar_relevance(store.all(), store.groups())
    text_ids = text_products(truth, options.max_text_products, options.seed)

    queries: dict[str, list[ScoredQuery]] = {}
    per_config: dict[str, Any] = {}
    framings = {look_id: look.get("framing") for look_id, look in truth.looks.items()}
    for config in configs:
        slug = config.index_slug
        settings = config_settings(run_dir / "indexes" / slug, config, base_settings)
        engine = make_engine(settings, encoders[slug, config.runtime], config, truth)
        t0 = time.perf_counter()
        echo(f"config {config.name}: {len(truth.looks)} looks, {2 * len(text_ids)} text queries, "
             f"{min(len(relevance), options.max_similar_queries)} similar queries")  # fmt: skip
        scored, _ = look_task(engine, truth, config, options.k)
        nohint: list[ScoredQuery] = []
        detections: list[Detection] = []
        nohint_runs = options.nohint and config.regions != TRUTH_REGIONS
        if nohint_runs:
            nohint, detections = look_task(engine, truth, config, options.k, hints=False)
        scored += nohint
        scored += text_task(engine, truth, text_ids, options.k)
        if relevance:
            scored += similar_task(engine, truth, relevance, options.k, options.max_similar_queries, options.seed)
        queries[config.name] = scored
        per_config[config.name] = {
            "config": asdict(config),
            "model_id": encoders[slug, config.runtime].model_id,
            "index": builds[slug]["version"],
            "seconds": round(time.perf_counter() - t0, 1),
            "metrics": summarise(scored, options.n_resamples),
            "framing": framing_breakdown(scored, framings, LOOK_TASKS),
        }
        if nohint_runs:
            per_config[config.name]["detection"] = detection_breakdown(detections)
        elif options.nohint:
            per_config[config.name]["skipped"] = {"look_nohint": "regions=truth: the oracle's regions would tell the "
                                                  "detection which layers the look wears"}  # fmt: skip

    look_queries = sum(len(in_frame_layers(v)) for v in truth.looks.values())
    visible_queries = sum(
        v.get("visible", {}).get(layer, 0.0) >= VISIBLE_MIN for v in truth.looks.values() for layer in in_frame_layers(v)
    )
    baseline = configs[0].name
    comparisons = {
        f"{c.name}-vs-{baseline}": compare(queries[baseline], queries[c.name], options.n_resamples) for c in configs[1:]
    }
    # the same paired comparison of the look tasks within fixed-frame and varied looks separately
    by_variant = {
        variant: {name: [q for q in scored if q.task in LOOK_TASKS
                         and framing_value(framings.get(look_of(q.query_id)), "variant") == variant]
                  for name, scored in queries.items()}
        for variant in sorted({framing_value(f, "variant") for f in framings.values()})
    }  # fmt: skip
    comparisons_by_variant = {
        f"{c.name}-vs-{baseline}": {
            variant: compare(subset[baseline], subset[c.name], options.n_resamples) for variant, subset in by_variant.items()
        }
        for c in configs[1:]
    }
    summary = {
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sample": {"root": str(truth.root), "seed": truth.manifest.seed, "size": truth.manifest.size,
                   "products": len(truth.products), "looks": len(truth.looks)},  # fmt: skip
        "options": asdict(options),
        "indexes": builds,
        "tasks": {
            "look": {"queries_per_config": look_queries},
            "look_visible": (
                {"queries_per_config": visible_queries, "min_visible": VISIBLE_MIN}
                if any("visible" in v for v in truth.looks.values())
                else {"skipped": "the sample's ground truth records no visibility (generated before it did)"}
            ),
            "look_nohint": (
                {"queries_per_config": look_queries, "given": "market only"}
                if options.nohint
                else {"skipped": "not asked for (--no-nohint)"}
            ),
            "text_caption": {"queries_per_config": len(text_ids)},
            "text_title": {"queries_per_config": len(text_ids)},
            "similar": (
                {"queries_per_config": min(len(relevance), options.max_similar_queries)}
                if relevance
                else {"skipped": "the sample has no near-duplicates: no two products share an image or a stored "
                                 "dedup group, so product -> similar has no relevant items to score"}  # fmt: skip
            ),
        },
        "grouping": grouping,
        "baseline": baseline,
        "configs": per_config,
        "comparisons": comparisons,
        "comparisons_by_variant": comparisons_by_variant,
        "seconds": 0.0,
    }
    summary["seconds"] = round(time.perf_counter() - started, 1)
    run = EvalRun(run_id, run_dir, configs, summary, queries)
    run.json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    per_query = run_dir / "queries.jsonl"
    with per_query.open("w", encoding="utf-8") as out:
        for name, scored in queries.items():
            for q in scored:
                row = {"config": name, **{k: v for k, v in asdict(q).items() if k != "results"}}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_report(run, truth)
    return run
