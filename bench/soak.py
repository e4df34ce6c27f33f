"""Soak benchmark of the service under gunicorn on loopback, through a Redis outage and an LLM that hangs,
then fails (issue 15, item 6).

Builds a small sample catalog (generated, served on loopback, ingested and indexed with a random-weight
LookSync-Tiny checkpoint, so it runs offline), starts its own redis-server, a local OpenAI-compatible
stub playing the LLM (tests/serving/llm_server.py: it answers the strict schemas it is sent), and the
service as deployed (`looksync serve`: infra/gunicorn.conf.py, API keys off, Redis cache, the stub as LLM
endpoint), then sends a mix of look searches (repeated ones, which the cache answers, and new ones, with
rerank auto/llm/local/off), text searches and /similar at a fixed concurrency for --minutes. Phases, as
fractions of the run (10 minutes: minutes 0-2, 2-4, 4-5.5, 5.5-6.5, 6.5-7.5, 7.5-8.5, 8.5-10):

    warmup, steady, redis_down (redis-server stopped; restarted at its end), after_redis,
    llm_hang (the stub answers after longer than the service's LLM budgets), llm_500 (it answers 500),
    recovery

Prints per phase: requests, 5xx (every 503 must name the backend that is down), other non-200s, p50/p95
client latency, degraded notes seen; worker RSS (VmRSS of each gunicorn worker, every 10 s) and the load
average; the targets with met/MISSED; and writes the JSON summary under var/.

    python bench/soak.py                    # 10 minutes (plus ~1-2 min to build the catalog)
    python bench/soak.py --minutes 2        # a smoke run, same phases scaled
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from looksync.demo import free_port, start_service, stop_service, wait_ready  # noqa: E402
from tests.serving.llm_server import ScriptedLLM, Step, start_scripted_llm  # noqa: E402

TINY_MODEL = "LookSync-Tiny"
# (phase, start, end) as fractions of the run
PHASES = [
    ("warmup", 0.0, 0.2),
    ("steady", 0.2, 0.4),
    ("redis_down", 0.4, 0.55),
    ("after_redis", 0.55, 0.65),
    ("llm_hang", 0.65, 0.75),
    ("llm_500", 0.75, 0.85),
    ("recovery", 0.85, 1.0),
]
LOOK_PARAMS = {"market": "US", "gender": "women", "layers": ["topwear", "bottomwear", "footwear"], "k": 10}
TEXTS = ["women's navy striped t-shirt", "men's black leather boots", "red handbag", "blue denim jeans",
         "white cotton shirt", "green floral dress", "grey wool coat", "brown suede loafers"]  # fmt: skip
SAMPLE_EVERY_S = 10.0


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# ---- the backends the service depends on --------------------------------------------------------


class RedisServer:
    """A private redis-server on a fixed loopback port (no persistence), stopped and started again on the
    same port for the outage."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def llm_answer(body: dict) -> dict:
    """Answer the strict schema the service sent: a query per layer (string, or null for layers not asked
    for), or each layer's candidate ids in reverse order (so an LLM rerank visibly reorders)."""
    schema = body["response_format"]["json_schema"]["schema"]
    answer = {}
    for name, prop in schema["properties"].items():
        if prop.get("type") == "array":
            answer[name] = list(reversed(prop["items"]["enum"]))
        elif prop.get("type") == "string" or name in LOOK_PARAMS["layers"]:
            answer[name] = f"women's navy cotton {name}"
        else:
            answer[name] = None
    return answer


def set_llm(llm: ScriptedLLM, mode: str, hang_s: float) -> None:
    llm.script(default={
        "ok": Step(answer=llm_answer),
        "hang": Step(answer=llm_answer, delay_s=hang_s),
        "fail": Step(status=500),
    }[mode])  # fmt: skip


# ---- the catalog ----------------------------------------------------------------------------------


def build_catalog(workdir: Path, size: int) -> tuple[dict[str, str], list[bytes]]:
    """Sample -> loopback image server -> ingest each feed -> build the index (the CLI, as an operator
    would). Returns the service's LOOKSYNC_* environment and the sample looks' PNG bytes."""
    from embeddings import save_random_checkpoint
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample

    sample_dir = workdir / "sample"
    sample_dir.mkdir(parents=True)
    checkpoint = save_random_checkpoint(TINY_MODEL, workdir / "models" / "tiny.pt", seed=3)
    env = {
        "LOOKSYNC_DATA_DIR": str(workdir / "data"),
        "LOOKSYNC_CLIP_MODEL": TINY_MODEL,
        "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint),
        "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",  # the sample's image server is on loopback
        "LOOKSYNC_DEVICE": "cpu",
    }
    server = serve_sample(sample_dir, port=0)
    try:
        manifest = generate_sample(sample_dir, size=size, seed=11, fault_rate=0.0, image_base_url=server.url, n_looks=6)
        cli = [sys.executable, "-m", "looksync.cli"]
        run_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        with (workdir / "build.log").open("ab") as log:
            for vendor, feed in manifest.feeds.items():
                subprocess.run([*cli, "ingest", "--vendor", vendor, "--feed", str(feed)], env=run_env, cwd=REPO,
                               check=True, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            subprocess.run(
                [*cli, "index", "build"], env=run_env, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT
            )
    finally:
        server.close()
    looks = [p.read_bytes() for p in sorted(Path(manifest.looks_dir).glob("*.png"))]
    return env, looks


# ---- worker memory --------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry.name))
    return sorted(pids)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def sample_workers(master: int, now: float, phase: str, requests_done: int) -> dict:
    sample = {"t": round(now, 1), "phase": phase, "load1": round(os.getloadavg()[0], 2),
              "rss_kib": {str(p): rss_kib(p) for p in worker_pids(master)}}  # fmt: skip
    print(
        f"{now:7.1f}s  {phase:<11} load {sample['load1']:5.2f}  rss MiB "
        f"{[round((v or 0) / 1024, 1) for v in sample['rss_kib'].values()]}  requests {requests_done}",
        flush=True,
    )
    return sample


# ---- traffic --------------------------------------------------------------------------------------


@dataclass
class Record:
    t: float  # seconds since the start
    phase: str
    kind: str
    status: int  # 0: no answer (connection error or client timeout)
    ms: float
    code: str | None = None  # error code of a non-200
    message: str = ""
    degraded: list[str] = field(default_factory=list)
    cache: str | None = None


class Traffic:
    """The request mix: looks repeated from a fixed set (cache hits after the first), new looks (a
    distinct, never-binding price cap per request), text searches (repeated and new), /similar."""

    MIX = [("look_repeat", 0.30), ("look_new", 0.15), ("text", 0.30), ("similar", 0.25)]

    def __init__(self, base: str, looks: list[bytes], product_ids: list[str], timeout_s: float):
        self.base, self.looks, self.product_ids, self.timeout_s = base, looks, product_ids, timeout_s
        self.counter = iter(range(10**9))
        self.lock = threading.Lock()

    def unique(self) -> int:
        with self.lock:
            return next(self.counter)

    def send(self, session: requests.Session, kind: str, rng: random.Random) -> requests.Response:
        if kind in ("look_repeat", "look_new"):
            i = rng.randrange(len(self.looks))
            params = dict(LOOK_PARAMS)
            if kind == "look_repeat":
                params["rerank"] = ["auto", "local"][i % 2]
            else:
                params["rerank"] = rng.choice(["auto", "llm", "local", "off"])
                params["filters"] = {"price_max": 1e9 + self.unique()}
            files = {"image": ("look.png", self.looks[i], "image/png")}
            return session.post(f"{self.base}/v1/looks/search", files=files, data={"params": json.dumps(params)},
                                timeout=self.timeout_s)  # fmt: skip
        if kind == "text":
            text = rng.choice(TEXTS)
            if rng.random() < 0.5:
                text += f" {self.unique()}"
            return session.post(f"{self.base}/v1/search", json={"text": text, "market": "US", "k": 10},
                                timeout=self.timeout_s)  # fmt: skip
        pid = rng.choice(self.product_ids)
        return session.get(f"{self.base}/v1/products/{pid}/similar", params={"k": 10}, timeout=self.timeout_s)


def client_loop(traffic: Traffic, state: dict, records: list[Record], seed: int) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    kinds, weights = zip(*Traffic.MIX, strict=True)
    while not state["stop"]:
        kind = rng.choices(kinds, weights)[0]
        phase, t0 = state["phase"], time.perf_counter()
        rec = Record(t=t0 - state["t0"], phase=phase, kind=kind, status=0, ms=0.0)
        try:
            resp = traffic.send(session, kind, rng)
            rec.status = resp.status_code
            try:
                body = resp.json()
            except ValueError:
                body = {"error": {"code": None, "message": resp.text[:200]}}
            if resp.status_code == 200:
                rec.degraded = [d.split(":", 1)[0] for d in body.get("degraded") or []]
                rec.cache = body.get("cache")
            else:
                error = body.get("error") or {}
                rec.code, rec.message = error.get("code"), str(error.get("message"))[:300]
        except requests.RequestException as exc:
            rec.code, rec.message = "client_error", str(exc)[:300]
        rec.ms = (time.perf_counter() - t0) * 1000
        records.append(rec)


# ---- the run --------------------------------------------------------------------------------------


def phase_rows(records: list[Record]) -> list[dict]:
    rows = []
    for name, _, _ in PHASES:
        recs = [r for r in records if r.phase == name]
        ms = [r.ms for r in recs]
        by_kind = {}
        for kind, _ in Traffic.MIX:
            kms = [r.ms for r in recs if r.kind == kind]
            by_kind[kind] = {"n": len(kms), "p50_ms": pct(kms, 50), "p95_ms": pct(kms, 95)}
        degraded: dict[str, int] = {}
        for r in recs:
            for d in set(r.degraded):
                degraded[d] = degraded.get(d, 0) + 1
        errors: dict[str, int] = {}
        for r in recs:
            if r.status != 200:
                key = f"{r.status} {r.code}"
                errors[key] = errors.get(key, 0) + 1
        rows.append({
            "phase": name, "requests": len(recs),
            "5xx": sum(1 for r in recs if r.status >= 500),
            "503_unnamed": sum(1 for r in recs if r.status == 503 and not (r.code or "").endswith("_unavailable")),
            "non_200": sum(1 for r in recs if r.status != 200), "errors": errors,
            "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "max_ms": pct(ms, 100),
            "rps": round(len(recs) / max(1e-9, _phase_seconds(recs)), 2),
            "cache_hits": sum(1 for r in recs if r.cache == "hit"),
            "degraded": dict(sorted(degraded.items())), "by_kind": by_kind,
        })  # fmt: skip
    return rows


def _phase_seconds(recs: list[Record]) -> float:
    return (max(r.t + r.ms / 1000 for r in recs) - min(r.t for r in recs)) if recs else 0.0


@dataclass
class SoakConfig:
    minutes: float = 10.0
    concurrency: int = 16
    workers: int = 2
    llm_hang_s: float = 30.0
    products: int | None = None  # for the summary only


def run_soak(env: dict[str, str], looks: list[bytes], workdir: Path, config: SoakConfig) -> dict:
    """Start a private redis-server, the LLM stub and the service (``looksync serve``) over the catalog in
    ``env``; send the mix for ``config.minutes`` through the phases; stop everything; return the summary."""
    redis_server = RedisServer(free_port(), workdir)
    redis_server.start()
    llm, llm_http = start_scripted_llm()
    set_llm(llm, "ok", config.llm_hang_s)
    env = {k: v for k, v in env.items() if k != "LOOKSYNC_API_KEYS"}  # API keys off
    env.update({
        "LOOKSYNC_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "LOOKSYNC_LLM_BASE_URL": llm.url,
        "LOOKSYNC_LLM_MODEL": "soak-stub",
        "LOOKSYNC_LOG_LEVEL": "WARNING",
        "GUNICORN_WORKERS": str(config.workers),
    })  # fmt: skip
    port = free_port()
    proc = None
    base = f"http://127.0.0.1:{port}"
    records: list[Record] = []
    samples: list[dict] = []
    state = {"stop": False, "phase": "warmup", "t0": 0.0}
    total_s = config.minutes * 60
    try:
        proc = start_service(env, port, workdir / "service.log")
        wait_ready(base, timeout_s=300, proc=proc)
        t_vocab = time.perf_counter()
        while requests.get(f"{base}/readyz", timeout=10).json().get("text_vocabulary") == "building":
            time.sleep(1)
        print(f"service ready ({config.workers} workers); text vocabulary after {time.perf_counter() - t_vocab:.0f}s",
              flush=True)  # fmt: skip
        found = requests.post(f"{base}/v1/search", json={"text": "shirt", "k": 50}, timeout=60).json()["products"]
        traffic = Traffic(base, looks, [p["product_id"] for p in found], timeout_s=120)

        state["t0"] = t0 = time.perf_counter()
        clients = [threading.Thread(target=client_loop, args=(traffic, state, records, seed), daemon=True)
                   for seed in range(config.concurrency)]  # fmt: skip
        for c in clients:
            c.start()
        phase_i, next_sample = 0, 0.0
        while (now := time.perf_counter() - t0) < total_s:
            while phase_i + 1 < len(PHASES) and now >= PHASES[phase_i + 1][1] * total_s:
                leaving, phase_i = PHASES[phase_i][0], phase_i + 1
                entering = PHASES[phase_i][0]
                if entering == "redis_down":
                    redis_server.stop()
                elif leaving == "redis_down":
                    redis_server.start()
                if entering == "llm_hang":
                    set_llm(llm, "hang", config.llm_hang_s)
                elif entering == "llm_500":
                    set_llm(llm, "fail", config.llm_hang_s)
                elif entering == "recovery":
                    set_llm(llm, "ok", config.llm_hang_s)
                state["phase"] = entering
                print(f"{now:7.1f}s  phase {entering}", flush=True)
            if now >= next_sample:
                samples.append(sample_workers(proc.pid, now, state["phase"], len(records)))
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.2)
        samples.append(sample_workers(proc.pid, time.perf_counter() - t0, state["phase"], len(records)))  # the end
        state["stop"] = True
        for c in clients:
            c.join(timeout=150)
    finally:
        state["stop"] = True
        if proc is not None:
            stop_service(proc)
        redis_server.stop()
        llm_http.shutdown()
        llm_http.server_close()
    return summarize(config, records, samples, total_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="GUNICORN_WORKERS (threads: the conf's default)")
    parser.add_argument("--products", type=int, default=120, help="sample catalog size")
    parser.add_argument("--llm-hang-s", type=float, default=30.0, help="how long the hung LLM takes to answer")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON summary (default var/soak-<time>.json)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    t_build = time.perf_counter()
    env, looks = build_catalog(workdir, args.products)
    print(
        f"catalog: {args.products} products, {len(looks)} looks, {time.perf_counter() - t_build:.0f}s to build",
        flush=True,
    )
    config = SoakConfig(args.minutes, args.concurrency, args.workers, args.llm_hang_s, args.products)
    summary = run_soak(env, looks, workdir, config)
    out = args.out or REPO / "var" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print_report(summary)
    print(f"summary written to {out}; service log {workdir / 'service.log'}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def summarize(args: SoakConfig, records: list[Record], samples: list[dict], total_s: float) -> dict:
    rows = phase_rows(records)
    by_phase = {r["phase"]: r for r in rows}
    # RSS growth from the first sample at or after the end of the warm-up (minute 2 of 10) to the last one
    start_t = PHASES[0][2] * total_s
    base_sample = next((s for s in samples if s["t"] >= start_t - 1), samples[0])
    last = samples[-1]
    workers_same = set(base_sample["rss_kib"]) == set(last["rss_kib"])
    base_rss = sum(v or 0 for v in base_sample["rss_kib"].values())
    end_rss = sum(v or 0 for v in last["rss_kib"].values())
    per_worker = {
        p: round(100 * ((last["rss_kib"].get(p) or 0) / v - 1), 2) for p, v in base_sample["rss_kib"].items() if v
    }
    growth = round(100 * (end_rss / base_rss - 1), 2) if base_rss else None
    five_xx = sum(r["5xx"] for r in rows)
    unnamed_503 = sum(r["503_unnamed"] for r in rows)
    non_503_5xx = sum(1 for r in records if r.status >= 500 and r.status != 503)
    no_answer = sum(1 for r in records if r.status == 0)
    steady_p95, redis_p95 = by_phase["steady"]["p95_ms"], by_phase["redis_down"]["p95_ms"]
    ratio = round(redis_p95 / steady_p95, 2) if steady_p95 and redis_p95 else None
    targets = {
        "no_5xx": {"value": {"5xx": five_xx, "non_503_5xx": non_503_5xx, "503_not_naming_backend": unnamed_503,
                             "no_answer": no_answer},
                   "met": non_503_5xx == 0 and unnamed_503 == 0 and no_answer == 0},
        "rss_growth_lt_10pct": {"value": growth, "per_worker_pct": per_worker, "same_workers": workers_same,
                                "met": growth is not None and growth < 10 and workers_same},
        "redis_outage_p95_within_2x_steady": {"value": ratio, "met": ratio is not None and ratio <= 2.0},
    }  # fmt: skip
    loads = [s["load1"] for s in samples]
    return {
        "minutes": args.minutes, "concurrency": args.concurrency, "workers": args.workers,
        "products": args.products, "llm_hang_s": args.llm_hang_s,
        "requests": len(records), "phases": rows, "targets": targets,
        "rss": {"from_t": base_sample["t"], "to_t": last["t"], "from_mib": round(base_rss / 1024, 1),
                "to_mib": round(end_rss / 1024, 1), "growth_pct": growth,
                "samples": [{"t": s["t"], "phase": s["phase"], "mib": {p: round((v or 0) / 1024, 1)
                             for p, v in s["rss_kib"].items()}} for s in samples]},
        "load1": {"min": min(loads), "median": round(float(np.median(loads)), 2), "max": max(loads)},
        "examples_non_200": [r.__dict__ for r in records if r.status != 200][:20],
    }  # fmt: skip


def print_report(summary: dict) -> None:
    print(f"\n{'phase':<12} {'req':>5} {'5xx':>4} {'non200':>6} {'p50 ms':>8} {'p95 ms':>8} {'rps':>6}  degraded")
    for r in summary["phases"]:
        print(f"{r['phase']:<12} {r['requests']:>5} {r['5xx']:>4} {r['non_200']:>6} {r['p50_ms'] or 0:>8} "
              f"{r['p95_ms'] or 0:>8} {r['rps']:>6}  {r['degraded']}")  # fmt: skip
    rss = summary["rss"]
    print(
        f"worker RSS {rss['from_mib']} MiB at {rss['from_t']}s -> {rss['to_mib']} MiB at {rss['to_t']}s "
        f"({rss['growth_pct']}%); load1 {summary['load1']}"
    )
    for name, target in summary["targets"].items():
        print(f"target {name:<36} {'met' if target['met'] else 'MISSED'}  {target['value']}")


if __name__ == "__main__":
    main()
