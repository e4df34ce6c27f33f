"""The outfit solver's added cost per look: ms for 6 layers x 100 candidates, against the per-layer
result assembly the service already does for those candidates.

Cases: random prices and scores (the usual shape: each layer's own frontier is a handful of products)
and an adversarial one where score rises with price on every layer (every candidate is on its layer's
frontier, so the combined frontier is as large as it gets). Budgets at 25%, 50% and 90% of the
dearest outfit. Wall-clock and CPU time are both printed: on a loaded machine the wall clock's p95
measures the other processes. The anchor, measured in the same run: ``product_summary`` + ``drop_near_duplicates``
over the same 600 candidates (work every look search does). Target: added p95 under 5 ms.

    PYTHONPATH=. python bench/bench_outfit.py [--layers 6 --candidates 100 --repeats 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from looksync.index.base import Hit  # noqa: E402
from looksync.search.engine import drop_near_duplicates, product_summary  # noqa: E402
from looksync.search.outfit import assemble_outfit  # noqa: E402


def candidates(rng: random.Random, layers: int, n: int, correlated: bool) -> list[tuple[str, list[dict]]]:
    out = []
    for i in range(layers):
        products = []
        for j in range(n):
            price = round(rng.uniform(5, 300), 2)
            score = price / 300 * 0.5 + rng.random() * 0.01 if correlated else rng.uniform(0.2, 0.9)
            products.append({"product_id": f"l{i}-p{j}", "price": price, "score": round(score, 6), "currency": "USD", "in_stock": True})
        out.append((f"layer{i}", products))
    return out


def timed(fn, repeats: int, clock=time.perf_counter) -> list[float]:
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append((clock() - start) * 1000)
    return times


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(0)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.layers} layers x {args.candidates} candidates, {args.repeats} repeats")

    sample = candidates(rng, args.layers, args.candidates, False)
    hits = [
        Hit(p["product_id"], p["score"], {**p, "image_hash": p["product_id"], "image_urls": ["https://x/y.jpg"]})
        for _, products in sample
        for p in products
    ]
    anchor = timed(lambda: [product_summary(h) for h in drop_near_duplicates(hits)], args.repeats)
    print(f"anchor (summaries + dedup of the same candidates): p50 {statistics.median(anchor):.3f} ms  p95 {p95(anchor):.3f} ms")
    for correlated in (False, True):
        layers = candidates(rng, args.layers, args.candidates, correlated)
        dearest = sum(max(p["price"] for p in products) for _, products in layers)
        for share in (0.25, 0.5, 0.75, 1.0):
            budget = round(dearest * share, 2)
            def solve(layers=layers, budget=budget):
                return assemble_outfit(layers, budget, "USD", 2)

            times = timed(solve, args.repeats)
            cpu = timed(solve, args.repeats, time.process_time)  # CPU time: what a loaded machine's wall clock hides
            name = "correlated" if correlated else "random"
            print(
                f"{name:10s} budget {share:.0%} of dearest: wall p50 {statistics.median(times):.3f} ms p95 {p95(times):.3f} ms"
                f" ({p95(times) / p95(anchor):.2f}x anchor p95); CPU p50 {statistics.median(cpu):.3f} ms p95 {p95(cpu):.3f} ms;"
                f" target p95 < 5 ms: {'met' if p95(times) < 5 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
