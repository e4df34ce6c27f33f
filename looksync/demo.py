"""The main job on one machine with embedded defaults, as ``looksync demo`` / ``make demo`` run it.

sample catalog (with a few planted faults) -> fine-tune CLIP on the sample's (image, caption) pairs ->
image server on loopback -> ingest each vendor feed -> build and swap in an index version -> start the
service under gunicorn -> send a sample look as the app sends it (only the market) -> print per-layer
results next to the look's ground truth.

No weights can be downloaded on a fresh machine, so the demo starts from a random-weight LookSync-Tiny
and fine-tunes it on the sample catalog (``looksync.quality.finetune``: contrastive, about a minute on 2 CPU
cores); the tuned checkpoint is what it ingests, indexes and serves with, loaded through the normal
checkpoint path, so the first look search returns garments of the right layer, colour and pattern.
A tuned checkpoint already in the workdir for the same sample and settings is reused. ``epochs=0``
skips fine-tuning and runs on random weights (plumbing only). With real weights, set
LOOKSYNC_CLIP_MODEL/LOOKSYNC_CLIP_WEIGHTS and run the step-by-step commands instead.

The look is searched without gender or layers: the service reads them from the look's regions with
detection heads (``looksync.search.detection``) that the demo trains as ``looksync heads train`` does: on the
tuned checkpoint's crops of looks generated for them with a catalog of their own (fixed-frame and varied
framings), calibrated and measured on held-out ones; the searched look is not among them.

The terminal shows the six steps, progress bars for fine-tuning, ingestion and indexing, and the results;
every library's log and the detailed lines (paths, ids, full responses) go to ``<workdir>/demo.log``
(``looksync.console``), the service's output to ``<workdir>/service.log``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from looksync.console import Console, log_to_file, shown
from looksync.search.heads_recipe import RECIPE_LOOKS, RECIPE_SEED, sample_recipe

DEMO_MODEL = "LookSync-Tiny"
DEMO_EPOCHS = 30
DEMO_CROSS_LISTING_RATE = 0.1  # items also sold by other vendors: the demo's cards show their offers
DEMO_LOOKS = 160  # sample looks: the first is searched in step 6, the others are there to try
# the detection heads' training looks, as `looksync heads train` makes them by default (``sample_recipe``)
HEADS_LOOKS, HEADS_SEED = RECIPE_LOOKS, RECIPE_SEED
# the modules that place a look's regions, read them for the detection heads and fit the heads (their code keys
# the heads' cache: a change to any of them trains the demo's heads again)
HEADS_CODE = ("looksync.search.detection", "looksync.search.detection_training", "looksync.search.regions",
              "looksync.search.pose.regions", "looksync.search.pose.blazepose", "looksync.search.presence_net",
              "looksync.search.gender_net", "looksync.search.heads_recipe")  # fmt: skip
DEMO_TOP = 3  # the demo's check: each planted product within the top 3 of its layer
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float = 120.0, proc: subprocess.Popen | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"service exited with code {proc.returncode} before it was ready")
        try:
            resp = requests.get(f"{base_url}/readyz", timeout=2)
            if resp.status_code == 200:
                return resp.json()
            last = resp.text
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"service at {base_url} not ready after {timeout_s}s: {last}")


def start_service(env: dict[str, str], port: int, log_path: Path, root: Path | None = None) -> subprocess.Popen:
    """Start ``looksync serve`` (gunicorn) as a child process with the given LOOKSYNC_* environment; ``root``: the
    code of another checkout (benchmarks comparing two versions on one index)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "looksync.cli", "serve", "--port", str(port)],
        env={**os.environ, **env, **({"PYTHONPATH": str(root)} if root else {})},
        cwd=root or REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tuned_checkpoint(
    sample_dir: Path, models_dir: Path, seed: int, epochs: int, echo: Console | Callable[[str], object] = print
) -> Path:
    """Fine-tune DEMO_MODEL on the sample's pairs, or reuse the checkpoint an earlier run wrote for the same
    sample (a digest of its feeds and images is in the file name) and the same settings."""
    import hashlib

    from looksync.quality.finetune import RECIPE_VERSION, FinetuneConfig, finetune, sample_pairs
    from looksync.sample import SampleManifest

    # what training sees: feeds (minus the image server's address, which changes per run) and images
    manifest = SampleManifest.load(sample_dir)
    digest = hashlib.sha256()
    for path in sorted([*map(Path, manifest.feeds.values()), *sorted((sample_dir / "images").rglob("*"))]):
        if path.is_file():
            digest.update(path.relative_to(sample_dir).as_posix().encode())
            digest.update(path.read_bytes().replace(manifest.image_base_url.encode(), b""))
    sample_digest = digest.hexdigest()[:12]
    config = FinetuneConfig(model=DEMO_MODEL, init_weights=f"random:{seed}", epochs=epochs, seed=seed)
    checkpoint = models_dir / f"{DEMO_MODEL}-tuned-{sample_digest}-e{epochs}-s{seed}-r{RECIPE_VERSION}.pt"
    report_path = checkpoint.with_suffix(".report.json")
    console = Console.of(echo)
    if checkpoint.is_file() and report_path.is_file():
        report = json.loads(report_path.read_text())
        console.say(f"    reusing {checkpoint.name} (trained {report['seconds']} s)")
    else:
        pairs = sample_pairs(sample_dir)
        console.say(
            f"    fine-tuning {DEMO_MODEL} from random weights on {len(pairs)} (image, caption) pairs, {epochs} epochs"
        )
        with console.progress("    epochs") as bar:
            report = finetune(
                pairs, config, checkpoint, lambda done, of, loss: bar.update(done, of, f"loss {loss:.2f}")
            )
        report = report.__dict__
    before, after = report["recall_before"]["recall@10"], report["recall_after"]["recall@10"]
    crops = ""
    if report.get("crop_recall_after"):
        crop_before, crop_after = report["crop_recall_before"]["recall@10"], report["crop_recall_after"]["recall@10"]
        crops = f"on-figure crop->packshot Recall@10 {crop_before:.2f} -> {crop_after:.2f}; "
    console.say(
        f"    held-out text->image Recall@10 {before:.2f} (random) -> {after:.2f} (tuned); {crops}"
        f"loss {report['loss_curve'][0]:.2f} -> {report['loss_curve'][-1]:.2f}"
    )
    console.detail(f"checkpoint {checkpoint}; report {report_path}")
    return checkpoint


def demo_heads(settings, encoder, checkpoint: Path, train_root: Path, looks: int, console: Console) -> Path:
    """Detection heads for the no-hint look search, trained as ``looksync heads train`` trains them
    (``train_from_sample``: ``looks`` looks generated under ``train_root`` with their own catalog, fitted on the
    configured region finder's crops); reused when the checkpoint, the finder and the recipe (in the heads' file
    name) are the same, and so are the code, taxonomy and pose settings that place the regions (in that digest too)."""
    import hashlib

    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.code_digest import modules_digest
    from looksync.search.detection import HEADS_FORMAT, DetectionHeads
    from looksync.search.detection_training import train_from_sample
    from looksync.search.region_finders import make_region_finder

    recipe = sample_recipe(looks)
    finder = make_region_finder(settings.region_finder, encoder, settings=settings).name  # auto: pose or layout
    # the heads are made again when anything that places or reads the regions changes: code, taxonomy, settings
    placement = [modules_digest(HEADS_CODE).hex(), repr(get_taxonomy()),
                 *(f"{name}={getattr(settings, name)}" for name in sorted(type(settings).model_fields) if name.startswith("pose_"))]  # fmt: skip
    digest = hashlib.sha256("\x00".join([json.dumps(recipe, sort_keys=True), str(HEADS_SEED), *placement]).encode()).hexdigest()[:12]
    path = checkpoint.with_name(f"{checkpoint.stem}-heads{HEADS_FORMAT}-{finder}-{digest}.npz")
    if path.is_file():
        heads = DetectionHeads.load(path)
        console.say(f"    reusing detection heads {path.name}")
    else:
        console.say(f"    detection heads (layers and gender read from the look's regions): {looks} looks of their "
                    f"own catalog, as `looksync heads train` makes them")  # fmt: skip
        heads = train_from_sample(settings, encoder, train_root, seed=HEADS_SEED, echo=console.detail, **recipe)
        heads.save(path)
    held = heads.meta.get("validation")
    if held:
        console.say(f"    heads on {held['looks']} held-out looks: layer presence precision {held['presence_precision']:.2f}"
                    f" / recall {held['presence_recall']:.2f}, gender {held['gender_accuracy']:.2f}")  # fmt: skip
    console.detail(f"detection heads {path}: {json.dumps(heads.meta)}")
    return path


def detected_line(response: dict) -> str:
    """What the service read from a look sent without hints: its layers, the layers out of the look, and the
    gender with how sure it was and whether it filtered the search."""
    layers = ", ".join(layer["layer"] for layer in response["layers"]) or "none"
    line = f"read from the look: layers {layers}"
    guess = response.get("gender_detected")
    if guess:
        used = "filtered on it" if guess["used"] else "too unsure to filter: searched across genders"
        line += f"; gender {guess['gender']} (confidence {guess['confidence']:.2f}, {used})"
    return line


def planted_in_top(planted: dict[str, str], response: dict, top: int = DEMO_TOP) -> list[str]:
    """The planted layers whose product is within the first ``top`` results of its layer."""
    found = {layer["layer"]: [p["product_id"] for p in layer["products"][:top]] for layer in response["layers"]}
    return [layer for layer, product_id in sorted(planted.items()) if product_id in found.get(layer, [])]


def _attributes(p: dict) -> str:
    colour = (p.get("colours") or ["?"])[0]
    return f"{colour} {p.get('pattern') or '?'} {p.get('category')}"


def compare_with_planted(base_url: str, planted: dict[str, str], response: dict) -> list[str]:
    """Per planted layer: where the planted product ranks, and the top result's colour, pattern and
    category next to the planted product's (read through the public products endpoint)."""
    found = {layer["layer"]: layer["products"] for layer in response["layers"]}
    lines = ["planted products vs results:"]
    for layer, product_id in sorted(planted.items()):
        got = requests.get(f"{base_url}/v1/products/{product_id}", timeout=10)
        truth = got.json().get("product", got.json()) if got.ok else {}
        if layer not in found or not found[layer]:
            lines.append(f"    {layer}: not detected (planted: {_attributes(truth)})")
            continue
        ids = [p["product_id"] for p in found[layer]]
        rank = f"at rank {ids.index(product_id) + 1}" if product_id in ids else f"not in top {len(ids)}"
        top = found[layer][0]
        same = [a for a in ("category", "pattern") if top.get(a) == truth.get(a)]
        if (top.get("colours") or [None])[0] == (truth.get("colours") or [None])[0]:
            same.insert(0, "colour")
        lines.append(
            f"    {layer}: planted product {rank}; planted {_attributes(truth)}, top result {_attributes(top)} "
            f"(same {', '.join(same) or 'nothing'})"
        )
    return lines


def _expected_on_terminal(record: logging.LogRecord) -> bool:
    # open_clip warns "No pretrained weights loaded for model ... initialized randomly" when the demo builds
    # its random-weight starting point, which it does on purpose (step 2 says so): the file keeps it
    return not (record.name == "root" and "initialized randomly" in record.getMessage())


def _quarantined(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} quarantined ({', '.join(counts)})" if counts else "none quarantined"


def run_demo(
    workdir: Path,
    size: int = 300,
    seed: int = 7,
    fault_rate: float = 0.03,
    epochs: int = DEMO_EPOCHS,
    echo: Console | Callable[[str], object] = print,
    bars: bool = False,
    looks: int = DEMO_LOOKS,
    heads_looks: int = HEADS_LOOKS,
) -> dict:
    """Every step of the main job; ``echo`` gets the short terminal view (``bars``: progress bars drawn in
    place, for a TTY), ``<workdir>/demo.log`` the full log. Returns the look search's response."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if looks < 1:
        raise ValueError(f"looks must be >= 1 (the first is searched), got {looks}")
    if heads_looks < 10:
        raise ValueError(f"heads_looks must be >= 10 (the detection heads are fitted, calibrated and measured on them), got {heads_looks}")
    workdir = workdir.resolve()
    console = echo if isinstance(echo, Console) else Console(echo, bars=bars)
    log_path = workdir / "demo.log"
    console.echo(f"LookSync demo in {shown(workdir)}; full log: {shown(log_path)}")
    with log_to_file(console, log_path, terminal_filter=_expected_on_terminal):
        try:
            response = _run_steps(workdir, size, seed, fault_rate, epochs, looks, heads_looks, console)
        except Exception as exc:
            logging.getLogger(__name__).error("demo failed: %s", exc, exc_info=True)
            raise
        finally:
            console.echo(f"\nfull log: {shown(log_path)}; service log: {shown(workdir / 'service.log')}")
    return response


def _run_steps(workdir: Path, size: int, seed: int, fault_rate: float, epochs: int, looks: int, heads_looks: int,
               console: Console) -> dict:  # fmt: skip
    from embeddings import load_encoder, save_random_checkpoint
    from looksync.client import format_look_response, search_look
    from looksync.index.factory import open_index
    from looksync.pipelines.dedup import group_catalog
    from looksync.pipelines.ingest import STAGES, ingest_feed
    from looksync.pipelines.reindex import build_index
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    sample_dir = workdir / "sample"
    sample_dir.mkdir(parents=True, exist_ok=True)
    console.say(f"1/6 sample catalog ({size} products, fault rate {fault_rate})")
    image_server = serve_sample(sample_dir, port=0)
    try:
        manifest = generate_sample(
            sample_dir, size=size, seed=seed, fault_rate=fault_rate, image_base_url=image_server.url,
            cross_listing_rate=DEMO_CROSS_LISTING_RATE, n_looks=looks,
        )
        console.say(
            f"    {sum(manifest.product_counts.values())} products from {len(manifest.feeds)} vendor feeds, "
            f"{sum(manifest.fault_counts.values())} planted faults, {manifest.look_count} looks"
        )
        console.detail(f"sample in {sample_dir}: products {manifest.product_counts}, faults {manifest.fault_counts}")
        truth = json.loads(Path(manifest.ground_truth_path).read_text())
        look_id, expected = next(iter(sorted(truth.items())))  # the look searched in step 6
        if epochs:
            console.say(f"2/6 fine-tune {DEMO_MODEL} on the sample catalog, then its look detection heads")
            checkpoint = tuned_checkpoint(sample_dir, workdir / "models", seed, epochs, console)
        else:
            console.say(f"2/6 no fine-tuning (--epochs 0): {DEMO_MODEL} with random weights, plumbing only; "
                        "look detection heads on them")
            checkpoint = save_random_checkpoint(
                DEMO_MODEL, workdir / "models" / f"{DEMO_MODEL}-random-{seed}.pt", seed=seed
            )
        settings = load_settings(
            data_dir=workdir / "data", clip_model=DEMO_MODEL, clip_weights=str(checkpoint), fetch_allow_private=True,
            device="cpu",
        )  # fmt: skip
        encoder = load_encoder(DEMO_MODEL, str(checkpoint), device="cpu")
        heads = demo_heads(settings, encoder, checkpoint, workdir / "heads-train", heads_looks, console)
        env = {
            "LOOKSYNC_DATA_DIR": str(workdir / "data"),
            "LOOKSYNC_CLIP_MODEL": DEMO_MODEL,
            "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint),
            "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",  # the sample's images are served on loopback
            "LOOKSYNC_DEVICE": "cpu",
            # the service reads a look's layers and gender with the heads trained for its finder and checkpoint
            "LOOKSYNC_REGION_FINDER": settings.region_finder,
            "LOOKSYNC_DETECTION_HEADS": str(heads),
        }
        feeds = list(manifest.feeds.items())
        console.say(
            f"3/6 ingest {len(feeds)} vendor feeds: parse, validate, fetch images, embed with {encoder.model_id}"
        )
        with console.progress("    feeds") as bar:
            for n, (vendor, feed) in enumerate(feeds):

                def stage_done(stage: str, n: int = n, vendor: str = vendor) -> None:
                    bar.update(n * len(STAGES) + STAGES.index(stage) + 1, len(feeds) * len(STAGES), f"{vendor} {stage}")

                report = ingest_feed(settings, vendor, feed, encoder, progress=stage_done)
                bar.note(
                    f"    {vendor}: {report.rows_read} rows, {report.products_stored} stored, {report.embedded} embedded, "
                    f"{report.thumbnails.get('written', 0)} thumbnails, {_quarantined(report.quarantined)}"
                )
                console.detail(f"{vendor} quarantined rows: {report.quarantine_path}")
        console.say(f"    quarantined rows with their reasons: {shown(settings.data_dir / 'quarantine')}/")
        groups = group_catalog(settings, encoder.model_id)
        console.say(f"    product groups: {groups['groups']} items sold at several shops "
                    f"({groups['grouped_products']} listings, shown as one card with their offers)")  # fmt: skip
    finally:
        image_server.close()

    console.say("4/6 build index version and make it live")
    with console.progress("    index") as bar:
        build = build_index(settings, open_index(settings), encoder.model_id,
                            progress=lambda step, n, of: bar.update(n, of, step))  # fmt: skip
        bar.note(f"    {build.version}: {build.indexed} products")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    console.say(f"5/6 start service at {base_url} (log: {shown(workdir / 'service.log')})")
    proc = start_service(env, port, workdir / "service.log")
    try:
        ready = wait_ready(base_url, proc=proc)
        console.say(f"    ready: {ready.get('products')} products, model {ready.get('model_id')}")
        console.detail(f"readyz: {ready}")
        look_path = Path(manifest.looks_dir) / f"{look_id}.png"
        # as the app sends it: the shopper's market only; the service reads the layers and gender from the look
        console.say(f"6/6 search look {look_path.name} with market {expected['market']} only (no gender, no layers)")
        console.detail(f"look {look_path}; planted: {expected['products']} (gender {expected['gender']})")
        response = search_look(base_url, look_path, market=expected["market"], k=5)
        console.detail(f"response: {json.dumps(response, ensure_ascii=False)}")
        console.echo("")
        console.say(format_look_response(response))
        console.echo("")
        console.say(f"{detected_line(response)} (planted: {', '.join(sorted(expected['products']))}; "
                    f"gender {expected['gender']})")  # fmt: skip
        console.say("\n".join(compare_with_planted(base_url, expected["products"], response)))
        within = planted_in_top(expected["products"], response)
        console.say(f"planted products within the top {DEMO_TOP}: {len(within)} of {len(expected['products'])}")
        return response
    finally:
        stop_service(proc)
