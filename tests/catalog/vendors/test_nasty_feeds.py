"""Feeds as vendors really send them: damaged rows keep their SKU (so no live product is lost to an
unreadable row), and every quarantine names the row. Feeds are built here with the vendor factories."""

from __future__ import annotations

import json

import pytest

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import make_product_id
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.catalog.vendors.readers import salvage_json_value


def parse(feed, tmp_path, rows) -> list:
    return list(read_feed(feed.config, feed.write(tmp_path, rows)))


# -- the SKU of a damaged row is recovered, in every format ----------------------------------------


def test_a_json_line_cut_off_mid_record_keeps_its_sku(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    rows = parse(northwind, tmp_path, [northwind.record(sku="A1"), northwind.truncated(northwind.record(sku="B1"))])
    assert rows[1].rejection.reason == Reason.TRUNCATED_ROW
    assert rows[1].rejection.vendor_sku == "B1" and not rows[1].unattributed


def test_a_json_record_nested_too_deeply_keeps_its_sku(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    record = northwind.record(sku="B1")
    text = json.dumps(record)[:-1] + ', "extra": ' + "[" * 50_000 + "]" * 50_000 + "}\n"
    rows = parse(northwind, tmp_path, [text.encode(), northwind.record(sku="A1")])
    assert rows[0].rejection.reason == Reason.INVALID_FIELD and "nested too deeply" in rows[0].rejection.message
    assert rows[0].rejection.vendor_sku == "B1"
    assert rows[1].product.vendor_sku == "A1"


@pytest.mark.parametrize(
    "text, path, expected",
    [
        ('{"sku": "AB-1", "info": {"name": "x', "sku", "AB-1"),  # cut after the SKU
        ('{"info": {"sku": "NESTED"}, "sku": "TOP", "x": [', "sku", "TOP"),  # a nested key of the same name
        ('{"variants": [{"sku": "V1"}], "sku": "P1", "a": {', "sku", "P1"),
        ('{"ids": {"vendor": "AB\\"7"}, "cut', "ids.vendor", 'AB"7'),  # dotted path, escaped quote
        ('{"sku": 12345, "x": [', "sku", "12345"),  # a numeric SKU
        ('{"info": {"name": "a"}, "sku": "AB-', "sku", None),  # the SKU itself cut off: not guessed
        ('{"info": {"name": "a"}, "sku": 1234', "sku", None),  # a number at the very end may be cut
        ('{"sku": "", "x": [', "sku", None),
        ('{"title": "sku", "x": "sku"', "sku", None),  # the word as a value is not the key
        ("not json at all", "sku", None),
    ],
)
def test_salvage_reads_the_sku_field_and_never_guesses(text, path, expected):
    assert salvage_json_value(text, path) == expected


def test_a_csv_quote_never_closed_keeps_the_skus_of_the_rows_it_swallowed(tmp_path, feeds):
    desi = feeds["desi_threads"]
    plain = {"description": "Plain weave", "price": "1299.00"}  # rows with no quotes of their own
    broken = desi.render(desi.record(sku="B1", title="Aurora Kurta", **plain))
    broken = broken.replace(",Aurora Kurta,", ',"Aurora Kurta,')  # a quote opened and never closed
    later = [desi.record(sku="A2", **plain), desi.record(sku="A3", **plain)]
    rows = parse(desi, tmp_path, [desi.record(sku="A1"), broken.encode(), *later])
    assert len(rows) == 2  # the csv module reads the rest of the file into the open quote
    assert rows[0].product.vendor_sku == "A1"
    damaged = rows[1]
    assert damaged.rejection is not None and damaged.rejection.vendor_sku == "B1"
    assert {"A2", "A3"} <= set(damaged.swallowed_skus)  # not read, so not vanished


def test_an_xml_record_nested_too_deeply_keeps_its_sku(tmp_path, feeds):
    sakura = feeds["sakura_mode"]
    deep = "<a>" * 5000 + "</a>" * 5000
    text = sakura.render(sakura.record(sku="B1")).replace("</item>", f"<extra>{deep}</extra></item>")
    rows = parse(sakura, tmp_path, [text.encode(), sakura.record(sku="A1")])
    assert rows[0].rejection.vendor_sku == "B1" and rows[1].product.vendor_sku == "A1"


def test_a_row_without_any_recoverable_sku_is_marked_unattributed(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    rows = parse(northwind, tmp_path, [b'{"info": {"name": "Blouse", "bra\n', northwind.record(sku="A1")])
    assert rows[0].rejection is not None and rows[0].unattributed
    assert not rows[1].unattributed


# -- one identity per SKU ----------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["desi_threads", "northwind_apparel", "sakura_mode"])
def test_spellings_of_one_sku_are_one_product_and_duplicates_name_both_rows(tmp_path, feeds, vendor):
    feed = feeds[vendor]
    spellings = ["AB-1", " ab-1 ", "ＡＢ－１", "Ab-1\u200b", "ab-1\t"]
    rows = parse(feed, tmp_path, [feed.record(sku=s) for s in spellings] + [feed.record(sku="AB-2")])
    assert [r.product.vendor_sku for r in rows if r.product] == ["AB-1", "AB-2"]
    assert rows[0].product.product_id == make_product_id(vendor, "AB-1")  # upper-case SKUs keep their id
    duplicates = [r.rejection for r in rows[1:5]]
    assert all(d.reason == Reason.DUPLICATE_SKU and d.vendor_sku == "AB-1" for d in duplicates)
    assert feed.row_ref(1) in duplicates[0].message and feed.row_ref(2) in duplicates[0].message
    assert "'ab-1'" in duplicates[0].message or "' ab-1 '" in duplicates[0].message


def test_a_vendor_with_case_sensitive_skus_keeps_them_apart(tmp_path, feeds):
    desi = feeds["desi_threads"]
    source = desi.config.source.read_text(encoding="utf-8")
    config_path = tmp_path / "desi_cs.yaml"
    config_path.write_text(source + "\nsku_case_sensitive: true\n", encoding="utf-8")
    config = load_vendor_config(config_path)
    path = desi.write(tmp_path, [desi.record(sku="ab-1"), desi.record(sku="AB-1"), desi.record(sku=" ａｂ-1 ")])
    rows = list(read_feed(config, path))
    assert [r.product.vendor_sku for r in rows if r.product] == ["ab-1", "AB-1"]
    assert rows[2].rejection.reason == Reason.DUPLICATE_SKU  # width and spacing still do not count


def test_a_salvaged_sku_is_keyed_like_a_read_one(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    rows = parse(northwind, tmp_path, [northwind.truncated(northwind.record(sku=" nw-７ "))])
    assert rows[0].rejection.vendor_sku == "NW-7"
