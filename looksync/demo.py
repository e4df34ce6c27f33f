"""The main job on one machine with embedded defaults, as ``looksync demo`` / ``make demo`` run it.

sample catalog (with a few planted faults) -> fine-tune CLIP on the sample's (image, caption) pairs ->
image server on loopback -> ingest each vendor feed -> build and swap in an index version -> start the
service under gunicorn -> send a sample look -> print per-layer results next to the look's ground truth.

No weights can be downloaded on a fresh machine, so the demo starts from a random-weight LookSync-Tiny
and fine-tunes it on the sample catalog (``looksync.quality.finetune``: contrastive, about a minute on 2 CPU
cores); the tuned checkpoint is what it ingests, indexes and serves with, loaded through the normal
checkpoint path, so the first look search returns garments of the right layer, colour and pattern.
A tuned checkpoint already in the workdir for the same sample and settings is reused. ``epochs=0``
skips fine-tuning and runs on random weights (plumbing only). With real weights, set
LOOKSYNC_CLIP_MODEL/LOOKSYNC_CLIP_WEIGHTS and run the step-by-step commands instead.

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

DEMO_MODEL = "LookSync-Tiny"
DEMO_EPOCHS = 30
DEMO_CROSS_LISTING_RATE = 0.1  # items also sold by other vendors: the demo's cards show their offers
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


def start_service(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """Start ``looksync serve`` (gunicorn) as a child process with the given LOOKSYNC_* environment."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "looksync.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
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
) -> dict:
    """Every step of the main job; ``echo`` gets the short terminal view (``bars``: progress bars drawn in
    place, for a TTY), ``<workdir>/demo.log`` the full log. Returns the look search's response."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    workdir = workdir.resolve()
    console = echo if isinstance(echo, Console) else Console(echo, bars=bars)
    log_path = workdir / "demo.log"
    console.echo(f"LookSync demo in {shown(workdir)}; full log: {shown(log_path)}")
    with log_to_file(console, log_path, terminal_filter=_expected_on_terminal):
        try:
            response = _run_steps(workdir, size, seed, fault_rate, epochs, console)
        except Exception as exc:
            logging.getLogger(__name__).error("demo failed: %s", exc, exc_info=True)
            raise
        finally:
            console.echo(f"\nfull log: {shown(log_path)}; service log: {shown(workdir / 'service.log')}")
    return response


def _run_steps(workdir: Path, size: int, seed: int, fault_rate: float, epochs: int, console: Console) -> dict:
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
            cross_listing_rate=DEMO_CROSS_LISTING_RATE,
        )
        console.say(
            f"    {sum(manifest.product_counts.values())} products from {len(manifest.feeds)} vendor feeds, "
            f"{sum(manifest.fault_counts.values())} planted faults, {manifest.look_count} looks"
        )
        console.detail(f"sample in {sample_dir}: products {manifest.product_counts}, faults {manifest.fault_counts}")
        if epochs:
            console.say(f"2/6 fine-tune {DEMO_MODEL} on the sample catalog")
            checkpoint = tuned_checkpoint(sample_dir, workdir / "models", seed, epochs, console)
        else:
            console.say(f"2/6 no fine-tuning (--epochs 0): {DEMO_MODEL} with random weights, plumbing only")
            checkpoint = save_random_checkpoint(
                DEMO_MODEL, workdir / "models" / f"{DEMO_MODEL}-random-{seed}.pt", seed=seed
            )
        env = {
            "LOOKSYNC_DATA_DIR": str(workdir / "data"),
            "LOOKSYNC_CLIP_MODEL": DEMO_MODEL,
            "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint),
            "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",  # the sample's images are served on loopback
            "LOOKSYNC_DEVICE": "cpu",
        }
        settings = load_settings(
            data_dir=workdir / "data", clip_model=DEMO_MODEL, clip_weights=str(checkpoint), fetch_allow_private=True,
            device="cpu",
        )  # fmt: skip
        encoder = load_encoder(DEMO_MODEL, str(checkpoint), device="cpu")
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
        truth = json.loads(Path(manifest.ground_truth_path).read_text())
        look_id, expected = next(iter(sorted(truth.items())))
        look_path = Path(manifest.looks_dir) / f"{look_id}.png"
        # the shopper's market and gender, and the layers the look was generated with (its outfit), as the
        # app sends them: LookSync-Tiny's zero-shot gender and layer detection on a whole look is weak
        # (docs/evaluation.md), so the demo does not lean on it
        layers = sorted(expected["products"])
        console.say(f"6/6 search look {look_path.name} (market {expected['market']}, gender {expected['gender']}, "
                    f"layers {', '.join(layers)})")  # fmt: skip
        console.detail(f"look {look_path}; planted: {expected['products']}")
        response = search_look(base_url, look_path, market=expected["market"], gender=expected["gender"],
                               layers=layers, k=5)  # fmt: skip
        console.detail(f"response: {json.dumps(response, ensure_ascii=False)}")
        console.echo("")
        console.say(format_look_response(response))
        console.echo("")
        console.say("\n".join(compare_with_planted(base_url, expected["products"], response)))
        return response
    finally:
        stop_service(proc)
