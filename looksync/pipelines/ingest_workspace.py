"""The ingest run's workspace and report: what one feed's stages hand each other, and what they tell.

Owns ``IngestReport`` (the counts, outcomes, timings and notes of one feed's run), the run ids and
directories, ``Workspace`` (``<data_dir>/runs/<run_id>/<feed key>/``: products as JSON Lines, JSON
files, ``state.json``), the helpers every stage shares (stage timings, quarantining a product after
parsing, merging counts), the ``OUTCOMES`` and ``STAGES`` names, and the ingest logger.
The stages themselves live in ``ingest_parse``, ``ingest_detect``, ``ingest_images``,
``ingest_standardise`` and ``ingest_apply``; ``looksync.pipelines.ingest`` runs them in one process.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from looksync.catalog.quarantine import QuarantineRecord, QuarantineWriter, Reason
from looksync.catalog.schema import Product
from looksync.pipelines.feed_ref import FeedRef
from looksync.settings import Settings

# every ingest stage logs under the name it had when the stages were one module: log settings, tests
# (caplog) and dashboards select on it
log = logging.getLogger("looksync.pipelines.ingest")

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


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out
