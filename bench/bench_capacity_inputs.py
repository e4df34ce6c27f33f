"""Per-item inputs of the capacity plan (looksync/capacity.py, docs/capacity.md) that this machine can
measure: the Redis bytes the attribute mirror takes per product (``MEMORY USAGE`` of every key it
writes, on the local Redis), and the mean JSON size of one product (what the index stores besides
the vector and what a look response carries per hit). Products are generated with the taxonomy's
categories, realistic title/description/URL lengths and a seeded generator. With ``--knn-rows N`` it
also checks the plan's kNN scaling in the dimensions: one-thread FAISS HNSW (m=16, efConstruction 100,
efSearch 100, k=10) over N unit vectors of 512 and of 1024 dimensions, best of 3 passes of 400 queries;
the plan scales the measured query cost linearly in the dimensions (x2 from 512 to 1024).

    PYTHONPATH=. python bench/bench_capacity_inputs.py --n 20000 [--redis-url redis://127.0.0.1:6379/0] [--knn-rows 20000]

The keys go under a fresh prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import UTC, datetime

from looksync.capacity import measure_redis_attr_bytes
from looksync.catalog.schema import Product
from looksync.catalog.taxonomy import get_taxonomy

WORDS = ("relaxed organic cotton classic slim fit stretch washed vintage soft everyday lightweight ribbed "
         "tailored cropped oversized recycled linen wool blend denim knit pleated wide leg").split()  # fmt: skip


def products(n: int, seed: int = 7) -> list[Product]:
    rng = random.Random(seed)
    taxonomy = get_taxonomy()
    categories = sorted(taxonomy.categories)
    markets = {"US": "USD", "IN": "INR", "JP": "JPY"}
    out = []
    for i in range(n):
        market = rng.choice(list(markets))
        category = rng.choice(categories)
        vendor = f"vendor_{rng.randint(1, 40):02d}"
        sku = f"SKU-{i:08d}"
        out.append(
            Product(
                vendor=vendor,
                vendor_sku=sku,
                market=market,
                title=" ".join(rng.choices(WORDS, k=rng.randint(4, 9))).capitalize(),
                description=" ".join(rng.choices(WORDS, k=rng.randint(15, 40))).capitalize() + ".",
                brand=f"Brand {rng.randint(1, 2000)}",
                category=category,
                gender=rng.choice(["women", "men", "unisex"]),
                colours=rng.sample(sorted(taxonomy.colours), rng.randint(1, 2)),
                pattern=rng.choice(sorted(taxonomy.patterns)),
                material=rng.choice([None, "cotton", "denim", "wool", "linen"]),
                sizes=rng.sample(["XS", "S", "M", "L", "XL", "XXL"], rng.randint(2, 6)),
                price=round(rng.uniform(5, 500), 2),
                currency=markets[market],
                in_stock=rng.random() < 0.8,
                image_urls=[f"https://cdn.{vendor}.example/images/{sku.lower()}/{uuid.UUID(int=rng.getrandbits(128))}.jpg"],
                product_url=f"https://www.{vendor}.example/{market.lower()}/p/{sku.lower()}",
                updated_at=datetime(2026, 1, 1 + i % 28, tzinfo=UTC),
                image_hash=f"{rng.getrandbits(256):064x}",
                model_id="ViT-H-14@0123456789ab",
            )
        )
    return out


def knn_ms_by_dims(rows: int, dims: tuple[int, ...] = (512, 1024), queries: int = 400) -> dict[int, float]:
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    out = {}
    for d in dims:
        x = rng.standard_normal((rows, d)).astype("float32")
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = x[rng.choice(rows, queries)] + 0.05 * rng.standard_normal((queries, d)).astype("float32")
        index = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 100
        index.add(x)
        index.hnsw.efSearch = 100
        passes = []
        for _ in range(3):
            started = time.perf_counter()
            for i in range(queries):
                index.search(q[i : i + 1], 10)
            passes.append((time.perf_counter() - started) / queries * 1000)
        out[d] = min(passes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--redis-url", default=os.environ.get("LOOKSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--knn-rows", type=int, default=0, help="Also time HNSW queries at 512 and 1024 dims over this many rows.")
    args = parser.parse_args()
    import redis

    items = products(args.n)
    json_bytes = sum(len(p.model_dump_json()) for p in items) / len(items)
    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    version = client.info("server")["redis_version"]
    started = time.perf_counter()
    per_product = measure_redis_attr_bytes(client, items, f"looksync-capacity-bench-{uuid.uuid4().hex[:8]}")
    print(f"products: {len(items):,}; load average {os.getloadavg()[0]:.2f}")
    print(f"product JSON: {json_bytes:,.0f} bytes per product (mean)")
    print(f"attribute mirror in Redis {version}: {per_product:,.0f} bytes per product "
          f"(MEMORY USAGE of hashes and sets; {time.perf_counter() - started:.1f} s)")  # fmt: skip
    if args.knn_rows:
        ms = knn_ms_by_dims(args.knn_rows)
        print(f"HNSW query, {args.knn_rows:,} rows, 1 thread: " + ", ".join(f"{d}-d {v:.3f} ms" for d, v in ms.items())
              + f"; 1024/512 = {ms[1024] / ms[512]:.2f} (the plan assumes 2.0); load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
