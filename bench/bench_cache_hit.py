"""Look cache hits against the real service on loopback (issue 17, target 4: a hit under 20 ms p95 at
concurrency 16).

Builds a small embedded index (a hit never reads it), starts the service under gunicorn as deployed
(1 worker, GUNICORN_THREADS threads, the request log at INFO; LookSync-Tiny random weights by default: a
hit never runs the model), fills the look cache with one 5-layer look and sends that same look again at
concurrency 1, 4 and 16, with two clients: a lean one (``bench/http_load.py``: one thread driving kept-alive raw sockets from an
event loop, each request a multipart body with a fresh boundary as browsers and ``requests`` send, made by
joining bytes, so the client's own CPU stays small next to the server's on two shared cores) and
``requests`` in a thread pool (what ``bench_service.py`` uses; its own CPU cost is part of what it
measures). The anchor, measured in the same run with the lean client: ``GET /healthz``, the service's
HTTP stack with no work behind it.

Prints the load average, client p50/p95/p99 per phase, throughput, the CPU milliseconds per request of
the service (gunicorn master and workers, from ``/proc``) and of the client process, errors, the hit's
p95 over the anchor's, and the hit's p95 against the 20 ms target.

    python bench/bench_cache_hit.py
    python bench/bench_cache_hit.py --redis-url redis://127.0.0.1:6379/14   # Redis behind the local LRU
    python bench/bench_cache_hit.py --look-scale 3                          # a ~3 MB look, not the 5 kB sample
    git worktree add --detach /tmp/base <commit> && python bench/bench_cache_hit.py --baseline-root /tmp/base

``--baseline-root`` also starts the service of another checkout (same index, same settings) and runs
every phase against both, alternately, printing this tree's p95 over the baseline's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_service import LAYERS, build_index, pct  # noqa: E402
from bench.http_load import LoopClient, request_bytes  # noqa: E402
from looksync.demo import free_port, start_service, stop_service, wait_ready  # noqa: E402

PARAMS = {"market": "US", "gender": "women", "layers": LAYERS, "k": 10, "rerank": "off"}


def multipart(look: bytes) -> tuple[bytes, str]:
    """A multipart look search body with a fresh boundary, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(PARAMS)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="look.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()  # fmt: skip
    return head + look + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class ThreadClient:
    """One kept-alive ``http.client`` connection per pool thread (the lean client of the first runs)."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": content_type} if content_type else {}
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            return False, (time.perf_counter() - t0) * 1000, None
        return resp.status == 200, (time.perf_counter() - t0) * 1000, data


def pooled(send, count: int, concurrency: int, check=None) -> tuple[list[float], int, float]:
    """``send()`` -> (ok, ms, body), ``count`` times from ``concurrency`` threads."""
    latencies, errors = [], 0
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for ok, ms, data in pool.map(lambda i: send(), range(count)):
            if ok and (check is None or check(data)):
                latencies.append(ms)
            else:
                errors += 1
    return latencies, errors, time.perf_counter() - start


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children so far (Linux ``/proc``): the service's
    gunicorn master and workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def phase(name: str, run, count: int, concurrency: int, server_pid: int) -> dict:
    """``run(count, concurrency)`` -> (latencies, errors, wall seconds), printed as one row with the CPU
    milliseconds per request of the service (all its processes) and of this client process, which on a
    machine shared with other work say where the time goes better than the wall clock does."""
    server_before, client_before = process_cpu_s(server_pid), time.process_time()
    latencies, errors, wall = run(count, concurrency)
    server_cpu, client_cpu = process_cpu_s(server_pid) - server_before, time.process_time() - client_before
    row = {"phase": name, "c": concurrency, "requests": count, "errors": errors, "rps": round(count / wall, 1),
           "client_ms": [round(pct(latencies, q), 2) for q in (50, 95, 99)],
           "cpu_ms_per_request": {"server": round(server_cpu * 1000 / count, 3),
                                  "client": round(client_cpu * 1000 / count, 3)},
           "load": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per phase")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--model", default="LookSync-Tiny")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--redis-url", default=None, help="cache in Redis behind the per-worker LRU (as deployed)")
    parser.add_argument("--threads", default=os.environ.get("GUNICORN_THREADS", "4"), help="gunicorn threads")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (each holds a model; use --redis-url)")
    parser.add_argument("--baseline-root", type=Path, default=None, help="a checkout to compare with (its service too)")
    parser.add_argument("--log-level", default="INFO",
                        help="the service's LOOKSYNC_LOG_LEVEL: INFO (the default, as deployed) writes a JSON line per request")  # fmt: skip
    parser.add_argument("--look-scale", type=int, default=1,
                        help="upscale the sample look this many times (seeded noise of +-3 keeps the PNG large): 3 gives a "
                             "~3 MB look, the size of a generated one, instead of the sample's 5 kB")  # fmt: skip
    parser.add_argument("--clients", default="lean,requests",
                        help="hit phases' clients: lean (one-thread event loop), requests, threads (http.client per thread)")  # fmt: skip
    args = parser.parse_args()

    from embeddings import load_encoder, save_random_checkpoint
    from looksync.sample import generate_sample

    print(f"load average at start: {os.getloadavg()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-cache-hit-"))
    checkpoint = save_random_checkpoint(args.model, workdir / "models" / f"{args.model}-random.pt", seed=0)
    encoder = load_encoder(args.model, str(checkpoint), device="cpu")
    build_index(workdir / "data", encoder.model_id, encoder.dim, args.products)
    del encoder
    manifest = generate_sample(workdir / "sample", size=60, seed=5, fault_rate=0.0,
                               image_base_url="http://127.0.0.1:9", n_looks=1)  # fmt: skip
    look = scaled_look(sorted(Path(manifest.looks_dir).glob("*.png"))[0].read_bytes(), args.look_scale)
    print(f"look: {len(look):,} bytes (scale {args.look_scale})", flush=True)
    env = {
        "LOOKSYNC_DATA_DIR": str(workdir / "data"), "LOOKSYNC_CLIP_MODEL": args.model,
        "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint), "LOOKSYNC_DEVICE": "cpu", "LOOKSYNC_LOG_LEVEL": args.log_level,
        "LOOKSYNC_TEXT_VOCAB_PRECOMPUTE": "off", "GUNICORN_WORKERS": str(args.workers), "GUNICORN_THREADS": str(args.threads),
    }  # fmt: skip
    if args.redis_url:
        env["LOOKSYNC_REDIS_URL"] = args.redis_url
    services = {"this tree": start_service(env, free_port(), workdir / "service.log")}
    if args.baseline_root:
        services["baseline"] = start_service(env, free_port(), workdir / "baseline.log", root=args.baseline_root)
    rows = []
    try:
        clients = {name: Clients(proc, look) for name, proc in services.items()}
        for name, client in clients.items():
            print(f"{name}: ready {wait_ready(client.base, timeout_s=300, proc=services[name])}", flush=True)
            ok, ms, data = client.threads.call("POST", "/v1/looks/search", *multipart(look))
            print(f"{name}: first (miss) {ms:.0f} ms: cache {json.loads(data).get('cache') if ok else data}", flush=True)  # fmt: skip
            client.lean_hits(20, 4)  # warm the threads and connections
        kinds = [k.strip() for k in args.clients.split(",")]
        for c in [int(x) for x in args.concurrency.split(",")]:
            for name, client in clients.items():
                anchor = phase("healthz (anchor)", client.lean_healthz, args.requests, c, services[name].pid)
                rows.append({"service": name, **anchor})
            for kind in kinds:
                for name, client in clients.items():
                    label, run = client.hit_phase(kind)
                    rows.append({"service": name, **phase(label, run, args.requests, c, services[name].pid)})
    finally:
        for proc in services.values():
            stop_service(proc)

    print(f"\nsummary (cache hit target: p95 < 20 ms at c=16; load average now {os.getloadavg()})")
    anchors = {(r["service"], r["c"]): r for r in rows if r["phase"].startswith("healthz")}
    baseline = {(r["phase"], r["c"]): r for r in rows if r["service"] == "baseline"}
    for r in rows:
        p95 = r["client_ms"][1]
        extra = ""
        if not r["phase"].startswith("healthz"):
            extra = (f"  p95 / healthz p95 = {p95 / anchors[r['service'], r['c']]['client_ms'][1]:.2f}"
                     f"  p95 / 20 ms target = {p95 / 20:.2f}")  # fmt: skip
        if r["service"] != "baseline" and (r["phase"], r["c"]) in baseline:
            extra += f"  p95 / baseline p95 = {p95 / baseline[r['phase'], r['c']]['client_ms'][1]:.2f}"
        cpu = r["cpu_ms_per_request"]
        print(f"{r['service']:<10} {r['phase']:<22} c={r['c']:<3} client p50/p95/p99 {r['client_ms']} ms  "
              f"{r['rps']} req/s  CPU ms/request server {cpu['server']} client {cpu['client']}  errors {r['errors']}  "
              f"load {r['load'][0]}{extra}")  # fmt: skip
    print(f"total errors: {sum(r['errors'] for r in rows)}")


def scaled_look(png: bytes, scale: int) -> bytes:
    """The look upscaled ``scale`` times with seeded noise of +-3 per channel (PNG keeps it large, as a
    photographic look is); the look itself when ``scale`` is 1."""
    if scale == 1:
        return png
    import io

    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(image.resize((image.width * scale, image.height * scale), Image.BICUBIC), dtype=np.int16)
    pixels = pixels + np.random.default_rng(0).integers(-3, 4, pixels.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def is_hit(data: bytes) -> bool:
    return b'"cache":"hit"' in data  # the service's compact JSON; a full parse would be the client's largest cost


class Clients:
    """The clients of one service: lean (``bench/http_load.py``), ``requests`` and ``http.client`` per thread."""

    def __init__(self, proc: subprocess.Popen, look: bytes):
        self.port = int(proc.args[proc.args.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.look = look
        self.loop = LoopClient(self.port)
        self.threads = ThreadClient(self.port)
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))

    def lean_healthz(self, count: int, concurrency: int):
        request = request_bytes("GET", "/healthz")
        return self.loop.run(lambda i: request, count, concurrency)

    def lean_hits(self, count: int, concurrency: int):
        def make(i: int) -> bytes:
            return request_bytes("POST", "/v1/looks/search", *multipart(self.look))

        return self.loop.run(make, count, concurrency, is_hit)

    def hit_phase(self, kind: str):
        """(phase label, run(count, concurrency)) of the cache hit sent by ``kind`` of client."""
        if kind == "lean":
            return "cache hit", self.lean_hits
        if kind == "requests":
            return "cache hit (requests)", lambda n, c: pooled(self.requests_hit, n, c, is_hit)
        if kind == "threads":
            send = lambda: self.threads.call("POST", "/v1/looks/search", *multipart(self.look))  # noqa: E731
            return "cache hit (http.client threads)", lambda n, c: pooled(send, n, c, is_hit)
        raise SystemExit(f"unknown client {kind!r}: lean, requests or threads")

    def requests_hit(self):
        t0 = time.perf_counter()
        try:
            resp = self.session.post(f"{self.base}/v1/looks/search", files={"image": ("look.png", self.look, "image/png")},
                                     data={"params": json.dumps(PARAMS)}, timeout=60)  # fmt: skip
        except requests.RequestException:
            return False, (time.perf_counter() - t0) * 1000, None
        return resp.status_code == 200, (time.perf_counter() - t0) * 1000, resp.content


if __name__ == "__main__":
    main()
