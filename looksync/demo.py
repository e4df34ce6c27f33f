"""The main job on one machine with embedded defaults, as ``looksync demo`` / ``make demo`` run it.

sample catalog (with a few planted faults) -> image server on loopback -> ingest each vendor feed ->
build and swap in an index version -> start the service under gunicorn -> send a sample look ->
print per-layer results next to the look's ground truth.

No weights can be downloaded on a fresh machine, so the demo creates a random-weight checkpoint of
the small LookSync-Tiny architecture and loads it through the normal checkpoint path: the plumbing
is real end to end; match quality needs trained weights (set LOOKSYNC_CLIP_MODEL/LOOKSYNC_CLIP_WEIGHTS).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

DEMO_MODEL = "LookSync-Tiny"
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


def run_demo(workdir: Path, size: int = 300, seed: int = 7, fault_rate: float = 0.03, echo: Callable = print) -> dict:
    from embeddings import load_encoder, save_random_checkpoint
    from looksync.client import format_look_response, search_look
    from looksync.index.factory import open_index
    from looksync.ingest import ingest_feed
    from looksync.reindex import build_index
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    workdir = workdir.resolve()
    sample_dir = workdir / "sample"
    sample_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = save_random_checkpoint(DEMO_MODEL, workdir / "models" / f"{DEMO_MODEL}-random-{seed}.pt", seed=seed)
    env = {
        "LOOKSYNC_DATA_DIR": str(workdir / "data"),
        "LOOKSYNC_CLIP_MODEL": DEMO_MODEL,
        "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint),
        "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",  # the sample's images are served on loopback
        "LOOKSYNC_DEVICE": "cpu",
    }
    settings = load_settings(
        data_dir=workdir / "data", clip_model=DEMO_MODEL, clip_weights=str(checkpoint), fetch_allow_private=True, device="cpu"
    )
    echo(f"1/5 sample catalog ({size} products, fault rate {fault_rate}) and {DEMO_MODEL} random-weight checkpoint")
    image_server = serve_sample(sample_dir, port=0)
    try:
        manifest = generate_sample(sample_dir, size=size, seed=seed, fault_rate=fault_rate, image_base_url=image_server.url)
        encoder = load_encoder(DEMO_MODEL, str(checkpoint), device="cpu")
        echo(f"2/5 ingest: model {encoder.model_id}")
        for vendor, feed in manifest.feeds.items():
            report = ingest_feed(settings, vendor, feed, encoder)
            echo(
                f"    {vendor}: {report.rows_read} rows, {report.products_stored} stored, {report.embedded} embedded, "
                f"quarantined {report.quarantined or 0} -> {report.quarantine_path}"
            )
    finally:
        image_server.close()

    echo("3/5 build index version and make it live")
    build = build_index(settings, open_index(settings), encoder.model_id)
    echo(f"    {build.version}: {build.indexed} products")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    echo(f"4/5 start service at {base_url} (log: {workdir / 'service.log'})")
    proc = start_service(env, port, workdir / "service.log")
    try:
        ready = wait_ready(base_url, proc=proc)
        echo(f"    ready: {ready}")
        truth = json.loads(Path(manifest.ground_truth_path).read_text())
        look_id, expected = next(iter(sorted(truth.items())))
        look_path = Path(manifest.looks_dir) / f"{look_id}.png"
        echo(f"5/5 search look {look_path.name} (market {expected['market']}); planted: {expected['products']}")
        response = search_look(base_url, look_path, market=expected["market"], k=5)
        echo(format_look_response(response))
        echo("\nplanted products vs results (random weights: expect plumbing, not quality):")
        found = {layer["layer"]: [p["product_id"] for p in layer["products"]] for layer in response["layers"]}
        for layer, product_id in sorted(expected["products"].items()):
            if layer not in found:
                echo(f"    {layer}: not detected")
            else:
                rank = found[layer].index(product_id) + 1 if product_id in found[layer] else None
                echo(f"    {layer}: planted product {'at rank ' + str(rank) if rank else 'not in top 5'}")
        return response
    finally:
        stop_service(proc)
