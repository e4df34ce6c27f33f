"""Live-path latency with and without shadow mirroring (issue 19).

Builds a sample catalog (LookSync-Tiny random weights, seed 5) as live and a shadow version of another
model (random:7, embedded by the rollout's candidate step), serves the real Flask app on a threaded
loopback server, and sends look searches at concurrency 4 (look cache off, so every request computes).
Each round runs four phases in a shuffled order: no mirror (the anchor), no mirror again (an A/A arm: its
ratio to the anchor is the run's noise floor), mirroring ``--share`` of queries, and mirroring every
query (share 1: the worker is busy all the time, the bounded queue drops what it cannot take). Between
phases the mirror's queue is drained, so a phase's backlog never runs in the next one.

Prints, per phase and round: client p50/p95/p99, requests, errors, mirrored, dropped, load; then per arm
the pooled p50/p95/p99 and the p95 ratio to the anchor, with the load average.

    python bench/bench_shadow.py                     # ~3 min on 2 cores
    python bench/bench_shadow.py --requests 200 --rounds 3
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = "LookSync-Tiny"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(workdir: Path, size: int, looks: int):
    """The sample, ingested with the live model and indexed; a shadow version of the other model."""
    from embeddings import load_encoder, save_random_checkpoint
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.reindex import build_index
    from looksync.quality.rollout.steps import build_candidate
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    server = serve_sample(workdir / "sample", port=0)
    manifest = generate_sample(workdir / "sample", size=size, seed=3, image_base_url=server.url, n_looks=looks)
    checkpoint = save_random_checkpoint(MODEL, workdir / "live.pt", seed=5)
    settings = load_settings(data_dir=workdir / "data", clip_model=MODEL, clip_weights=str(checkpoint), device="cpu",
                             fetch_allow_private=True, look_cache_ttl_s=0, text_vocab_precompute="off")  # fmt: skip
    live_encoder = load_encoder(MODEL, str(checkpoint), device="cpu")
    for vendor, feed in manifest.feeds.items():
        ingest_feed(settings, vendor, feed, live_encoder)
    build_index(settings, open_index(settings), live_encoder.model_id)
    shadow_encoder = load_encoder(MODEL, "random:7", device="cpu")
    build_candidate(settings, open_index(settings), shadow_encoder)
    server.close()
    return settings, manifest, live_encoder, shadow_encoder


def run_phase(name: str, url: str, bodies: list[dict], count: int, concurrency: int) -> dict:
    local = threading.local()

    def one(i: int) -> tuple[bool, float]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        t0 = time.perf_counter()
        try:
            ok = session.post(f"{url}/v1/looks/search", json=bodies[i % len(bodies)], timeout=60).status_code == 200
        except requests.RequestException:
            ok = False
        return ok, (time.perf_counter() - t0) * 1000

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(count)))
    ms = [m for ok, m in results if ok]
    return {"phase": name, "requests": count, "errors": sum(not ok for ok, _ in results),
            "client_ms": [round(pct(ms, q), 1) for q in (50, 95, 99)], "ms": ms}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=150)
    parser.add_argument("--looks", type=int, default=8)
    parser.add_argument("--requests", type=int, default=80, help="requests per phase and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--share", type=float, default=0.05, help="the mirrored share of the middle phase")
    parser.add_argument("--queue", type=int, default=64, help="the mirror's queue bound")
    args = parser.parse_args()

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from looksync.search.shadow import WORKER_NICE, ShadowMirror, version_engine
    from serving import create_app

    workdir = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    t0 = time.perf_counter()
    settings, manifest, live_encoder, shadow_encoder = build(workdir, args.products, args.looks)
    print(
        f"built {args.products} products, live + shadow versions in {time.perf_counter() - t0:.0f} s; load average {load()}"
    )

    index = open_index(settings)
    engine = SearchEngine(settings, live_encoder, index, MemoryCache())
    app = create_app(settings, engine)
    shadow_engine = version_engine(settings, shadow_encoder, index, index.shadow_version())
    mirrors = {
        nice: ShadowMirror(
            shadow_engine,
            index,
            index.shadow_version(),
            workdir / "shadow",
            share=0.0,
            queue_size=args.queue,
            nice=nice,
        )  # fmt: skip
        for nice in (WORKER_NICE, 0)
    }
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    looks = sorted(Path(manifest.looks_dir).glob("*.png"))
    truth = json.loads(Path(manifest.ground_truth_path).read_text())
    bodies = [{"image_base64": base64.b64encode(p.read_bytes()).decode(), "market": truth[p.stem]["market"], "k": 10}
              for p in looks]  # fmt: skip
    run_phase("warm-up", url, bodies, 2 * len(bodies), args.concurrency)

    phases = [("no mirror", None, WORKER_NICE), ("no mirror (A/A)", None, WORKER_NICE),
              (f"mirror share {args.share}", args.share, WORKER_NICE), ("mirror share 1.0", 1.0, WORKER_NICE),
              ("mirror share 1.0, nice 0", 1.0, 0)]  # fmt: skip
    collected: dict[str, list[float]] = {name: [] for name, _, _ in phases}
    order = random.Random(0)
    for rnd in range(1, args.rounds + 1):
        for name, share, nice in order.sample(phases, len(phases)):
            mirror = mirrors[nice]
            engine.mirror = None if share is None else mirror
            mirror.share = share or 0.0
            before_compared, before_dropped = mirror.compared, mirror.dropped
            row = run_phase(name, url, bodies, args.requests, args.concurrency)
            mirror.drain(600)
            collected[name] += row.pop("ms")
            print(json.dumps({**row, "round": rnd, "mirrored": mirror.compared - before_compared,
                              "dropped": mirror.dropped - before_dropped, "load": load()}), flush=True)  # fmt: skip
    server.shutdown()
    for mirror in mirrors.values():
        mirror.close()

    anchor = pct(collected["no mirror"], 95)
    print(f"\nconcurrency {args.concurrency}, {args.rounds} rounds x {args.requests} look searches per phase, shadow "
          f"worker nice {WORKER_NICE} unless the arm says otherwise; load average {load()}")  # fmt: skip
    for name, ms in collected.items():
        print(f"{name:>26}: p50 {pct(ms, 50):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  p99 {pct(ms, 99):7.1f} ms  "
              f"p95 ratio to no mirror {pct(ms, 95) / anchor:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
