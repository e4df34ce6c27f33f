"""Row keys: a feed row that is the one a stored product was made from is not mapped again, and what
changes (prices, stock, images, the model, the mapping) is still found."""

from __future__ import annotations

import pytest

from looksync.catalog.stores import ProductStore
from looksync.catalog.vendors import feed as feed_module
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.index.factory import open_index
from looksync.pipelines.ingest import ingest_feed
from tests.pipelines.conftest import CountingEncoder, reprice_two, rewrite_csv

VENDOR = "desi_threads"


@pytest.fixture
def mapped(monkeypatch):
    """Counts the rows mapped into products (``record_to_product`` calls) from here on."""
    calls = {"rows": 0}
    real = feed_module.record_to_product

    def counting(*args, **kwargs):
        calls["rows"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(feed_module, "record_to_product", counting)
    return calls


def test_rows_as_stored_are_not_mapped_and_changes_still_apply(settings, clean_sample, counting_encoder, mapped, tmp_path):
    index = open_index(settings)
    feed = clean_sample.manifest.feeds[VENDOR]
    first = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-1", index=index)
    n = first.outcomes["new"]
    assert mapped["rows"] == n

    again = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-2", index=index)
    assert mapped["rows"] == n, "rows the store was made from were mapped again"
    assert again.outcomes["unchanged"] == n and again.embedded == 0 and again.products_stored == 0
    assert again.category_sources == first.category_sources and again.embeddings_reused == n

    priced = tmp_path / "priced.csv"
    rewrite_csv(feed, priced, reprice_two)
    before = {p.vendor_sku: p for p in ProductStore(settings.data_dir).by_vendor(VENDOR).values()}
    report = ingest_feed(settings, VENDOR, priced, counting_encoder, "run-3", index=index)
    assert mapped["rows"] == n  # the two changed rows are read for their offer only (their offer keys)
    assert report.embedded == 0 and counting_encoder.images_embedded == n
    assert report.outcomes["metadata_only"] == 2 and report.outcomes["unchanged"] == n - 2
    changed = before["DT100001"]
    stored = ProductStore(settings.data_dir).get_many([changed.product_id])[changed.product_id]
    assert stored.price == 9999.0 and stored.in_stock != changed.in_stock
    assert index.get(changed.product_id)["price"] == 9999.0

    # the original feed again: the two rows change back (their old row keys are gone with their old records)
    back = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-4", index=index)
    assert back.outcomes["metadata_only"] == 2 and back.outcomes["unchanged"] == n - 2 and mapped["rows"] == n
    assert index.get(changed.product_id)["price"] == changed.price


def test_a_vanished_row_and_a_duplicated_row_are_still_seen(settings, clean_sample, counting_encoder, mapped, tmp_path):
    index = open_index(settings)
    feed = clean_sample.manifest.feeds[VENDOR]
    n = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-1", index=index).outcomes["new"]
    gone = next(p for p in ProductStore(settings.data_dir).by_vendor(VENDOR).values() if p.vendor_sku == "DT100003")

    rows: list[dict] = []
    rewrite_csv(feed, tmp_path / "all.csv", lambda row: rows.append(row) or row)
    dropped = tmp_path / "dropped.csv"
    rewrite_csv(feed, dropped, lambda row: None if row["Item Code"] == "DT100003" else row)
    with (tmp_path / "dropped.csv").open("a", encoding="utf-8", newline="") as fh:  # the first row twice, verbatim
        import csv

        csv.DictWriter(fh, fieldnames=list(rows[0])).writerow(rows[0])
    report = ingest_feed(settings, VENDOR, dropped, counting_encoder, "run-2", index=index)
    assert report.outcomes["vanished"] == 1 and report.outcomes["unchanged"] == n - 1
    assert report.quarantined == {"duplicate_sku": 1}
    assert index.get(gone.product_id) is None and gone.product_id not in ProductStore(settings.data_dir).get_many([gone.product_id])


def test_another_model_or_other_settings_check_every_row_again(settings, clean_sample, counting_encoder, mapped):
    feed = clean_sample.manifest.feeds[VENDOR]
    n = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-1").outcomes["new"]

    class OtherModel(CountingEncoder):
        model_id = "other-model"

    other = OtherModel(counting_encoder._encoder)
    report = ingest_feed(settings, VENDOR, feed, other, "run-2")
    # found by key (not mapped), but the stored products hold no vector of this model: fetched and embedded
    assert mapped["rows"] == n and other.images_embedded == n and report.embedded == n
    assert sum(report.outcomes[k] for k in ("unchanged", "metadata_only", "image_changed")) == n
    report = ingest_feed(settings, VENDOR, feed, other, "run-2b")  # now the vectors are there
    assert report.outcomes["unchanged"] == n and report.embedded == 0 and mapped["rows"] == n

    stricter = settings.model_copy(update={"zeroshot_min_confidence": settings.zeroshot_min_confidence + 0.01})
    report = ingest_feed(stricter, VENDOR, feed, counting_encoder, "run-3")
    assert mapped["rows"] == 2 * n and report.embedded == 0  # the settings are part of every row key


def test_metadata_differs_on_every_compared_field_and_only_those():
    from datetime import UTC, datetime

    from looksync.pipelines.ingest import metadata_differs
    from tests.factories import make_product

    base = make_product(image_hash="h", model_id="m")
    changes = {"title": "Other", "description": "x", "brand": "Acme", "category": "jeans", "gender": "men",
               "colours": ["navy", "red"], "pattern": None, "material": "Wool", "sizes": ["S"], "price": 20.0,
               "in_stock": False, "image_urls": ["http://images.example/2.png"], "product_url": "", "category_source": "rule"}  # fmt: skip
    for field, value in changes.items():
        assert metadata_differs(base, base.model_copy(update={field: value})), field
    same = base.model_copy(update={"updated_at": datetime(2020, 1, 1, tzinfo=UTC), "image_hash": "other", "model_id": "x",
                                   "colours": list(base.colours)})  # fmt: skip
    assert not metadata_differs(base, same)


def _stored(settings, sku: str):
    return next(p for p in ProductStore(settings.data_dir).by_vendor(VENDOR).values() if p.vendor_sku == sku)


def test_a_reprice_is_read_for_its_offer_and_stores_what_mapping_the_row_would(settings, clean_sample, counting_encoder, mapped, tmp_path):
    feed = clean_sample.manifest.feeds[VENDOR]
    priced = tmp_path / "priced.csv"
    rewrite_csv(feed, priced, reprice_two)
    full = settings.model_copy(update={"data_dir": tmp_path / "full", "ingest_row_keys": False})  # every row mapped
    for s in (settings, full):
        n = ingest_feed(s, VENDOR, feed, counting_encoder, "run-1", index=open_index(s)).outcomes["new"]
        report = ingest_feed(s, VENDOR, priced, counting_encoder, "run-2", index=open_index(s))
        assert report.outcomes["metadata_only"] == 2 and report.embedded == 0 and report.products_stored == 2
    assert mapped["rows"] == n + n + n  # the offer path mapped nothing on its second run; the full path all
    for sku in ("DT100001", "DT100004"):
        assert _stored(settings, sku) == _stored(full, sku)
        assert _stored(settings, sku).price == 9999.0
        assert open_index(settings).get(_stored(settings, sku).product_id)["in_stock"] == _stored(full, sku).in_stock
    again = ingest_feed(settings, VENDOR, priced, counting_encoder, "run-3", index=open_index(settings))
    assert again.outcomes["unchanged"] == n and again.products_stored == 0  # the new rows' keys were recorded


def test_a_bad_offer_is_quarantined_and_a_row_changed_elsewhere_is_mapped(settings, clean_sample, counting_encoder, mapped, tmp_path):
    from looksync.catalog.quarantine import read_quarantine

    index = open_index(settings)
    feed = clean_sample.manifest.feeds[VENDOR]
    n = ingest_feed(settings, VENDOR, feed, counting_encoder, "run-1", index=index).outcomes["new"]
    before = _stored(settings, "DT100001")

    def damage(row: dict) -> dict:
        if row["Item Code"] == "DT100001":
            row["Selling Price (INR)"] = "12,99.0.0"  # unreadable: the row is quarantined, the product kept
        if row["Item Code"] == "DT100004":
            row["Product Name"] = row["Product Name"] + " Edition"  # a change outside the offer: mapped again
        return row

    damaged = tmp_path / "damaged.csv"
    rewrite_csv(feed, damaged, damage)
    report = ingest_feed(settings, VENDOR, damaged, counting_encoder, "run-2", index=index)
    assert report.quarantined == {"bad_price": 1} and report.outcomes["vanished"] == 0 and report.embedded == 0
    assert report.outcomes["metadata_only"] == 1 and report.outcomes["unchanged"] == n - 2
    assert mapped["rows"] == n + 1  # only the retitled row
    (record,) = read_quarantine(report.quarantine_path)
    expected = next(r.rejection for r in read_feed(load_vendor_config(VENDOR), damaged) if r.rejection is not None)
    assert (record["reason"], record["message"], record["row_ref"]) == ("bad_price", expected.message, expected.row_ref)
    assert _stored(settings, "DT100001") == before and index.get(before.product_id)["price"] == before.price
    assert _stored(settings, "DT100004").title.endswith(" Edition")
