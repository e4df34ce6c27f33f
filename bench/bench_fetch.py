"""Image fetch rate on loopback: the guarded fetcher against a plain client on the same server, same run.

    python bench/bench_fetch.py --size 3000                     # sample images, server in its own process
    python bench/bench_fetch.py --size 3000 --server thread     # server in this process (shares its GIL)

The sample's product images (224 px PNGs) are served by the sample image server (HTTP/1.1 keep-alive).
Three clients fetch every image once per round, ``--rounds`` rounds, alternating so load from elsewhere
hits them alike; the best round of each is printed:

- anchor: a plain client, urllib3 with one pool of ``--concurrency`` kept-alive connections, bytes only
  (no guard, no checks): what the server and loopback allow at this concurrency;
- fetch: ``looksync.catalog.images.fetch_images`` with ingestion's policy (URL guard and pinning, the
  header, byte and pixel checks, the decode that refuses a blank image);
- fetch + thumbnails: ``looksync.pipelines.fetch_embed.fetch_and_embed`` with nothing to embed (every
  hash known): fetch, one decode, the blank check and a thumbnail written per image, as ingestion does.

Each is reported in images/s and as a ratio to the anchor, and in CPU time of this process per image
(the server's not counted): on a shared machine the rate follows the load, the CPU per image much less.
The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plain_fetch(urls: list[str], concurrency: int) -> None:
    import urllib3

    first = urllib3.util.parse_url(urls[0])
    pool = urllib3.HTTPConnectionPool(first.host, first.port, maxsize=concurrency, block=True)
    paths = [urllib3.util.parse_url(u).request_uri for u in urls]

    def one(path: str) -> int:
        reply = pool.request("GET", path, retries=False)
        if reply.status != 200:
            raise RuntimeError(f"{path}: HTTP {reply.status}")
        return len(reply.data)

    with ThreadPoolExecutor(concurrency) as workers:
        list(workers.map(one, paths))
    pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=3000, help="products in the generated sample")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument("--sample", type=Path, default=None, help="reuse a sample generated here before")
    args = parser.parse_args()

    from looksync.catalog.images import FetchError, FetchPolicy, fetch_images
    from looksync.catalog.object_store import LocalStore
    from looksync.catalog.thumbnails import ThumbnailStore
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample, serve_sample_process

    root = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    sample = args.sample or root / "sample"
    serve = serve_sample_process if args.server == "process" else serve_sample
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with serve(sample) as server:
        if not (sample / "images").exists():
            t0 = time.perf_counter()
            generate_sample(sample, size=args.size, seed=3, image_base_url=server.url, n_looks=0)
            print(f"sample: {args.size} products generated in {time.perf_counter() - t0:.1f}s under {sample}")
        files = sorted((sample / "images").rglob("*.png"))[: args.size]
        urls = [f"{server.url}/{p.relative_to(sample).as_posix()}" for p in files]
        policy = FetchPolicy(allow_private=True, refuse_blank=True)
        print(f"{len(urls)} images, {sum(p.stat().st_size for p in files) / len(files) / 1024:.1f} KiB average, "
              f"concurrency {args.concurrency}, server in a {args.server}")  # fmt: skip

        def guarded() -> None:
            failed = [r for r in fetch_images(urls, policy, args.concurrency) if isinstance(r, FetchError)]
            if failed:
                raise RuntimeError(f"{len(failed)} fetches failed, first: {failed[0]}")

        def with_thumbnails() -> None:
            from embeddings.errors import ImageError  # noqa: F401 - imported by fetch_and_embed; outside the clock
            from looksync.pipelines.fetch_embed import fetch_and_embed

            thumbs = ThumbnailStore(LocalStore(Path(tempfile.mkdtemp(dir=root, prefix="thumbs-"))))
            result = fetch_and_embed(urls, policy, _NoModel(), thumbs, known=_Everything(), concurrency=args.concurrency)
            if any(isinstance(o, FetchError) for o in result.outcomes) or result.thumbnails.failed:
                raise RuntimeError("a fetch or a thumbnail failed")

        clients = {"anchor (plain client)": lambda: plain_fetch(urls, args.concurrency), "fetch (guarded)": guarded,
                   "fetch + thumbnails": with_thumbnails}  # fmt: skip
        plain_fetch(urls[:200], args.concurrency)  # warm: connections, page cache, imports
        guarded_warm = fetch_images(urls[:200], policy, args.concurrency)
        assert all(not isinstance(r, FetchError) for r in guarded_warm)
        best: dict[str, float] = {}
        cpu_ms: dict[str, float] = {}  # this process's CPU time per image (the server's not included)
        for round_no in range(args.rounds):
            for name, run in clients.items():
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                rate = len(urls) / (time.perf_counter() - t0)
                cpu = (time.process_time() - c0) / len(urls) * 1000
                best[name] = max(best.get(name, 0.0), rate)
                cpu_ms[name] = min(cpu_ms.get(name, cpu), cpu)
                print(f"  round {round_no + 1} {name:<22} {rate:8.1f} images/s  {cpu:.2f} ms CPU/image")
    anchor = best["anchor (plain client)"]
    print("best of rounds (rate; the client's CPU per image, least of rounds):")
    for name, rate in best.items():
        print(f"  {name:<22} {rate:8.1f} images/s  {rate / anchor:5.2f}x anchor  {cpu_ms[name]:.2f} ms CPU/image "
              f"({cpu_ms[name] / cpu_ms['anchor (plain client)']:.1f}x anchor)")  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


class _Everything(set):
    """Every hash is known: fetch_and_embed embeds nothing (this bench measures fetch and thumbnails)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


class _NoModel:
    batch_size = 32
    dim = 1
    draft_decode = False


if __name__ == "__main__":
    main()
