"""Sharded ingest: one feed's heavy stages (fetch, embed, standardise, index) split over shards that
workers run in parallel, with the deletion of vanished products decided once for the whole feed.

The feed is parsed and its changes detected once (``parse_stage``, ``detect_stage`` of
``looksync.pipelines.ingest``, over the whole feed: that is where "vanished" is decided, against every
product of the feed, never a shard's). ``split_stage`` then cuts the classified products into shards
of at most ``shard_size`` products by row range (every row of one product id in the shard of its first
row, so a repeated id is never written by two shards), each a workspace of its own under
``<feed workspace>/shards/<nnnnn>/`` holding no deletions. The shard stages are the ordinary stage
functions run on a shard's workspace (``run_shard_stage`` makes each retry start from the state the
stage first started from). ``finish_feed`` runs once per feed after every shard applied: it deletes
the vanished products (product store, live index, Redis mirror) and merges the shard reports into
the feed's report.

Exactly once: shards partition the feed's product ids; every write is keyed by product id (product
store upsert, index upsert, mirror hash) and every vector by (image hash, model), so a shard run twice
writes the same rows again, never a second copy; deletions happen only in ``finish_feed``, after
every shard succeeded, from the set computed over the whole feed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from looksync.catalog.quarantine import QuarantineRecord, QuarantineWriter
from looksync.catalog.stores import ProductStore
from looksync.pipelines.feed_ref import FeedRef
from looksync.pipelines.ingest import (
    IngestReport,
    Workspace,
    _merge_counts,
    _timed,
    apply_stage,
    detect_stage,
    embed_stage,
    fetch_stage,
    parse_stage,
    standardise_stage,
)
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder, ZeroShot
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.index import CatalogIndex

log = logging.getLogger(__name__)

SHARD_STAGES = ("fetch", "embed", "standardise", "apply")  # in order, on each shard's workspace


class _SharedQuarantineWriter(QuarantineWriter):
    """Appends to the feed's quarantine file under an exclusive file lock: shards of one feed run in
    several processes and a record longer than one write must not interleave with another's."""

    def add(self, record: QuarantineRecord) -> None:
        record.run_id = self.run_id
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(record.to_json() + "\n")
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
            self.counts[str(record.reason)] = self.counts.get(str(record.reason), 0) + 1


class ShardWorkspace(Workspace):
    """One shard of a feed's workspace (``<feed workspace>/shards/<nnnnn>/``): the ingest stages run on
    it unchanged; its quarantined rows go to the feed's quarantine file."""

    @property
    def feed_workspace(self) -> Workspace:
        return Workspace(self.path.parent.parent)

    @property
    def shard(self) -> dict[str, Any]:
        return self.state()["shard"]

    def quarantine(self, settings: Settings) -> QuarantineWriter:
        return _SharedQuarantineWriter(settings.data_dir / "quarantine", f"{self.run_id}-{self.ref.key}")


def split_stage(settings: Settings, ws: Workspace, shard_size: int | None = None) -> list[ShardWorkspace]:
    """Cut the feed's classified products (after ``detect_stage``) into shards of at most ``shard_size``
    products, in feed order; returns the shard workspaces (at least one; one for an empty feed).
    Splitting again replaces the shards (a retried split leaves no stale shard)."""
    t0 = time.perf_counter()
    size = int(shard_size or settings.ingest_shard_size)
    if size < 1:
        raise ValueError(f"shard size must be at least 1, got {size}")
    classes = ws.read_json("classes")
    incoming = ws.read_products("incoming")
    offered = set(classes.get("offer", []))  # read for their offer only: shards write them at apply
    offers = [p for p in ws.read_products("offers") if p.product_id in offered] if offered else []
    row_keys, offer_keys = ws.read_json("row_keys", {}), ws.read_json("offer_keys", {})
    groups: dict[str, list] = {}  # product id -> its rows, in order of first appearance
    for p in incoming + offers:
        groups.setdefault(p.product_id, []).append(p)
    chunks: list[list] = [[]]
    for rows in groups.values():
        if len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].extend(rows)
    root = ws.path / "shards"
    if root.exists():
        shutil.rmtree(root)
    state = ws.state()
    shards: list[ShardWorkspace] = []
    first = 0
    for n, products in enumerate(chunks):
        shard = ShardWorkspace(root / f"{n:05d}")
        shard.path.mkdir(parents=True)
        ids = {p.product_id for p in products}
        report = IngestReport(state["run_id"], ws.ref.vendor, ws.ref.feed, quarantine_path=ws.report().quarantine_path)
        shard.save_state({"run_id": state["run_id"], "ref": state["ref"], "report": asdict(report),
                          "shard": {"index": n, "of": len(chunks), "first_row": first, "rows": len(products)}})  # fmt: skip
        shard.write_products("incoming", [p for p in products if p.product_id not in offered])
        shard.write_products("offers", [p for p in products if p.product_id in offered])
        shard.write_json("row_keys", {pid: key for pid, key in row_keys.items() if pid in ids})
        shard.write_json("offer_keys", {pid: key for pid, key in offer_keys.items() if pid in ids})
        shard.write_json("classes", {k: [pid for pid in classes.get(k, []) if pid in ids] for k in ("new", "image_check", "same_image", "offer")}
                         | {"vanished": [], "held": []})  # fmt: skip
        first += len(products)
        shards.append(shard)
    ws.write_json("shards", [str(s.path) for s in shards])
    _timed(ws, "split", t0)
    log.info("split %d products into %d shard(s) of at most %d", len(incoming), len(shards), size,
             extra={"run_id": state["run_id"], "vendor": ws.ref.vendor})  # fmt: skip
    return shards


def run_shard_stage(ws: ShardWorkspace, stage: str, fn: Callable[[], Any]) -> Any:
    """Run one stage on a shard so that a retry does not count twice: the first try saves the shard's
    state as it was before the stage; a later try (a task retry, a cleared task) starts from that saved
    state again and drops what later stages saved (they will run again too)."""
    if stage not in SHARD_STAGES:
        raise ValueError(f"unknown shard stage {stage!r}; one of {SHARD_STAGES}")
    mark = ws.path / f"before-{stage}.json"
    if mark.exists():
        ws.save_state(json.loads(mark.read_text()))
        for later in SHARD_STAGES[SHARD_STAGES.index(stage) + 1 :]:
            (ws.path / f"before-{later}.json").unlink(missing_ok=True)
    else:
        tmp = mark.with_suffix(".tmp")
        tmp.write_text(json.dumps(ws.state(), default=str))
        tmp.replace(mark)
    return fn()


def apply_shard(
    settings: Settings,
    ws: ShardWorkspace,
    index: CatalogIndex | None = None,
    mirror: AttributeMirror | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """``apply_stage`` on a shard (upserts and metadata updates only: a shard holds no deletions). While
    the index has no live version, shards bootstrap it one at a time (a file lock), so parallel shards of
    a first ingest create one version, not one each."""

    def apply() -> IngestReport:
        if index is not None and not dry_run and index.live_version() is None:
            lock = settings.data_dir / "locks" / "index-bootstrap.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            with open(lock, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    return apply_stage(settings, ws, index, mirror, dry_run=dry_run)
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        return apply_stage(settings, ws, index, mirror, dry_run=dry_run)

    return run_shard_stage(ws, "apply", apply)


def shards_of(ws: Workspace) -> list[ShardWorkspace]:
    return [ShardWorkspace(p) for p in ws.read_json("shards", [])]


def finish_feed(
    settings: Settings,
    ws: Workspace,
    index: CatalogIndex | None = None,
    mirror: AttributeMirror | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """Once per feed, after every shard applied: delete the products the whole feed's change detection
    found vanished (not held), and return the feed's report (its parse / detect counts plus the shards').
    Deleting what is already gone is a no-op, so a rerun deletes nothing twice."""
    t0 = time.perf_counter()
    shards = shards_of(ws)
    if not shards:
        raise RuntimeError(f"{ws.path}: no shards; run split_stage first")
    report = ws.report()
    classes = ws.read_json("classes")
    vanished, held = list(classes.get("vanished", [])), list(classes.get("held", []))
    # rows confirmed unchanged by their row keys at detection never reach a shard
    outcomes = {k: 0 for k in ("new", "image_changed", "metadata_only")} | {"unchanged": len(classes.get("unchanged", []))}
    report.embeddings_reused += len(ws.read_json("unchanged_images", []))
    seconds = dict(report.seconds)
    quarantined = dict(report.quarantined)
    notes = list(report.notes)
    for shard in shards:
        part = shard.report()
        if "apply" not in part.seconds and not (dry_run and any("dry run" in n for n in part.notes)):
            raise RuntimeError(f"shard {shard.path.name} of {ws.path.name} has not been applied; rerun it first")
        report.products_stored += part.products_stored
        report.embedded += part.embedded
        report.embeddings_reused += part.embeddings_reused
        report.standardised = _merge_counts(report.standardised, part.standardised)
        report.thumbnails = _merge_counts(report.thumbnails, part.thumbnails)
        quarantined = _merge_counts(quarantined, part.quarantined)
        for stage, s in part.seconds.items():  # summed over shards: worker time, not wall time
            seconds[stage] = round(seconds.get(stage, 0.0) + s, 4)
        for k in outcomes:
            outcomes[k] += part.outcomes.get(k, 0)
        report.index_version = report.index_version or part.index_version
        notes += [n for n in part.notes if n not in notes]
    if dry_run:
        notes += [] if "dry run: nothing written" in notes else ["dry run: nothing written"]
    elif vanished:
        ProductStore(settings.data_dir).delete(vanished)
        if index is not None:
            live = index.live_version()
            if live is not None:
                index.delete(live, vanished)
                report.index_version = report.index_version or live
        if mirror is not None:
            mirror.delete(vanished)
    report.outcomes = outcomes | {
        "vanished": len(vanished),
        "held": len(held),
        "quarantined": sum(quarantined.values()),
    }
    report.quarantined, report.notes, report.seconds = quarantined, notes, seconds
    ws.save_report(report)
    _timed(ws, "finish", t0)
    report = ws.report()
    log.info(
        "feed done over %d shard(s): %s; %d embedded, %d reused, %d quarantined", len(shards), report.outcomes,
        report.embedded, report.embeddings_reused, report.quarantined_total,
        extra={"run_id": report.run_id, "vendor": report.vendor},
    )  # fmt: skip
    return report


def ingest_sharded(
    settings: Settings,
    feeds: list[FeedRef],
    run_id: str,
    model_id: str,
    encoder_factory: Callable[[], ClipEncoder],
    *,
    shard_size: int | None = None,
    workers: int = 0,
    index_factory: Callable[[], CatalogIndex | None] | None = None,
    zeroshot: bool = True,
    confirm_deletions: bool = False,
    pool=None,
) -> list[IngestReport]:
    """The DAG's flow without Airflow (the benchmark's path): each feed parsed, its changes detected and
    split here; every shard of every feed run on a pool of ``workers`` fresh processes (each shard loads
    the encoder and opens the index as its task would; 0: one after another in this process); then
    ``finish_feed`` per feed. The factories must be picklable (``functools.partial`` of module functions).
    ``pool``: a running ``multiprocessing`` pool to use instead (``warm_worker`` as its initializer keeps
    one encoder per process, as a long-lived worker would)."""
    workspaces = []
    for ref in feeds:
        ws = parse_stage(settings, ref, run_id)
        detect_stage(settings, ws, model_id, confirm_deletions=confirm_deletions)
        workspaces.append(ws)
    jobs = [
        (settings, str(s.path), encoder_factory, index_factory, zeroshot)
        for ws in workspaces
        for s in split_stage(settings, ws, shard_size)
    ]
    if pool is not None:
        pool.starmap(_run_shard_in_worker, jobs, chunksize=1)
    elif workers <= 0:
        for job in jobs:
            _run_shard_in_worker(*job)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:  # fresh processes, as workers are
            pool.starmap(_run_shard_in_worker, jobs, chunksize=1)
    index = index_factory() if index_factory else None
    return [finish_feed(settings, ws, index) for ws in workspaces]


def run_shard(
    settings: Settings,
    shard: ShardWorkspace,
    encoder: ClipEncoder,
    index: CatalogIndex | None,
    zeroshot: bool | ZeroShot = True,
) -> IngestReport:
    """A shard's four stages in order, as its four tasks run them."""
    from embeddings import ZeroShot

    run_shard_stage(shard, "fetch", lambda: fetch_stage(settings, shard))
    run_shard_stage(shard, "embed", lambda: embed_stage(settings, shard, encoder))
    zs = ZeroShot(encoder) if zeroshot is True else (zeroshot or None)
    run_shard_stage(shard, "standardise", lambda: standardise_stage(settings, shard, encoder.model_id, zs))
    return apply_shard(settings, shard, index)


_WORKER_ENCODER: ClipEncoder | None = None  # set by warm_worker in a pool's processes


def warm_worker(encoder_factory: Callable[[], ClipEncoder]) -> None:
    """A pool initializer: load the encoder once per worker process (imports and weights included)."""
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder_factory()


def _run_shard_in_worker(settings, path, encoder_factory, index_factory, zeroshot) -> None:
    encoder = _WORKER_ENCODER or encoder_factory()
    run_shard(settings, ShardWorkspace(path), encoder, index_factory() if index_factory else None, zeroshot)
