"""Row keys on read: a row read byte for byte as before, under the same mapping, has the same key; a key
in ``known`` skips the mapping (unless the SKU was kept already); any change of row or mapping is a new key."""

from __future__ import annotations

import shutil

from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.catalog.vendors.fingerprint import mapping_fingerprint


def keyed(feed, path, known=None, config=None, offers=None):
    config = config or feed.config
    return list(read_feed(config, path, fingerprint=mapping_fingerprint(config), known=known, offers=offers))


NEW_PRICE = {"desi_threads": "1,399.00", "northwind_apparel": "31.99", "sakura_mode": "5980"}


def test_one_row_one_key_and_a_change_anywhere_a_new_one(feed, tmp_path):
    first = keyed(feed, feed.write(tmp_path, [feed.record(), feed.record(sku="ZZ0009")]))
    again = keyed(feed, feed.write(tmp_path, [feed.record(), feed.record(sku="ZZ0009")]))
    assert all(r.product is not None and r.row_key for r in first)
    assert [r.row_key for r in first] == [r.row_key for r in again] and first[0].row_key != first[1].row_key
    changed = keyed(feed, feed.write(tmp_path, [feed.record(price=NEW_PRICE[feed.name])]))
    assert changed[0].product.price != first[0].product.price and changed[0].row_key != first[0].row_key
    # the key is the row's, not its place in the file
    assert keyed(feed, feed.write(tmp_path, [feed.record()]))[0].row_key == first[0].row_key


def test_a_known_row_is_not_mapped_and_its_duplicate_is_quarantined(feed, tmp_path):
    path = feed.write(tmp_path, [feed.record()])
    row = keyed(feed, path)[0]
    known = {row.row_key: (row.product.product_id, row.product.vendor_sku)}
    rows = keyed(feed, feed.write(tmp_path, [feed.record(), feed.record()]), known)
    assert rows[0].unchanged == row.product.product_id and rows[0].product is None and rows[0].rejection is None
    assert rows[1].rejection is not None and rows[1].rejection.reason == "duplicate_sku"


def test_the_mapping_is_part_of_the_key(tmp_path):
    config = load_vendor_config("desi_threads")
    edited = tmp_path / "desi_threads.yaml"
    shutil.copy(config.source, edited)
    with edited.open("a", encoding="utf-8") as fh:
        fh.write("\n# an edit: any edit of the config maps every row again\n")
    assert mapping_fingerprint(load_vendor_config(edited)) != mapping_fingerprint(config)
    assert mapping_fingerprint(config, b"settings") != mapping_fingerprint(config)
    assert mapping_fingerprint(load_vendor_config("desi_threads")) == mapping_fingerprint(config)


NEW_STOCK = {"desi_threads": "0", "northwind_apparel": False, "sakura_mode": "在庫なし"}
NEW_UPDATED = {"desi_threads": "02-06-2024 09:00:00", "northwind_apparel": "2024-06-02T09:00:00Z", "sakura_mode": "2024/06/02 09:00"}


def offered(feed, path, stored_row):
    """``read_feed`` with ``stored_row``'s offer key known (as a stored product made from it carries it)."""
    product = stored_row.product
    return keyed(feed, path, offers={stored_row.offer_key: (product.product_id, product.vendor_sku)})


def test_the_offer_key_ignores_the_offer_cells_only(feed, tmp_path):
    first = keyed(feed, feed.write(tmp_path, [feed.record()]))[0]
    assert first.offer_key and first.offer_key != first.row_key
    repriced = feed.record(price=NEW_PRICE[feed.name], stock=NEW_STOCK[feed.name], updated=NEW_UPDATED[feed.name])
    again = keyed(feed, feed.write(tmp_path, [repriced]))[0]
    assert again.offer_key == first.offer_key and again.row_key != first.row_key
    retitled = keyed(feed, feed.write(tmp_path, [feed.record(title="Another Title Shirt")]))[0]
    assert retitled.offer_key != first.offer_key


def test_a_row_known_by_its_offer_key_is_read_for_its_offer_only(feed, tmp_path, monkeypatch):
    from looksync.catalog.vendors import feed as feed_module

    stored = keyed(feed, feed.write(tmp_path, [feed.record()]))[0]
    repriced = feed.record(price=NEW_PRICE[feed.name], stock=NEW_STOCK[feed.name], updated=NEW_UPDATED[feed.name])
    path = feed.write(tmp_path, [repriced, repriced])
    mapped = keyed(feed, path)[0]  # what mapping the whole row makes of it
    full = mapped.product
    monkeypatch.setattr(feed_module, "record_to_product", None)  # an offer row must not be mapped
    rows = offered(feed, path, stored)
    assert rows[0].offer_of == stored.product.product_id and rows[0].product is None and rows[0].rejection is None
    assert rows[0].offer_key == stored.offer_key and rows[0].row_key == mapped.row_key
    assert rows[1].rejection is not None and rows[1].rejection.reason == "duplicate_sku"  # its SKU was kept
    made = feed_module.apply_offer(feed.config, rows[0], stored.product.model_dump(mode="json")).product
    assert made.model_dump() == full.model_dump()  # the stored product with the new offer is the row's product
    assert (made.price, made.in_stock) == (full.price, False)


def test_an_offer_row_is_checked_as_a_mapped_row_is(feeds, tmp_path):
    from looksync.catalog.vendors.feed import apply_offer

    feed = feeds["desi_threads"]
    stored = keyed(feed, feed.write(tmp_path, [feed.record()]))[0]
    for price, reason in (("abc", "bad_price"), ("-1,299.00", "negative_price"), ("0.00", "price_out_of_range")):
        path = feed.write(tmp_path, [feed.record(price=price)])
        rows = offered(feed, path, stored)
        expected = keyed(feed, path)[0].rejection  # the full mapping's verdict on the same row
        assert rows[0].offer_of is None and rows[0].rejection is not None
        assert (rows[0].rejection.reason, rows[0].rejection.message) == (reason, expected.message) == (expected.reason, expected.message)
        assert rows[0].rejection.vendor_sku == expected.vendor_sku and rows[0].rejection.row_ref == expected.row_ref
    northwind = feeds["northwind_apparel"]  # a currency that is not the market's fails the product's own check
    stored = keyed(northwind, northwind.write(tmp_path, [northwind.record()]))[0]
    path = northwind.write(tmp_path, [northwind.record(currency="EUR")])
    row = offered(northwind, path, stored)[0]
    made = apply_offer(northwind.config, row, stored.product.model_dump(mode="json"))
    expected = keyed(northwind, path)[0].rejection
    assert made.rejection is not None and (made.rejection.reason, made.rejection.message) == (expected.reason, expected.message)
