"""Row keys on read: a row read byte for byte as before, under the same mapping, has the same key; a key
in ``known`` skips the mapping (unless the SKU was kept already); any change of row or mapping is a new key."""

from __future__ import annotations

import shutil

from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.catalog.vendors.fingerprint import mapping_fingerprint


def keyed(feed, path, known=None, config=None):
    config = config or feed.config
    return list(read_feed(config, path, fingerprint=mapping_fingerprint(config), known=known))


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
