"""Ingest vendor feeds: parse -> quarantine -> change detection -> fetch (+ thumbnails) -> embed -> standardise
-> apply.

Each stage is a plain function over a *run workspace* (``<data_dir>/runs/<run_id>/<feed key>/``) that
holds what the next stage needs (parsed products as JSON Lines, the change classes, fetched image
bytes, a ``state.json`` of counts and timings), so a DAG task can run one stage and hand the next task
only the workspace path. ``ingest_feed`` runs every stage in one process for the CLI.

Change detection compares each incoming product with the stored one of the same product id:

- *new*: not stored -> fetch, embed (or reuse a stored vector of the same image hash and model).
- *image changed*: the image URL changed (or ``refetch``, or the stored hash has no vector for this
  model) -> fetch; if the fetched bytes hash differently, embed; else it is at most a metadata change.
- *metadata only*: same image, other fields differ -> fields updated in the stores and the index, no
  embedding.
- *unchanged*: nothing to write.
- *vanished*: stored for the vendor but absent from a full feed (and not even a quarantined row of it,
  nor a SKU recovered from a damaged row) -> deleted from the product store, the live index and the
  Redis mirror, but only when the feed was read completely (``deletion_hold``): a quarantined row whose
  SKU could not be recovered, or more vanished products than the configured bound, *holds* every
  deletion of the run (counted as ``held``, named in the report's notes and the log; the products stay
  live) until a run with ``confirm_deletions`` releases them.

Every image fetched also gets its thumbnail (``looksync.catalog.thumbnails``, keyed by image hash like
the vectors: an image already stored writes nothing), so result cards keep a picture when the vendor's
host goes away. A thumbnail that cannot be made is logged and counted; the product goes on without it.

``ingest_feed`` (one process) runs fetch and embed as one overlapped pass, each image decoded once
(``fetch_embed_stage``, ``looksync.pipelines.fetch_embed``); the DAG runs them as two tasks.

Where each part lives (this module runs them in one process and hands on their names, so callers
import every stage from here): the workspace, report and shared helpers in ``ingest_workspace``;
parsing in ``ingest_parse``; change detection and deletion holds in ``ingest_detect``; fetch, embed
and the overlapped pass in ``ingest_images``; ``ingest_standardise``; ``ingest_apply``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from looksync.pipelines.feed_ref import FeedRef
from looksync.pipelines.ingest_apply import _index_failures, apply_stage
from looksync.pipelines.ingest_detect import _COMPARED, _NOT_COMPARED, deletion_hold, detect_stage, metadata_differs
from looksync.pipelines.ingest_images import _log_thumbnail_failures, embed_stage, fetch_embed_stage, fetch_stage
from looksync.pipelines.ingest_parse import category_fallback, parse_stage, resolve_feed
from looksync.pipelines.ingest_standardise import standardise_stage
from looksync.pipelines.ingest_workspace import (
    OUTCOMES,
    STAGES,
    IngestReport,
    Workspace,
    _merge_counts,
    _quarantine_product,
    _timed,
    log,
    new_run_id,
    run_dir,
)
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder, ZeroShot
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.index import CatalogIndex

# the names callers import from here, as when the stages were one module (the private ones: shards.py)
__all__ = [
    "OUTCOMES",
    "STAGES",
    "IngestReport",
    "Workspace",
    "_COMPARED",
    "_NOT_COMPARED",
    "_index_failures",
    "_log_thumbnail_failures",
    "_merge_counts",
    "_quarantine_product",
    "_timed",
    "apply_stage",
    "category_fallback",
    "deletion_hold",
    "detect_stage",
    "embed_stage",
    "fetch_embed_stage",
    "fetch_stage",
    "ingest_feed",
    "metadata_differs",
    "new_run_id",
    "parse_stage",
    "resolve_feed",
    "run_dir",
    "standardise_stage",
]


def ingest_feed(
    settings: Settings,
    vendor: str,
    feed_path: str | Path,
    encoder: ClipEncoder,
    run_id: str | None = None,
    *,
    index: CatalogIndex | None = None,
    mirror: AttributeMirror | None = None,
    zeroshot: ZeroShot | Callable[[], ZeroShot] | None = None,
    refetch: bool = False,
    force_embed: bool = False,
    confirm_deletions: bool = False,
    mode: str = "full",
    message_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    overlapped: bool = True,
) -> IngestReport:
    """Every stage for one feed, in this process (the CLI path; the DAG runs the stages as tasks).

    ``overlapped``: fetch and embed as one overlapped pass (``fetch_embed_stage``); False: ``fetch_stage``
    then ``embed_stage``, as the DAG's tasks run them (what benchmarks and tests compare the pass with).
    ``progress``, when given, is called with each stage's name (``STAGES``) as the stage finishes."""
    done = progress or (lambda stage: None)
    run_id = run_id or new_run_id()
    ref = FeedRef(vendor, str(feed_path), mode=mode, message_id=message_id)
    log.info("ingest start", extra={"run_id": run_id, "vendor": vendor, "feed": str(feed_path)})
    fallback = category_fallback(settings, lambda: _zeroshot_of(encoder))
    ws = parse_stage(settings, ref, run_id, fallback, reuse_unchanged=not (refetch or force_embed))
    done("parse")
    detect_stage(settings, ws, encoder.model_id, refetch=refetch or force_embed, confirm_deletions=confirm_deletions)
    done("detect")
    if overlapped:
        fetch_embed_stage(settings, ws, encoder, force=force_embed)
        done("fetch")
    else:
        fetch_stage(settings, ws)
        done("fetch")
        embed_stage(settings, ws, encoder, force=force_embed)
    done("embed")
    if callable(zeroshot) and not hasattr(zeroshot, "scores"):
        zeroshot = zeroshot()
    standardise_stage(settings, ws, encoder.model_id, zeroshot)
    done("standardise")
    report = apply_stage(settings, ws, index, mirror, dry_run=dry_run)
    done("apply")
    return report


def _zeroshot_of(encoder: ClipEncoder) -> ZeroShot:
    from embeddings import ZeroShot

    return ZeroShot(encoder)
