"""read_feed on hand-written feeds of each vendor: canonical products, and every bad row quarantined."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from looksync.catalog.quarantine import QuarantineWriter, Reason, read_quarantine
from looksync.catalog.schema import make_product_id
from looksync.catalog.vendors import FeedError, read_feed

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

EXPECTED = {
    "desi_threads": dict(
        category="shirt", layer="topwear", gender="men", colours=["navy"], pattern="solid", market="IN", currency="INR",
        price=1299.0, sizes=["S", "M", "L"], in_stock=True, material="Cotton",
        updated_at=datetime(2024, 5, 1, 10, 20, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
    "northwind_apparel": dict(
        category="blouse", layer="topwear", gender="women", colours=["navy"], pattern="striped", market="US",
        currency="USD", price=29.99, sizes=["S", "M"], in_stock=True, image_urls=["https://cdn.example/NW-0001.png"],
        updated_at=datetime(2024, 5, 1, 10, 20, tzinfo=UTC),
    ),
    "sakura_mode": dict(
        category="jacket", layer="outer_topwear", gender="women", colours=["navy"], pattern="solid", market="JP",
        currency="JPY", price=4980.0, sizes=["S", "M", "L"], in_stock=True,
        image_urls=["https://img.sakura.example/SM0001.png", "https://img.sakura.example/SM0001-2.png"],
        updated_at=datetime(2024, 5, 1, 10, 20, tzinfo=timezone(timedelta(hours=9))),
    ),
}  # fmt: skip

OUT_OF_STOCK = {"desi_threads": "0", "northwind_apparel": False, "sakura_mode": "品切れ"}
UNKNOWN_CATEGORY = {"desi_threads": "Sarees", "northwind_apparel": "Candles", "sakura_mode": "着物"}


def parse(feed, tmp_path, rows) -> list:
    return list(read_feed(feed.config, feed.write(tmp_path, rows)))


def test_each_vendor_feed_parses_into_canonical_products(feed, tmp_path):
    rows = parse(feed, tmp_path, [feed.record()])
    assert len(rows) == 1 and rows[0].rejection is None
    product = rows[0].product
    for field, value in EXPECTED[feed.name].items():
        assert getattr(product, field) == value, field
    assert product.vendor == feed.name
    assert product.product_id == make_product_id(feed.name, product.vendor_sku)
    assert rows[0].row_ref == feed.row_ref(1)
    assert product.image_hash is None and product.model_id is None


def test_japanese_titles_survive_parsing(tmp_path, feeds):
    feed = feeds["sakura_mode"]
    product = parse(feed, tmp_path, [feed.record()])[0].product
    assert product.title == "紺屋 ネイビー無地テーラードジャケット"
    assert JAPANESE.search(product.title) and JAPANESE.search(product.brand)


def test_out_of_stock_is_read_in_each_vendors_way(feed, tmp_path):
    rows = parse(feed, tmp_path, [feed.record(sku="A1"), feed.record(sku="A2", stock=OUT_OF_STOCK[feed.name])])
    assert [r.product.in_stock for r in rows] == [True, False]


def test_vendor_terms_match_regardless_of_case_width_and_spacing(tmp_path, feeds):
    desi = feeds["desi_threads"]
    product = parse(desi, tmp_path, [desi.record(category="  t-SHIRTS ", colour="navy  blue", gender="MEN")])[0].product
    assert (product.category, product.colours, product.gender) == ("t_shirt", ["navy"], "men")
    sakura = feeds["sakura_mode"]
    product = parse(sakura, tmp_path, [sakura.record(category="ｼﾞｬｹｯﾄ", sizes="S, M ,L")])[0].product  # half-width kana
    assert product.category == "jacket" and product.sizes == ["S", "M", "L"]


def test_indian_grouped_prices_parse(tmp_path, feeds):
    desi = feeds["desi_threads"]
    rows = parse(desi, tmp_path, [desi.record(sku="A1", price="1,29,999.00"), desi.record(sku="A2", price="₹ 499")])
    assert [r.product.price for r in rows] == [129999.0, 499.0]


def faulty_row(feed, kind: str):
    """A row with one planted fault; its SKU is B1 unless the fault is about the SKU."""
    match kind:
        case "missing_sku":
            return feed.record(sku="  ")
        case "duplicate_sku":
            return feed.record(sku="A1", title="Second copy")
        case "bad_price":
            return feed.record(sku="B1", price="N/A")
        case "negative_price":
            return feed.record(sku="B1", price="-499")
        case "unknown_category":
            return feed.record(sku="B1", category=UNKNOWN_CATEGORY[feed.name])
        case "bad_encoding":
            title = "紺屋 限定ジャケット" if feed.name == "sakura_mode" else "Café Linen Shirt"
            return feed.badly_encoded(feed.record(sku="B1", title=title))
        case "truncated_row":
            return feed.truncated(feed.record(sku="B1"))
    raise AssertionError(kind)


PARSE_FAULTS = {
    "missing_sku": Reason.MISSING_SKU,
    "duplicate_sku": Reason.DUPLICATE_SKU,
    "bad_price": Reason.BAD_PRICE,
    "negative_price": Reason.NEGATIVE_PRICE,
    "unknown_category": Reason.UNKNOWN_CATEGORY,
    "bad_encoding": Reason.BAD_ENCODING,
    "truncated_row": Reason.TRUNCATED_ROW,
}


@pytest.mark.parametrize("kind", PARSE_FAULTS)
def test_each_fault_is_quarantined_with_its_reason_and_later_rows_survive(feed, kind, tmp_path):
    rows = parse(feed, tmp_path, [feed.record(sku="A1"), faulty_row(feed, kind), feed.record(sku="A2")])
    assert [r.product.vendor_sku for r in rows if r.product] == ["A1", "A2"]
    assert rows[0].product.title != "Second copy"  # the first occurrence of a SKU is the one kept
    rejected = [r for r in rows if r.rejection]
    assert len(rejected) == 1
    row = rejected[0]
    assert (row.row_ref, row.rejection.row_ref) == (feed.row_ref(2), feed.row_ref(2))
    assert row.rejection.reason == PARSE_FAULTS[kind]
    assert row.rejection.vendor == feed.name and len(row.rejection.message) > 10
    assert row.product is None and row.raw is not None


def test_rejection_messages_name_the_offending_value(tmp_path, feeds):
    desi = feeds["desi_threads"]
    rows = parse(desi, tmp_path, [desi.record(sku="B1", price="12.99.00"), desi.record(sku="B2", category="Sarees")])
    assert "12.99.00" in rows[0].rejection.message and "Selling Price (INR)" in rows[0].rejection.message
    assert "Sarees" in rows[1].rejection.message and rows[1].rejection.vendor_sku == "B2"


INVALID_FIELDS = [
    ("desi_threads", {"gender": "Kids"}, "gender"),
    ("desi_threads", {"stock": "lots"}, "stock"),
    ("desi_threads", {"updated": "yesterday"}, "updated_at"),
    ("desi_threads", {"title": ""}, "title"),
    ("desi_threads", {"colour": "Mauve"}, "colour"),
    ("desi_threads", {"image": ""}, "image_urls"),
    ("desi_threads", {"image": "ftp://img.example/x.png"}, "image_urls"),  # url_scheme: see test_nasty_feeds
    ("northwind_apparel", {"currency": "EUR"}, "currency"),
    ("northwind_apparel", {"stock": "maybe"}, "stock"),
    ("northwind_apparel", {"path": "Blouses"}, "gender"),
    ("sakura_mode", {"stock": "たくさん"}, "stock"),
    ("sakura_mode", {"pattern": "花柄"}, "pattern"),
    ("sakura_mode", {"price": "4980.5"}, "kakaku"),
]


@pytest.mark.parametrize("vendor, values, field", INVALID_FIELDS)
def test_other_schema_violations_name_the_field(vendor, values, field, tmp_path, feeds):
    feed = feeds[vendor]
    rejection = parse(feed, tmp_path, [feed.record(sku="B1", **values)])[0].rejection
    assert rejection is not None
    expected = Reason.BAD_PRICE if field == "kakaku" else Reason.URL_SCHEME if "ftp:" in str(values) else Reason.INVALID_FIELD
    assert rejection.reason == expected
    assert field in rejection.message


def test_rows_that_cannot_be_split_are_reported_not_raised(tmp_path, feeds):
    desi, northwind, sakura = feeds["desi_threads"], feeds["northwind_apparel"], feeds["sakura_mode"]
    extra = desi.render(desi.record(sku="B1")).rstrip("\n") + ",surplus\n"
    open_quote = b'B2,"never closed\n'
    rows = parse(desi, tmp_path, [desi.record(sku="A1"), extra.encode(), open_quote])
    assert [r.rejection.reason for r in rows[1:]] == [Reason.INVALID_FIELD, Reason.TRUNCATED_ROW]
    rows = parse(northwind, tmp_path, [b"[1, 2]\n", b"\n", northwind.record(sku="A1")])
    assert rows[0].rejection.reason == Reason.INVALID_FIELD and rows[1].row_ref == "line 3"
    # an XML record cut off at the very end of the file (no end tags at all)
    path = tmp_path / "cut.xml"
    path.write_bytes(
        (sakura.head() + sakura.render(sakura.record(sku="A1"))).encode() + sakura.truncated(sakura.record(sku="B1"))
    )
    rows = list(read_feed(sakura.config, path))
    assert rows[0].product and rows[1].rejection.reason == Reason.TRUNCATED_ROW


def test_bad_encoding_rejections_can_be_written_to_the_quarantine(feed, tmp_path):
    rows = parse(feed, tmp_path, [faulty_row(feed, "bad_encoding")])
    writer = QuarantineWriter(tmp_path / "quarantine", "run-1")
    writer.add(rows[0].rejection)
    [stored] = read_quarantine(writer.path)
    assert stored["reason"] == "bad_encoding" and stored["vendor_sku"] == "B1"
    assert "\\x" in json.dumps(stored["raw"])  # the undecodable bytes are shown, not dropped


def test_a_missing_feed_file_raises_naming_the_file(tmp_path, feeds):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FeedError, match="nowhere.csv"):
        read_feed(feeds["desi_threads"].config, missing)


def test_a_csv_header_without_configured_columns_raises(tmp_path, feeds):
    path = tmp_path / "desi.csv"
    path.write_text("Item Code,Product Name\nDT1,Shirt\n", encoding="utf-8")
    with pytest.raises(FeedError, match="Selling Price"):
        list(read_feed(feeds["desi_threads"].config, path))


def test_pathological_rows_are_quarantined_not_raised(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    deep = ("[" * 100_000 + "]" * 100_000 + "\n").encode()
    odd_media = northwind.record(sku="B2")
    odd_media["media"] = [None, "x", {"type": "image", "url": None}]
    odd_types = northwind.record(sku="B3")
    odd_types["info"] = "just a string"
    rows = parse(northwind, tmp_path, [deep, odd_media, odd_types, northwind.record(sku="A1")])
    assert [r.rejection.reason for r in rows[:3]] == [Reason.INVALID_FIELD] * 3
    assert "image_urls" in rows[1].rejection.message and "title" in rows[2].rejection.message
    assert rows[3].product.vendor_sku == "A1"
