"""Shadow mirroring: a share of live look and text queries asked again of the shadow index version.

The live path only samples a query and puts a small reference to it (the request, the image it
already holds, the live result ids and scores) on a bounded queue with ``put_nowait``: when the queue
is full the query is dropped and counted, never waited for. One worker thread asks the same request of a
second ``SearchEngine`` (the shadow model, reading the shadow version, local query generation, no look
cache) and compares it with what live answered, layer by layer: overlap@10, Spearman's and Kendall's
rank correlation over the products both returned, and the score shift (mean top-k score of shadow
minus that of live). Each comparison goes to the ``ShadowLog`` (JSON lines, one file per shadow
version; the rollout gates read it) and to the events (Prometheus metrics in the service).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looksync.metrics import kendall_tau, overlap_at_k, spearman_rho

if TYPE_CHECKING:
    from PIL.Image import Image

    from looksync.index import CatalogIndex
    from looksync.search.engine import SearchEngine
    from looksync.search.requests import LookSearchRequest, SearchRequest
    from looksync.settings import Settings

log = logging.getLogger(__name__)

K = 10
TEXT_LAYER = "text"  # the one "layer" of a text or image search
RECHECK_S = 5.0  # how often the worker re-reads which version is shadow
# the worker's OS scheduling priority (Linux, per thread): shadow forwards yield the cores to live requests
WORKER_NICE = 10


class ShadowEvents:
    """Hooks for metrics; the defaults do nothing."""

    def shadow_offered(self, kind: str, accepted: bool) -> None:  # accepted False: dropped, the queue was full
        pass

    def shadow_compared(self, record: dict[str, Any]) -> None:
        pass


def ranked(response: dict[str, Any], kind: str) -> dict[str, list[tuple[str, float]]]:
    """layer -> [(product id, score)] best first, of a look response (``kind`` look) or a search one."""
    if kind == "look":
        return {
            layer["layer"]: [(p["product_id"], float(p["score"])) for p in layer["products"]]
            for layer in response.get("layers", [])
        }
    return {TEXT_LAYER: [(p["product_id"], float(p["score"])) for p in response.get("products", [])]}


def compare_layer(live: list[tuple[str, float]], shadow: list[tuple[str, float]], k: int = K) -> dict[str, Any]:
    """One layer's agreement of shadow with live (None where a figure is undefined: no common products)."""
    live_ids, shadow_ids = [p for p, _ in live[:k]], [p for p, _ in shadow[:k]]
    shift = None
    if live and shadow:
        shift = sum(s for _, s in shadow[:k]) / len(shadow[:k]) - sum(s for _, s in live[:k]) / len(live[:k])
    return {
        "overlap": overlap_at_k(live_ids, shadow_ids, k),
        "spearman": spearman_rho(live_ids, shadow_ids),
        "kendall": kendall_tau(live_ids, shadow_ids),
        "score_shift": shift,
        "live_n": len(live_ids),
        "shadow_n": len(shadow_ids),
    }


class ShadowLog:
    """The comparisons of one shadow version, one JSON object a line. Appends are single ``write`` calls on
    a file opened for appending, so lines from several threads or workers do not interleave."""

    def __init__(self, directory: Path, version: str):
        self.path = Path(directory) / f"{version}.jsonl"
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every record; a line cut short (a worker killed mid-write) is skipped."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                log.warning("shadow log %s: skipped an unreadable line", self.path)
        return records


@dataclass
class _Mirrored:
    kind: str  # look | text
    request: Any
    image: Any
    live: dict[str, list[tuple[str, float]]]
    live_degraded: bool
    live_version: str | None


class ShadowMirror:
    """Mirrors ``share`` of the queries offered to ``shadow`` (an engine reading the shadow version)."""

    def __init__(self, shadow: SearchEngine, index: CatalogIndex, version: str, log_dir: Path, share: float,
                 queue_size: int = 64, events: ShadowEvents | None = None, seed: int | None = None,
                 nice: int = WORKER_NICE):  # fmt: skip
        self.shadow = shadow
        self.index = index
        self.version = version
        self.log = ShadowLog(log_dir, version)
        self.share = share
        self.events = events or ShadowEvents()
        self.queue: queue.Queue[_Mirrored | None] = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.compared = 0
        self._rng = random.Random(seed)
        self.nice = nice
        self._active = True
        self._checked = time.monotonic()
        self._thread = threading.Thread(target=self._work, name=f"shadow-{version}", daemon=True)
        self._thread.start()

    # ---- the live path: sample, reference, put_nowait --------------------------------------------

    def offer_look(self, image: Image, request: LookSearchRequest, response: dict[str, Any]) -> bool:
        return self._offer("look", request, image, response)

    def offer_search(self, request: SearchRequest, image: Image | None, response: dict[str, Any]) -> bool:
        return self._offer("text", request, image, response)

    def _offer(self, kind: str, request: Any, image: Any, response: dict[str, Any]) -> bool:
        if not self._active or self._rng.random() >= self.share:
            return False
        item = _Mirrored(kind, request, image, ranked(response, kind), bool(response.get("degraded")),
                         response.get("index_version"))  # fmt: skip
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.events.shadow_offered(kind, accepted=False)
            return False
        self.events.shadow_offered(kind, accepted=True)
        return True

    # ---- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)  # this thread only, on Linux
        except (AttributeError, OSError) as exc:
            log.info("shadow worker keeps the process priority: %s", exc)
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self._still_shadow():
                    self._compare(item)
            except Exception:  # noqa: BLE001 - the worker must outlive any one query
                log.exception("shadow comparison failed", extra={"shadow_version": self.version})
            finally:
                self.queue.task_done()

    def _still_shadow(self) -> bool:
        """The index may have promoted or dropped the shadow since the service started: stop mirroring then."""
        if time.monotonic() - self._checked >= RECHECK_S:
            self._checked = time.monotonic()
            current = self.index.shadow_version()
            if current != self.version:
                log.warning("shadow version is now %r, not %s: mirroring stops", current, self.version)
                self._active = False
        return self._active

    def _compare(self, item: _Mirrored) -> None:
        started = time.perf_counter()
        error, shadow, degraded = None, {}, False
        try:
            if item.kind == "look":
                response = self.shadow.search_look(item.image, item.request)
            else:
                response = self.shadow.search(item.request, item.image)
            shadow, degraded = ranked(response, item.kind), bool(response.get("degraded"))
        except Exception as exc:  # noqa: BLE001 - a shadow failure is a finding (the error-rate gate), not a crash
            error = f"{type(exc).__name__}: {exc}"
        record = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": item.kind,
            "live_version": item.live_version,
            "shadow_version": self.version,
            "live_error": item.live_degraded,
            "shadow_error": error is not None or degraded,
            "error": error,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "layers": {} if error else {
                layer: compare_layer(item.live.get(layer, []), shadow.get(layer, []))
                for layer in sorted(set(item.live) | set(shadow))
            },
        }  # fmt: skip
        self.log.append(record)
        self.compared += 1
        self.events.shadow_compared(record)

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every queued query is compared (tests, replays); False when the time ran out."""
        deadline = time.monotonic() + timeout_s
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        self._active = False
        try:
            self.queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)


class PinnedVersion:
    """``index`` read as if ``version`` were live: what the shadow engine searches. Everything else is the
    index's own."""

    def __init__(self, index: CatalogIndex, version: str):
        self.index = index
        self.version = version

    def live_version(self) -> str:
        return self.version

    def live_model_id(self) -> str:
        return self.index.version_info(self.version).model_id

    def search(self, vector: Any, k: int, filters: Any = None, num_candidates: int | None = None,
               version: str | None = None) -> Any:  # fmt: skip
        return self.index.search(vector, k, filters, num_candidates, version=version or self.version)

    def get(self, product_id: str, version: str | None = None) -> Any:
        return self.index.get(product_id, version=version or self.version)

    def vectors(self, product_ids: Any, version: str | None = None) -> Any:
        return self.index.vectors(product_ids, version=version or self.version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)


def version_engine(settings: Settings, encoder: Any, index: CatalogIndex, version: str) -> SearchEngine:
    """An engine answering from ``version`` with ``encoder`` (which must have made its vectors): local query
    generation (no LLM calls are spent on comparisons), no look cache, no vocabulary precompute."""
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine

    settings = settings.model_copy(update={"look_cache_ttl_s": 0, "text_vocab_precompute": "off"})
    engine = SearchEngine(settings, encoder, PinnedVersion(index, version), MemoryCache())  # type: ignore[arg-type]
    engine.query_generator = engine.local_query_generator
    engine.check_ready()  # NotReady when the encoder is not the version's model
    return engine


def open_shadow_mirror(settings: Settings, index: CatalogIndex, events: ShadowEvents | None = None,
                       encoder: Any = None) -> ShadowMirror | None:  # fmt: skip
    """The service's mirror when ``shadow_share`` > 0, the index has a shadow version and the shadow
    model loads and made that version's vectors; else None, with a log line saying why (live is served
    as ever). ``encoder``: the shadow model already loaded (tests, replays)."""
    if settings.shadow_share <= 0:
        return None
    version = index.shadow_version()
    if version is None:
        log.info("shadow mirroring configured (share %.3f) but the index has no shadow version", settings.shadow_share)
        return None
    try:
        if encoder is None:
            from embeddings import load_encoder

            if not settings.shadow_clip_weights:
                raise ValueError("LOOKSYNC_SHADOW_CLIP_WEIGHTS is not set")
            encoder = load_encoder(settings.shadow_clip_model or settings.clip_model, settings.shadow_clip_weights,
                                   device=settings.device)  # fmt: skip
        engine = version_engine(settings, encoder, index, version)
    except Exception as exc:  # noqa: BLE001 - no mirroring is the degraded mode; live must still start
        log.warning("shadow mirroring off for %s: %s", version, exc)
        return None
    log.info("mirroring %.1f%% of queries to shadow version %s", settings.shadow_share * 100, version)
    return ShadowMirror(engine, index, version, settings.resolved_shadow_log_dir, settings.shadow_share,
                        settings.shadow_queue_size, events)  # fmt: skip
