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
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looksync.catalog.clip_terms import ClipCategoryFallback
from looksync.catalog.images import FetchError, FetchPolicy, fetch_images
from looksync.catalog.quarantine import QuarantineRecord, QuarantineWriter, Reason
from looksync.catalog.schema import Product
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.catalog.thumbnails import ThumbnailStore
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.catalog.vendors.feed import ParsedRow, apply_offer
from looksync.catalog.vendors.fingerprint import mapping_fingerprint
from looksync.pipelines.feed_ref import FeedRef
from looksync.pipelines.gc_pause import gc_paused
from looksync.pipelines.row_keys import confirm_offers, confirm_unchanged, known_rows, settings_salt
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder, ZeroShot
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.index import CatalogIndex

log = logging.getLogger(__name__)

# fields whose difference is not a change of the product (bookkeeping of the pipeline itself)
_NOT_COMPARED = {"updated_at", "image_hash", "model_id"}
_COMPARED = tuple(name for name in Product.model_fields if name not in _NOT_COMPARED)
OUTCOMES = ("new", "image_changed", "metadata_only", "unchanged", "vanished", "held", "quarantined")
STAGES = ("parse", "detect", "fetch", "embed", "standardise", "apply")  # in order; ingest_feed reports each


@dataclass
class IngestReport:
    run_id: str
    vendor: str
    feed: str
    rows_read: int = 0
    products_stored: int = 0
    embedded: int = 0
    embeddings_reused: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_path: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    standardised: dict[str, int] = field(default_factory=dict)  # source -> attributes set
    category_sources: dict[str, int] = field(default_factory=dict)  # rule / synonym / clip -> products read
    thumbnails: dict[str, int] = field(default_factory=dict)  # written / existing / failed, per distinct image
    index_version: str | None = None
    notes: list[str] = field(default_factory=list)
    message_id: str | None = None
    deletions_held: list[str] = field(default_factory=list)  # product ids left live by a deletion hold
    hold_reasons: list[str] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def new_run_id(prefix: str = "ingest") -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.data_dir / "runs" / run_id


# -- the workspace: what one feed's stages hand each other -------------------------------------------


class Workspace:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, settings: Settings, ref: FeedRef, run_id: str) -> Workspace:
        ws = cls(run_dir(settings, run_id) / ref.key)
        ws.path.mkdir(parents=True, exist_ok=True)
        ws.save_state({"run_id": run_id, "ref": asdict(ref), "report": asdict(IngestReport(run_id, ref.vendor, ref.feed))})
        return ws

    def state(self) -> dict[str, Any]:
        return json.loads((self.path / "state.json").read_text())

    def save_state(self, state: dict[str, Any]) -> None:
        tmp = self.path / f".state.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(state, indent=1, default=str))
        tmp.replace(self.path / "state.json")

    @property
    def ref(self) -> FeedRef:
        return FeedRef(**self.state()["ref"])

    @property
    def run_id(self) -> str:
        return self.state()["run_id"]

    def report(self) -> IngestReport:
        return IngestReport(**self.state()["report"])

    def save_report(self, report: IngestReport) -> None:
        state = self.state()
        state["report"] = asdict(report)
        self.save_state(state)

    def write_products(self, name: str, products: list[Product]) -> None:
        with (self.path / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for p in products:
                fh.write(p.model_dump_json() + "\n")

    def read_products(self, name: str) -> list[Product]:
        path = self.path / f"{name}.jsonl"
        if not path.exists():
            return []
        return [Product.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def write_json(self, name: str, data: Any) -> None:
        # not indented: json's indenting encoder is pure Python, seconds for the id lists of a 100k feed
        (self.path / f"{name}.json").write_text(json.dumps(data))

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else default

    def quarantine(self, settings: Settings) -> QuarantineWriter:
        return QuarantineWriter(settings.data_dir / "quarantine", f"{self.run_id}-{self.ref.key}")


def _timed(ws: Workspace, stage: str, started: float, ended: float | None = None) -> None:
    report = ws.report()
    elapsed = (ended if ended is not None else time.perf_counter()) - started
    report.seconds[stage] = round(report.seconds.get(stage, 0.0) + elapsed, 4)
    ws.save_report(report)


def _quarantine_product(
    row_refs: dict[str, list], quarantine: QuarantineWriter, product: Product, reason: Reason, message: str
) -> None:
    """Quarantine a product after parsing (image fetch, embedding), naming its feed row and SKU."""
    row_ref, line = row_refs.get(product.product_id) or ("row unknown", None)
    quarantine.add(
        QuarantineRecord(
            vendor=product.vendor,
            reason=reason,
            message=f"{row_ref}, sku {product.vendor_sku}: {message}",
            row_ref=row_ref,
            raw=product.model_dump(mode="json"),
            vendor_sku=product.vendor_sku,
            line=line,
        )
    )


def resolve_feed(settings: Settings, feed: str, workdir: Path) -> Path:
    """A local path for the feed: ``s3://`` feeds are downloaded into ``workdir`` first."""
    if feed.startswith("s3://"):
        from looksync.catalog.object_store import open_store

        bucket_and_key = feed.removeprefix("s3://")
        bucket, _, key = bucket_and_key.partition("/")
        store = open_store(f"s3://{bucket}", settings)
        return store.get_file(key, workdir / "feed" / Path(key).name)
    return Path(feed.removeprefix("file://"))


# -- stages -----------------------------------------------------------------------------------------


def category_fallback(
    settings: Settings, zeroshot: ZeroShot | Callable[[], ZeroShot] | None = None
) -> ClipCategoryFallback | None:
    """The CLIP fallback for unknown category terms the settings ask for (None: ``category_clip_fallback``
    off). Without ``zeroshot`` the settings' CLIP model is loaded at the first unknown term only."""
    if not settings.category_clip_fallback:
        return None

    def settings_model() -> ZeroShot:
        from embeddings import ZeroShot, load_encoder_from_settings

        return ZeroShot(load_encoder_from_settings(settings))

    return ClipCategoryFallback(zeroshot or settings_model, settings.category_clip_min_confidence,
                                settings.category_clip_max_wrong)  # fmt: skip


@gc_paused()
def parse_stage(
    settings: Settings,
    ref: FeedRef,
    run_id: str,
    fallback: ClipCategoryFallback | None | bool = True,
    reuse_unchanged: bool = True,
) -> Workspace:
    """Read and validate the feed; rows that cannot become products go to quarantine. ``fallback``: the
    CLIP fallback for unknown category terms (True: ``category_fallback(settings)``; None: none).

    A row that is exactly the one a stored product was made from (same bytes, same mapping: its row key,
    ``looksync.catalog.vendors.fingerprint``) is not mapped again (``reuse_unchanged``): it is listed in
    ``unchanged.json`` (product id -> row key) and ``detect_stage`` confirms it against the stores. A row
    that is a stored product's row but for its offer cells (its offer key) is read for its offer only: the
    stored product with that offer goes to ``offers`` (``offered.json``: ``changed`` / ``same`` as the
    stored one), not ``incoming`` (``looksync.pipelines.row_keys``)."""
    t0 = time.perf_counter()
    ws = Workspace.create(settings, ref, run_id)
    config = load_vendor_config(ref.vendor)
    fallback = category_fallback(settings) if fallback is True else fallback or None
    quarantine = ws.quarantine(settings)
    report = ws.report()
    report.message_id = ref.message_id
    report.quarantine_path = str(quarantine.path)
    products: list[Product] = []
    seen_skus: set[str] = set()
    row_refs: dict[str, list] = {}  # product id -> [row ref, line] in the feed, for quarantines of later stages
    doubtful: list[tuple[str, str | None]] = []  # (row ref, recovered SKU) of unreadable or SKU-less rows
    cleaned: dict[str, list[str]] = {}  # "title truncated" -> row refs: display text changed on the way in
    fingerprint = mapping_fingerprint(config, settings_salt(settings))
    known, known_offers = known_rows(settings, ref.vendor) if reuse_unchanged and settings.ingest_row_keys else ({}, {})
    unchanged: dict[str, str] = {}  # product id -> row key: rows a stored product was made from
    row_keys: dict[str, str] = {}  # product id -> row key of the products mapped now (recorded if they are kept)
    offer_keys: dict[str, str] = {}  # product id -> offer key, likewise
    offer_rows: list[ParsedRow] = []  # rows read for their offer only, made products once the feed is read
    sources = report.category_sources

    def take(row: ParsedRow) -> None:
        seen_skus.update(row.swallowed_skus)
        if row.rejection is not None:
            quarantine.add(row.rejection)
            if row.rejection.vendor_sku:
                seen_skus.add(row.rejection.vendor_sku)
            if row.doubtful:
                doubtful.append((row.row_ref, row.rejection.vendor_sku))
            return
        (offers if row.offer_of is not None else products).append(row.product)
        source = row.product.category_source or "rule"
        sources[source] = sources.get(source, 0) + 1
        row_refs[row.product.product_id] = [row.row_ref, row.line]
        seen_skus.add(row.product.vendor_sku)
        for key, changes in row.cleaned.items():
            for change in changes:
                cleaned.setdefault(f"{key} {change}", []).append(row.row_ref)
        # a row whose text was cleaned or whose category CLIP guessed is mapped again each time, so
        # its note and the fallback's counts stay in every run's report
        if row.row_key is not None and not row.cleaned and source != "clip":
            row_keys[row.product.product_id] = row.row_key
            if row.offer_key is not None:
                offer_keys[row.product.product_id] = row.offer_key

    feed = read_feed(config, resolve_feed(settings, ref.feed, ws.path), fallback, fingerprint=fingerprint, known=known,
                     offers=known_offers)  # fmt: skip
    offers: list[Product] = []
    for row in feed:
        report.rows_read += 1
        if row.unchanged is not None:
            pid, sku, source = known[row.row_key]
            unchanged[pid] = row.row_key
            seen_skus.add(sku)
            source = source or "rule"
            sources[source] = sources.get(source, 0) + 1
        elif row.offer_of is not None:
            offer_rows.append(row)
        else:
            take(row)
    stored = ProductStore(settings.data_dir).records([row.offer_of for row in offer_rows]) if offer_rows else {}
    for row in offer_rows:
        take(apply_offer(config, row, stored.get(row.offer_of), fallback))
    ws.write_products("incoming", products)
    ws.write_products("offers", offers)
    offered: dict[str, list[str]] = {"changed": [], "same": []}  # as the stored products: differ or not
    for p in offers:
        offered["changed" if metadata_differs(p, stored[p.product_id]) else "same"].append(p.product_id)
    ws.write_json("offered", offered)
    ws.write_json("unchanged", unchanged)
    ws.write_json("row_keys", row_keys)
    ws.write_json("offer_keys", offer_keys)
    ws.write_json("seen_skus", sorted(seen_skus))
    ws.write_json("doubtful_rows", doubtful)
    ws.write_json("row_refs", row_refs)
    report.quarantined = dict(quarantine.counts)
    for note in fallback.notes() if fallback else []:
        report.notes.append(note)
        log.warning(note, extra={"run_id": run_id, "vendor": ref.vendor})
    for what, refs in sorted(cleaned.items()):
        shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        report.notes.append(f"text cleaned: {what} in {len(refs)} row(s) ({shown}); see docs/vendors.md")
        log.warning("display text cleaned: %s in %d row(s)", what, len(refs), extra={"run_id": run_id, "vendor": ref.vendor, "rows": refs[:50]})
    ws.save_report(report)
    _timed(ws, "parse", t0)
    log.info("parsed %d rows: %d products, %d rows as stored, %d read for their offer", report.rows_read,
             len(products), len(unchanged), len(offers), extra={"run_id": run_id, "vendor": ref.vendor})  # fmt: skip
    return ws


def metadata_differs(a: Product, b: Product | dict[str, Any]) -> bool:
    """Whether two products differ in anything but bookkeeping; ``b`` may be a stored record as a JSON
    object (``ProductStore.records``)."""
    # field by field on the attributes (str, float, bool, lists of str: equal exactly when their JSON is,
    # so a record's JSON values compare as the product's); two model_dumps per product cost more than
    # the rest of the comparison
    if isinstance(b, dict):
        return any(getattr(a, k) != b.get(k) for k in _COMPARED)
    return any(getattr(a, k) != getattr(b, k) for k in _COMPARED)


def deletion_hold(settings: Settings, vanished: int, live: int, unattributed: list[str]) -> list[str]:
    """Why a run's deletions must wait for a confirmation (empty: they may go ahead).

    ``unattributed``: quarantined rows that may be any live product (no SKU recovered, or one salvaged
    from a damaged row that names no live product: the damage may have hit the SKU), so no absence can
    be trusted;
    a large share of the catalog vanishing at once is far more often a broken export than a clearance."""
    if not vanished:
        return []
    reasons = []
    if unattributed:
        shown = ", ".join(unattributed[:5]) + (", ..." if len(unattributed) > 5 else "")
        reasons.append(f"{len(unattributed)} unreadable row(s) not attributable to a live product ({shown})")
    share = vanished / live if live else 1.0
    if vanished > settings.ingest_delete_free_count and share > settings.ingest_delete_max_share:
        reasons.append(
            f"{vanished} of {live} live products ({share:.0%}) would be deleted, above the bound of "
            f"{settings.ingest_delete_max_share:.0%} (ingest_delete_max_share)"
        )
    return reasons


@gc_paused()
def detect_stage(
    settings: Settings, ws: Workspace, model_id: str, refetch: bool = False, confirm_deletions: bool = False
) -> Workspace:
    """Classify incoming products against the stored ones: which need their image fetched, which
    vanished (or are held: see ``deletion_hold``; ``confirm_deletions`` releases a hold). Products
    keeping their image carry the stored image hash forward."""
    t0 = time.perf_counter()
    ref = ws.ref
    incoming = ws.read_products("incoming")
    products = ProductStore(settings.data_dir)
    have_vector = EmbeddingStore.from_settings(settings).hashes(model_id)
    live = products.vendor_rows(ref.vendor, ["product_id", "vendor_sku", "image_hash"])  # the vendor's stored rows
    live_ids, live_skus, live_images = (live.column(i).to_pylist() for i in range(3)) if live is not None else ([], [], [])
    stored_images = dict(zip(live_ids, live_images, strict=True))
    confirmed = confirm_unchanged(products, stored_images, ws.read_json("unchanged", {}), have_vector, refetch)
    incoming += confirmed["recheck"]
    offers = confirm_offers(stored_images, ws.read_json("offered", {}), have_vector, refetch)
    if offers["recheck"]:  # read for their offer, but their stored image needs fetching: classified below
        recheck = set(offers["recheck"])
        incoming += [p for p in ws.read_products("offers") if p.product_id in recheck]
    stored = products.get_many([p.product_id for p in incoming])
    classes: dict[str, list[str]] = {"new": [], "image_check": [], "same_image": [], "vanished": [], "held": []}
    for p in incoming:
        old = stored.get(p.product_id)
        if old is None:
            classes["new"].append(p.product_id)
        elif refetch or old.image_urls[0] != p.image_urls[0] or old.image_hash not in have_vector:
            classes["image_check"].append(p.product_id)
        else:
            p.image_hash = old.image_hash
            classes["same_image"].append(p.product_id)
    classes["unchanged"] = confirmed["ids"] + offers["same"]
    classes["offer"] = offers["changed"]  # keep their stored image and vector: written at apply, nothing else
    ws.write_json("unchanged_images", sorted(set(confirmed["images"]) | set(offers["images"])))
    if confirmed["recheck"]:  # mapped from their rows as before: their row keys still hold
        unchanged, row_keys = ws.read_json("unchanged", {}), ws.read_json("row_keys", {})
        ws.write_json("row_keys", row_keys | {p.product_id: unchanged[p.product_id] for p in confirmed["recheck"]})
    if ref.mode == "full" and settings.ingest_delete_vanished:
        seen = set(ws.read_json("seen_skus", []))
        present = {p.product_id for p in incoming} | set(classes["unchanged"]) | set(classes["offer"])
        config = load_vendor_config(ref.vendor)  # stored SKUs keyed as this run keyed the feed's
        absent = [(pid, sku) for pid, sku in zip(live_ids, live_skus, strict=True) if pid not in present]
        vanished = sorted(pid for pid, sku in absent if config.sku_key(sku) not in seen)
        doubtful_rows = ws.read_json("doubtful_rows", [])
        live_keys = {config.sku_key(sku) for sku in live_skus} if doubtful_rows else set()
        unattributed = [ref for ref, sku in doubtful_rows if not sku or sku not in live_keys]
        reasons = deletion_hold(settings, len(vanished), len(live_ids), unattributed)
        if reasons and not confirm_deletions:
            classes["held"] = vanished
            report = ws.report()
            report.deletions_held, report.hold_reasons = vanished, reasons
            report.notes.append(
                f"deletions held: {len(vanished)} vanished product(s) left live because "
                + "; ".join(reasons)
                + " (rerun with --confirm-deletions / the DAG's confirm_deletions param to delete them)"
            )
            ws.save_report(report)
            log.warning(
                "deletions held: %d vanished products left live: %s", len(vanished), "; ".join(reasons),
                extra={"run_id": ws.run_id, "vendor": ref.vendor, "product_ids": vanished[:20]},
            )  # fmt: skip
        else:
            classes["vanished"] = vanished
            if reasons:
                report = ws.report()
                report.notes.append(f"deletions confirmed: {len(vanished)} deleted although " + "; ".join(reasons))
                ws.save_report(report)
    ws.write_products("incoming", incoming)
    ws.write_json("classes", classes)
    _timed(ws, "detect", t0)
    return ws


def fetch_stage(settings: Settings, ws: Workspace) -> Workspace:
    """Fetch the images of new and possibly changed products (guarded: see ``looksync.catalog.images``)
    and store the thumbnail of each image not stored yet (``looksync.catalog.thumbnails``)."""
    t0 = time.perf_counter()
    classes = ws.read_json("classes")
    wanted = set(classes["new"]) | set(classes["image_check"])
    todo = [p for p in ws.read_products("incoming") if p.product_id in wanted] if wanted else []
    quarantine = ws.quarantine(settings)
    row_refs = ws.read_json("row_refs", {})
    images_dir = ws.path / "images"
    images_dir.mkdir(exist_ok=True)
    fetched: dict[str, str] = {}  # product id -> image hash
    images: dict[str, bytes] = {}  # image hash -> bytes, each distinct image once
    policy = replace(FetchPolicy.from_settings(settings), refuse_blank=True)  # a product image must show something
    results = fetch_images([p.image_urls[0] for p in todo], policy, settings.fetch_concurrency)
    for product, result in zip(todo, results, strict=True):
        if isinstance(result, FetchError):
            _quarantine_product(row_refs, quarantine, product, result.reason, result.message)
            continue
        path = images_dir / result.sha256
        if not path.exists():
            path.write_bytes(result.data)
        fetched[product.product_id] = result.sha256
        images[result.sha256] = result.data
    ws.write_json("fetched", fetched)
    fetch_done = time.perf_counter()
    thumbnails = ThumbnailStore.from_settings(settings).ensure_many(images, settings.fetch_concurrency)
    _log_thumbnail_failures(ws, thumbnails.failed, fetched)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    report.thumbnails = _merge_counts(report.thumbnails, thumbnails.counts())
    ws.save_report(report)
    _timed(ws, "fetch", t0, fetch_done)
    _timed(ws, "thumbnails", fetch_done)
    return ws


def _log_thumbnail_failures(ws: Workspace, failed: dict[str, str], fetched: dict[str, str]) -> None:
    """The cards of these products show the vendor's image URL instead: say which, and why."""
    ids = {"run_id": ws.run_id, "vendor": ws.ref.vendor} if failed else {}
    for image_hash, reason in failed.items():
        product_ids = sorted(pid for pid, h in fetched.items() if h == image_hash)
        log.warning("no thumbnail for image %s: %s", image_hash[:12], reason, extra={**ids, "product_ids": product_ids})


def embed_stage(settings: Settings, ws: Workspace, encoder: ClipEncoder, force: bool = False) -> Workspace:
    """Embed fetched images whose (hash, model) has no stored vector (all of them with ``force``)."""
    t0 = time.perf_counter()
    fetched: dict[str, str] = ws.read_json("fetched", {})
    store = EmbeddingStore.from_settings(settings)
    hashes = set(fetched.values())
    known = {} if force else store.lookup(encoder.model_id, hashes)
    todo = [(h, ws.path / "images" / h) for h in sorted(hashes) if h not in known]
    ids, vectors, failures = encoder.encode_images_safe([(h, p.read_bytes()) for h, p in todo])
    store.add(encoder.model_id, ids, vectors)
    ws.write_json("embed_failures", dict(failures))
    ws.write_json("embedded_hashes", sorted(set(ids) | set(ws.read_json("embedded_hashes", []))))
    report = ws.report()
    report.embedded += len(ids)
    ws.save_report(report)
    _timed(ws, "embed", t0)
    log.info("embedded %d images, reused %d", len(ids), len(known), extra={"run_id": ws.run_id, "vendor": ws.ref.vendor})
    return ws


def fetch_embed_stage(settings: Settings, ws: Workspace, encoder: ClipEncoder, force: bool = False) -> Workspace:
    """``fetch_stage`` and ``embed_stage`` as one overlapped pass, each image decoded once
    (``looksync.pipelines.fetch_embed``): the workspace and the report end as the two stages leave them.
    Seconds: ``embed`` is the forward passes, ``fetch`` the rest of the pass (thumbnails made in it)."""
    from looksync.pipelines.fetch_embed import fetch_and_embed

    t0 = time.perf_counter()
    classes = ws.read_json("classes")
    wanted = set(classes["new"]) | set(classes["image_check"])
    todo = [p for p in ws.read_products("incoming") if p.product_id in wanted] if wanted else []
    quarantine = ws.quarantine(settings)
    row_refs = ws.read_json("row_refs", {})
    images_dir = ws.path / "images"
    images_dir.mkdir(exist_ok=True)
    store = EmbeddingStore.from_settings(settings)
    known = set() if force or not todo else store.hashes(encoder.model_id)

    def keep(image_hash: str, data: bytes) -> None:
        if not (images_dir / image_hash).exists():
            (images_dir / image_hash).write_bytes(data)

    result = fetch_and_embed([p.image_urls[0] for p in todo], FetchPolicy.from_settings(settings), encoder,
                             ThumbnailStore.from_settings(settings), known=known, keep=keep,
                             concurrency=settings.fetch_concurrency)  # fmt: skip
    fetched: dict[str, str] = {}
    for product, outcome in zip(todo, result.outcomes, strict=True):
        if isinstance(outcome, FetchError):
            _quarantine_product(row_refs, quarantine, product, outcome.reason, outcome.message)
        else:
            fetched[product.product_id] = outcome
    store.add(encoder.model_id, result.ids, result.vectors)
    ws.write_json("fetched", fetched)
    ws.write_json("embed_failures", dict(result.failures))
    ws.write_json("embedded_hashes", sorted(set(result.ids) | set(ws.read_json("embedded_hashes", []))))
    _log_thumbnail_failures(ws, result.thumbnails.failed, fetched)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    report.thumbnails = _merge_counts(report.thumbnails, result.thumbnails.counts())
    report.embedded += len(result.ids)
    ws.save_report(report)
    ended = time.perf_counter()
    _timed(ws, "fetch", t0, ended - result.model_s)
    _timed(ws, "embed", ended - result.model_s, ended)
    log.info("fetched %d images, embedded %d", len(fetched), len(result.ids), extra={"run_id": ws.run_id, "vendor": ws.ref.vendor})
    return ws


@gc_paused()
def standardise_stage(settings: Settings, ws: Workspace, model_id: str, zeroshot: ZeroShot | None = None) -> Workspace:
    """Settle each product's image hash, standardise attributes, and classify the final outcome."""
    from looksync.pipelines.enrich import standardise

    t0 = time.perf_counter()
    classes = ws.read_json("classes")
    fetched: dict[str, str] = ws.read_json("fetched", {})
    failed = ws.read_json("embed_failures", {})
    quarantine = ws.quarantine(settings)
    row_refs = ws.read_json("row_refs", {})
    stored = ProductStore(settings.data_dir).get_many(classes["image_check"] + classes["same_image"])
    vectors_store = EmbeddingStore.from_settings(settings)
    ready: list[Product] = []
    fetch_needed = set(classes["new"]) | set(classes["image_check"])
    for p in ws.read_products("incoming"):
        if p.product_id in fetch_needed:
            if p.product_id not in fetched:
                continue  # quarantined at fetch; a stored version (if any) stays as it is
            p.image_hash = fetched[p.product_id]
            if p.image_hash in failed:
                _quarantine_product(row_refs, quarantine, p, Reason.IMAGE_NOT_IMAGE, failed[p.image_hash])
                continue
        p.model_id = model_id
        ready.append(p)
    vectors = vectors_store.lookup(model_id, {p.image_hash for p in ready})
    ready = [p for p in ready if p.image_hash in vectors]
    result = standardise(ready, vectors, zeroshot, settings.zeroshot_min_confidence)
    final: dict[str, list[str]] = {k: [] for k in ("new", "image_changed", "metadata_only", "unchanged")}
    write: list[Product] = []
    for p in ready:
        old = stored.get(p.product_id)
        if old is None:
            outcome = "new"
        elif old.image_hash != p.image_hash:
            outcome = "image_changed"
        elif metadata_differs(old, p):
            outcome = "metadata_only"
        else:
            outcome = "unchanged"
        final[outcome].append(p.product_id)
        if outcome != "unchanged":
            write.append(p)
    final["unchanged"] += classes.get("unchanged", [])  # confirmed from their rows' keys, never parsed
    # read for their offer only (row_keys.confirm_offers): the stored product with a new offer, written at apply
    final["offer"] = classes.get("offer", [])
    final["metadata_only"] += final["offer"]
    final["model_id"] = model_id
    final["vanished"] = classes["vanished"]
    final["held"] = classes.get("held", [])
    ws.write_products("write", write)
    ws.write_json("final", final)
    ws.write_json("sources", result.sources)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    # every distinct image of a product kept in this run whose vector was not computed now was reused
    kept_images = {p.image_hash for p in ready} | set(ws.read_json("unchanged_images", []))
    report.embeddings_reused = len(kept_images - set(ws.read_json("embedded_hashes", [])))
    report.outcomes = {k: len(final[k]) for k in OUTCOMES if k in final}
    report.outcomes["quarantined"] = sum(report.quarantined.values())
    report.standardised = {"rules": result.count("rules"), "zeroshot": result.count("zeroshot"),
                           "contradictions": len(result.contradictions), "still_missing": len(result.still_missing)}  # fmt: skip
    ws.save_report(report)
    _timed(ws, "standardise", t0)
    return ws


@gc_paused()
def apply_stage(
    settings: Settings,
    ws: Workspace,
    index: CatalogIndex | None = None,
    mirror: AttributeMirror | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """Write the outcome: product store, live index (upsert / metadata update / delete), Redis mirror.

    Without a live index version one is created for this model (the first ingest bootstraps the
    index); a live version of another model is left alone (a model switch goes through a backfill
    into a new version, then a swap)."""
    import numpy as np

    t0 = time.perf_counter()
    final = ws.read_json("final")
    write = ws.read_products("write")
    report = ws.report()
    if dry_run:
        report.notes.append("dry run: nothing written")
        ws.save_report(report)
        return report
    if final.get("offer"):  # the stored products with a new offer: their vectors are of the run's model
        offered = set(final["offer"])
        for p in ws.read_products("offers"):
            if p.product_id in offered:
                p.model_id = final["model_id"]
                write.append(p)
    outcome_of = {pid: k for k in ("new", "image_changed", "metadata_only") for pid in final[k]}
    by_outcome: dict[str, list[Product]] = {k: [] for k in ("new", "image_changed", "metadata_only")}
    for p in write:
        if p.product_id in outcome_of:
            by_outcome[outcome_of[p.product_id]].append(p)
    products = ProductStore(settings.data_dir)
    # the keys of the products kept, written or confirmed: recorded with them
    row_keys, offer_keys = ws.read_json("row_keys", {}), ws.read_json("offer_keys", {})
    kept = [pid for k in ("new", "image_changed", "metadata_only", "unchanged") for pid in final[k]]
    report.products_stored = products.upsert(write, {pid: row_keys[pid] for pid in kept if pid in row_keys},
                                             {pid: offer_keys[pid] for pid in kept if pid in offer_keys})  # fmt: skip
    products.delete(final["vanished"])
    if index is not None:
        model_id = write[0].model_id if write else None
        live = index.live_version()
        if live is None and write:
            dim = len(next(iter(EmbeddingStore.from_settings(settings).lookup(model_id, [write[0].image_hash]).values())))
            live = index.create_version(model_id, dim)
            index.set_live(live)
            report.notes.append(f"no live index version: created {live} for {model_id}")
        live_model = index.live_model_id() if live else None
        if live and model_id and live_model != model_id:
            report.notes.append(f"live index {live} holds {live_model}, not {model_id}: index not updated (backfill + swap)")
        elif live:
            embed_now = by_outcome["new"] + by_outcome["image_changed"]
            if embed_now:
                vectors = EmbeddingStore.from_settings(settings).lookup(model_id, {p.image_hash for p in embed_now})
                matrix = np.stack([vectors[p.image_hash] for p in embed_now]).astype(np.float32)
                result = index.upsert(live, embed_now, matrix)
                _index_failures(report, result.failures, "upsert")
            if by_outcome["metadata_only"]:
                result = index.update_metadata(live, by_outcome["metadata_only"])
                _index_failures(report, result.failures, "metadata update")
            if final["vanished"]:
                index.delete(live, final["vanished"])
            report.index_version = live
    else:
        report.notes.append("no index given: stores written, index not updated (run `looksync index build`)")
    if mirror is not None:
        groups = products.groups() if write else {}
        mirror.upsert(write, {p.product_id: groups.get(p.product_id) for p in write}, ws.read_json("sources", {}))
        mirror.delete(final["vanished"])
    else:
        report.notes.append("no Redis configured: attribute mirror not updated")
    ws.save_report(report)
    _timed(ws, "apply", t0)
    report = ws.report()
    log.info(
        "ingest done: %s; %d embedded, %d reused, %d quarantined",
        report.outcomes, report.embedded, report.embeddings_reused, report.quarantined_total,
        extra={"run_id": report.run_id, "vendor": report.vendor},
    )  # fmt: skip
    return report


def _index_failures(report: IngestReport, failures: list[tuple[str, str]], what: str) -> None:
    if failures:
        report.notes.append(f"index {what}: {len(failures)} failures, first: {failures[0]}")


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


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
