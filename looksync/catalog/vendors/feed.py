"""``read_feed``: a vendor feed file -> one ``ParsedRow`` per row, a product or a quarantine record.

A bad row never raises: it becomes a ``QuarantineRecord`` with a reason and a message naming the
field and value. Only a problem with the file as a whole (missing, unknown format, CSV header without
the configured columns) raises ``FeedError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looksync.catalog.quarantine import QuarantineRecord, Reason
from looksync.catalog.schema import Product
from looksync.catalog.vendors.config import VendorConfig
from looksync.catalog.vendors.fingerprint import offer_key, offer_roots, row_key
from looksync.catalog.vendors.mapping import (
    RowRejected,
    get_path,
    offer_values,
    record_sku,
    record_to_product,
    with_offer,
)
from looksync.catalog.vendors.readers import FeedError, RawRecord, read_records

if TYPE_CHECKING:
    from looksync.catalog.clip_terms import ClipCategoryFallback

log = logging.getLogger(__name__)


@dataclass
class ParsedRow:
    """One feed row: exactly one of ``product`` / ``rejection`` / ``unchanged`` / ``offer_of`` is set
    (``unchanged`` only when ``read_feed`` was given ``known`` rows, ``offer_of`` only with ``offers``)."""

    row_ref: str
    raw: Any
    product: Product | None = None
    rejection: QuarantineRecord | None = None
    # SKUs of other rows this damaged row swallowed (see ``RawRecord.swallowed_skus``): not read, not vanished
    swallowed_skus: tuple[str, ...] = ()
    line: int | None = None  # the physical line the row starts on
    unreadable: bool = False  # the row itself could not be read (cut off, not JSON/XML, bad bytes, too deep)
    cleaned: dict[str, list[str]] = field(default_factory=dict)  # display field -> what cleaning removed
    # with a fingerprint: the row's key (``fingerprint.row_key``), on products and unchanged rows
    row_key: str | None = None
    # the product id of a stored product made from this very row (its key is in ``known``): not mapped again
    unchanged: str | None = None
    # with a fingerprint: the row's offer key (``fingerprint.offer_key``), on products and offer rows
    offer_key: str | None = None
    # the product id of a stored product made from this row but for its offer cells (its offer key is in
    # ``offers``): not mapped again; ``offer`` is the row's offer (``mapping.offer_values``)
    offer_of: str | None = None
    offer: dict[str, Any] | None = None

    @property
    def unattributed(self) -> bool:
        """A rejected row whose SKU could not be recovered: it may be any live product of the vendor."""
        return self.rejection is not None and not self.rejection.vendor_sku

    @property
    def doubtful(self) -> bool:
        """A rejected row that may stand for a product other than the SKU it names: an unreadable row
        (its SKU was salvaged from damaged text) or one without a SKU. Ingestion trusts such a row's
        SKU only when it names a live product (``looksync.pipelines.ingest.deletion_hold``)."""
        return self.rejection is not None and (self.unreadable or not self.rejection.vendor_sku)


def read_feed(
    config: VendorConfig,
    path: str | Path,
    category_fallback: ClipCategoryFallback | None = None,
    *,
    fingerprint: bytes | None = None,
    known: Mapping[str, tuple[str, str]] | None = None,
    offers: Mapping[str, tuple[str, str]] | None = None,
) -> Iterator[ParsedRow]:
    """Parse a feed file row by row. The first occurrence of a SKU is kept; later ones are quarantined
    as duplicates. Category terms the maps do not know go to ``category_fallback`` when given. Raises
    ``FeedError`` (at call time) only when the file itself is unusable.

    With ``fingerprint`` (``fingerprint.mapping_fingerprint``) each row read cleanly gets its
    ``row_key``; a row whose key is in ``known`` (row key -> (product id, SKU key) of the stored product
    made from that row) comes back as ``unchanged`` without being mapped, unless its SKU was already kept
    from an earlier row (then it is parsed, and quarantined as the duplicate it is). Rows mapped get their
    ``offer_key`` too; a row whose offer key is in ``offers`` (offer key -> (product id, SKU key), likewise)
    comes back as ``offer_of`` that product with only its offer read, or rejected for its offer."""
    records = read_records(config, Path(path))  # raises now for a missing file or unknown format
    return _parse_rows(config, records, category_fallback, fingerprint, known or {}, offers or {})


def _parse_rows(
    config: VendorConfig,
    records: Iterator[RawRecord],
    category_fallback: ClipCategoryFallback | None,
    fingerprint: bytes | None = None,
    known: Mapping[str, tuple[str, str]] | None = None,
    offers: Mapping[str, tuple[str, str]] | None = None,
) -> Iterator[ParsedRow]:
    kept_skus: dict[str, tuple[str, str]] = {}  # SKU key -> (row ref, SKU as written) of the row kept
    roots = offer_roots(config) if fingerprint is not None else None
    for record in records:
        key = row_key(fingerprint, record.digest) if fingerprint is not None and record.digest is not None else None
        hit = known.get(key) if known and key is not None else None
        if hit is not None and hit[1] not in kept_skus:
            kept_skus[hit[1]] = (record.row_ref, _written_sku(config, record))
            yield ParsedRow(row_ref=record.row_ref, raw=record.raw, line=record.line, row_key=key, unchanged=hit[0])
            continue
        offered = offer_key(fingerprint, roots, record.raw) if key is not None and roots is not None else None
        hit = offers.get(offered) if offers and offered is not None else None
        if hit is not None and hit[1] not in kept_skus:
            yield _offer_row(config, record, kept_skus, hit, key, offered)
            continue
        row = _parse_row(config, record, kept_skus, category_fallback)
        if row.product is not None:
            row.row_key, row.offer_key = key, offered
        yield row


def _offer_row(
    config: VendorConfig, record: RawRecord, kept_skus: dict[str, tuple[str, str]], hit: tuple[str, str], key: str, offered: str
) -> ParsedRow:
    """A row that is a stored product's row but for its offer: only the offer is read (and checked as
    ``_parse_row`` checks it); the SKU is kept as a mapped row's is."""
    try:
        offer = offer_values(config, record.raw)
    except RowRejected as exc:
        return _rejected(config, record, exc.reason, exc.message, hit[1])
    kept_skus[hit[1]] = (record.row_ref, _written_sku(config, record))
    return ParsedRow(row_ref=record.row_ref, raw=record.raw, line=record.line, row_key=key, offer_key=offered,
                     offer_of=hit[0], offer=offer)  # fmt: skip


def apply_offer(
    config: VendorConfig, row: ParsedRow, stored: dict[str, Any] | None, category_fallback: ClipCategoryFallback | None = None
) -> ParsedRow:
    """An ``offer_of`` row as a product: ``stored`` (the record of the product it names, as a JSON object:
    ``ProductStore.records``) with the row's offer, validated
    as a mapped row is (``offer_of`` stays set), or rejected as a mapped row would be; with no such
    product stored any more, the row mapped in full. Keys carry over to the product."""
    record = RawRecord(row.row_ref, row.raw, line=row.line)
    if stored is None:
        out = _parse_row(config, record, {}, category_fallback)
    else:
        try:
            product = with_offer(stored, row.offer or {})
        except RowRejected as exc:
            return _rejected(config, record, exc.reason, exc.message, stored.get("vendor_sku"))
        out = ParsedRow(row_ref=row.row_ref, raw=row.raw, line=row.line, product=product, offer_of=row.offer_of)
    if out.product is not None:
        out.row_key, out.offer_key = row.row_key, row.offer_key
    return out


def _written_sku(config: VendorConfig, record: RawRecord) -> str:
    value = get_path(record.raw, config.fields["sku"].path)
    return str(value) if isinstance(value, (str, int)) else ""


def _parse_row(
    config: VendorConfig,
    record: RawRecord,
    kept_skus: dict[str, tuple[str, str]],
    category_fallback: ClipCategoryFallback | None = None,
) -> ParsedRow:
    if record.problem is not None:
        reason, message = record.problem
        hint = config.sku_key(record.sku_hint) if record.sku_hint else None
        row = _rejected(config, record, reason, message, hint or None)
        row.swallowed_skus = tuple(dict.fromkeys(k for k in map(config.sku_key, record.swallowed_skus) if k))
        row.unreadable = True
        return row
    sku = None
    try:
        sku = record_sku(config, record.raw)
        if sku in kept_skus:
            first_ref, first_written = kept_skus[sku]
            written = _written_sku(config, record)
            same = (
                ""
                if written == first_written
                else f" ({written!r} and {first_written!r} are one SKU once case, width and spacing are ignored)"
            )
            raise RowRejected(
                Reason.DUPLICATE_SKU,
                f"sku {written!r} at {record.row_ref} duplicates the row at {first_ref}{same}; the first row is kept",
            )
        cleaned: dict[str, list[str]] = {}
        product = record_to_product(config, record.raw, sku, cleaned, category_fallback)
    except RowRejected as exc:
        return _rejected(config, record, exc.reason, exc.message, sku)
    except Exception as exc:  # a row must never stop the feed: quarantine it, and log for whoever fixes the parser
        log.exception("unexpected error parsing a row", extra={"vendor": config.name, "row_ref": record.row_ref})
        return _rejected(
            config, record, Reason.INVALID_FIELD, f"row could not be read: {type(exc).__name__}: {exc}", sku
        )
    kept_skus[sku] = (record.row_ref, _written_sku(config, record))
    return ParsedRow(row_ref=record.row_ref, raw=record.raw, product=product, line=record.line, cleaned=cleaned)


def _rejected(config: VendorConfig, record: RawRecord, reason: Reason, message: str, sku: str | None) -> ParsedRow:
    rejection = QuarantineRecord(
        vendor=config.name,
        reason=reason,
        message=message,
        row_ref=record.row_ref,
        raw=record.raw,
        vendor_sku=sku,
        line=record.line,
    )
    return ParsedRow(row_ref=record.row_ref, raw=record.raw, rejection=rejection, line=record.line)


__all__ = ["FeedError", "ParsedRow", "apply_offer", "read_feed"]
