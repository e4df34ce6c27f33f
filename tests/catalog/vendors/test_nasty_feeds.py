"""Feeds as vendors really send them: damaged rows keep their SKU (so no live product is lost to an
unreadable row), and every quarantine names the row. Feeds are built here with the vendor factories."""

from __future__ import annotations

import json

import pytest

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import make_product_id
from looksync.catalog.vendors import PriceProblem, load_vendor_config, parse_price, read_feed
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


# -- prices: one parser, text and JSON numbers alike ---------------------------------------------------

PRICES_READ = [
    ("desi_threads", "₹1,299.00", 1299.0),
    ("desi_threads", "Rs. 1,29,999.00", 129999.0),  # lakh grouping
    ("desi_threads", "INR 499", 499.0),
    ("desi_threads", "１，２９９．００", 1299.0),  # full-width digits and marks
    ("desi_threads", "1 299.00", 1299.0),  # a space groups digits
    ("desi_threads", "1\u00a0299.50", 1299.5),  # a no-break space too
    ("northwind_apparel", "$29.99", 29.99),
    ("northwind_apparel", "29.99 USD", 29.99),
    ("northwind_apparel", 29.99, 29.99),
    ("northwind_apparel", 1200, 1200.0),
    ("sakura_mode", "１２００", 1200.0),
    ("sakura_mode", "￥4,980", 4980.0),
    ("sakura_mode", "4980円", 4980.0),
]


@pytest.mark.parametrize("vendor, written, expected", PRICES_READ)
def test_real_price_spellings_are_read(feeds, vendor, written, expected):
    config = feeds[vendor].config
    assert parse_price(written, config.price_format, config.market) == expected


PRICES_REFUSED = [
    ("desi_threads", "-0", Reason.NEGATIVE_PRICE, "negative"),
    ("desi_threads", "-0.00", Reason.NEGATIVE_PRICE, "negative"),
    ("northwind_apparel", -0.0, Reason.NEGATIVE_PRICE, "negative"),  # a JSON -0
    ("northwind_apparel", -5, Reason.NEGATIVE_PRICE, "negative"),
    ("desi_threads", "−499", Reason.NEGATIVE_PRICE, "negative"),  # the minus sign, not a hyphen
    ("desi_threads", "(499.00)", Reason.NEGATIVE_PRICE, "negative"),  # accounting style
    ("desi_threads", "0.00", Reason.PRICE_OUT_OF_RANGE, "zero"),
    ("northwind_apparel", 0, Reason.PRICE_OUT_OF_RANGE, "zero"),
    ("northwind_apparel", 1e30, Reason.PRICE_OUT_OF_RANGE, "above"),  # the JSON number ...
    ("northwind_apparel", "1e30", Reason.BAD_PRICE, "scientific"),  # ... and the text: both refused
    ("northwind_apparel", 10**400, Reason.PRICE_OUT_OF_RANGE, "above"),
    ("northwind_apparel", "2,000,000.00", Reason.PRICE_OUT_OF_RANGE, "above"),
    ("northwind_apparel", float("inf"), Reason.BAD_PRICE, "finite"),
    ("northwind_apparel", float("nan"), Reason.BAD_PRICE, "finite"),
    ("northwind_apparel", 29.999, Reason.BAD_PRICE, "decimal digit"),
    ("northwind_apparel", "1.299,00", Reason.BAD_PRICE, "decimal mark"),  # not this vendor's convention
    ("northwind_apparel", "12,99", Reason.BAD_PRICE, "not thousands"),
    ("northwind_apparel", "€29.99", Reason.BAD_PRICE, "another currency"),
    ("desi_threads", "$29.99", Reason.BAD_PRICE, "another currency"),
    ("sakura_mode", "4980.5", Reason.BAD_PRICE, "decimal digit"),
    ("desi_threads", "N/A", Reason.BAD_PRICE, "cannot read"),
    ("northwind_apparel", True, Reason.BAD_PRICE, "not a price"),
    ("northwind_apparel", {"amount": 5}, Reason.BAD_PRICE, "not a price"),
]


@pytest.mark.parametrize("vendor, written, reason, words", PRICES_REFUSED)
def test_prices_that_cannot_be_stored_are_refused_with_their_reason(feeds, vendor, written, reason, words):
    config = feeds[vendor].config
    with pytest.raises(PriceProblem) as caught:
        parse_price(written, config.price_format, config.market)
    assert caught.value.reason == reason and words in str(caught.value)
    assert "object at 0x" not in str(caught.value)


def test_a_vendor_writing_comma_decimals_is_read_by_its_mapping(tmp_path, feeds):
    desi = feeds["desi_threads"]
    source = desi.config.source.read_text(encoding="utf-8").replace(
        'price_format: {thousands: ",", decimal: ".", decimals: 2,',
        'price_format: {thousands: ".", decimal: ",", decimals: 2,',
    )
    config_path = tmp_path / "desi_eu.yaml"
    config_path.write_text(source, encoding="utf-8")
    config = load_vendor_config(config_path)
    assert [parse_price(p, config.price_format, config.market) for p in ("1.299,00", "1 299,00", "₹ 12,5")] == [
        1299.0, 1299.0, 12.5
    ]  # fmt: skip
    with pytest.raises(PriceProblem, match="decimal mark"):
        parse_price("1,299.00", config.price_format, config.market)
    with pytest.raises(PriceProblem, match="decimal digit"):
        parse_price("1,299", config.price_format, config.market)  # 1.299 rupees or 1299? never guessed


def test_json_numbers_and_text_go_through_the_same_checks_in_a_feed(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    rows = parse(northwind, tmp_path, [
        northwind.record(sku="A1", price=-0.0), northwind.record(sku="A2", price="-0"),
        northwind.record(sku="A3", price=1e30), northwind.record(sku="A4", price="1e30"),
        northwind.record(sku="A5", price=49.5), northwind.record(sku="A6", price="$49.50"),
    ])  # fmt: skip
    reasons = [r.rejection.reason if r.rejection else r.product.price for r in rows]
    assert reasons == [
        Reason.NEGATIVE_PRICE,
        Reason.NEGATIVE_PRICE,
        Reason.PRICE_OUT_OF_RANGE,
        Reason.BAD_PRICE,
        49.5,
        49.5,
    ]
    assert all("pricing.amount" in r.rejection.message for r in rows[:4])


# -- categories: matched on a normalised key, synonyms as data -------------------------------------------

T_SHIRT_SPELLINGS = [
    "tee",
    "Tees",
    "T-shirt",
    "t shirt",
    "TSHIRT",
    "T-Shirts",
    "Tシャツ",
    "Ｔシャツ",
    "T・シャツ",
    "टी-शर्ट",
]


@pytest.mark.parametrize("vendor", ["desi_threads", "northwind_apparel", "sakura_mode"])
def test_spellings_of_a_category_map_for_every_vendor(tmp_path, feeds, vendor):
    feed = feeds[vendor]
    rows = parse(feed, tmp_path, [feed.record(sku=f"T{i}", category=t) for i, t in enumerate(T_SHIRT_SPELLINGS)])
    assert [r.product.category if r.product else r.rejection.message for r in rows] == ["t_shirt"] * len(rows)


@pytest.mark.parametrize(
    "term, expected, source",
    [
        ("Shirts", "shirt", "vendor"),
        ("SHIRT", "shirt", "vendor_key"),  # singular, upper case
        ("Bomber-Jackets", "jacket", "vendor_key"),
        ("Trainers", "sneakers", "synonym"),  # British English
        ("Flip-Flops", "sandals", "synonym"),
        ("ジーンズ", "jeans", "synonym"),  # Japanese
        ("घड़ी", "watch", "synonym"),  # Hindi
        ("chappal", "sandals", "synonym"),  # Hinglish
        ("Dresses", "dress", "vendor"),
        ("dress", "dress", "vendor_key"),
        ("Men's Bomber Jackets", "jacket", "synonym"),  # the audience word dropped
        ("Hoodies", "sweater", "synonym"),  # hoodie / hoodies
        ("Sarees", None, None),
    ],
)
def test_how_a_category_term_was_matched_is_known(feeds, term, expected, source):
    assert feeds["desi_threads"].config.match("category", term) == ((expected, source) if expected else None)


def test_unknown_categories_are_still_quarantined_with_a_clear_message(tmp_path, feeds):
    desi = feeds["desi_threads"]
    rows = parse(desi, tmp_path, [desi.record(sku="B1", category="Home Decor"), desi.record(sku="B2", category="--")])
    first, second = (r.rejection for r in rows)
    assert first.reason == second.reason == Reason.UNKNOWN_CATEGORY
    assert "'Home Decor'" in first.message and "shared category synonyms" in first.message
    assert "'homedecor'" in first.message and "Sub Category" in first.message


def test_the_synonyms_file_refuses_a_key_two_categories_claim(tmp_path):
    from looksync.catalog.taxonomy import TaxonomyError
    from looksync.catalog.terms import load_category_synonyms

    path = tmp_path / "synonyms.yaml"
    path.write_text("en:\n  shirt: [Polo]\n  t_shirt: [polos]\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="'Polo'.*'polos'|'polos'.*'Polo'"):
        load_category_synonyms(path)
    path.write_text("en:\n  kaftan: [kaftan]\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="kaftan.*not a standard category"):
        load_category_synonyms(path)


# -- reasons that say what happened ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"hello, this is not json\n", Reason.MALFORMED_ROW),
        (b"<html><body>502 Bad Gateway</body></html>\n", Reason.MALFORMED_ROW),
        (b'{"sku": "B1" "info": {}}\n', Reason.MALFORMED_ROW),  # broken in the middle, closed at the end
        (b'{"sku": "B1", "info": {"name": "Blou\n', Reason.TRUNCATED_ROW),  # begun and never closed
        (b'{"sku": "B1", "pricing": {"amount": 12.\r\n', Reason.TRUNCATED_ROW),  # CRLF line end
    ],
)
def test_a_json_line_that_is_not_json_is_malformed_not_truncated(tmp_path, feeds, line, reason):
    northwind = feeds["northwind_apparel"]
    rows = parse(northwind, tmp_path, [northwind.record(sku="A1"), line, northwind.record(sku="A2")])
    assert rows[1].rejection.reason == reason and rows[1].row_ref == "line 2"
    assert [r.product.vendor_sku for r in (rows[0], rows[2])] == ["A1", "A2"]


def test_an_xml_record_broken_in_its_middle_is_malformed(tmp_path, feeds):
    sakura = feeds["sakura_mode"]
    broken = sakura.render(sakura.record(sku="B1")).replace("</burando>", "</brand>")
    rows = parse(sakura, tmp_path, [broken.encode(), sakura.record(sku="A1")])
    assert rows[0].rejection.reason == Reason.MALFORMED_ROW and rows[0].rejection.vendor_sku == "B1"


@pytest.mark.parametrize(
    "values, field",
    [
        ({"image": "gopher://img.example/x.png"}, "image_urls"),
        ({"image": "data:image/png;base64,iVBORw0KGgo="}, "image_urls"),
        ({"image": "ftp://img.example/x.png"}, "image_urls"),
        ({"image": "img.example/x.png"}, "image_urls"),
    ],
)
def test_odd_url_schemes_get_their_own_reason(tmp_path, feeds, values, field):
    desi = feeds["desi_threads"]
    rejection = parse(desi, tmp_path, [desi.record(sku="B1", **values)])[0].rejection
    assert rejection.reason == Reason.URL_SCHEME and field in rejection.message and "http:" in rejection.message


def test_a_product_page_url_must_be_http(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    record = northwind.record(sku="B1")
    record["link"] = "javascript:alert(document.cookie)"
    rejection = parse(northwind, tmp_path, [record])[0].rejection
    assert rejection.reason == Reason.URL_SCHEME and "product_url" in rejection.message


def test_a_messy_csv_export_reads_every_good_row_once(tmp_path, feeds):
    """BOM, CRLF line ends, quoted newlines and commas, hostile titles: all good rows stored, bad ones named."""
    desi = feeds["desi_threads"]
    hostile = [
        '<script>alert("x")</script> Kurta',
        "Robert'); DROP TABLE products;--",
        '=HYPERLINK("http://evil.example")',
        "Line one\nline two, with a comma",
        "Ünïcödé ✓ 😀 Shirt",
    ]
    good = [desi.record(sku=f"G{i}", title=t, description="Soft,\nwashable") for i, t in enumerate(hostile)]
    bad = [desi.record(sku="X1", price="1.299,00"), desi.record(sku="X2", category="Home Decor")]
    path = tmp_path / "desi.csv"
    body = "".join(desi.render(r) for r in good + bad).replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + (desi.head().replace("\n", "\r\n") + body).encode("utf-8"))
    rows = list(read_feed(desi.config, path))
    assert [r.product.title for r in rows if r.product] == [  # stored as text (looksync.catalog.text)
        "Kurta",  # markup reduced to its text; the script's content dropped
        "Robert'); DROP TABLE products;--",  # SQL and formulas are text: stored as written
        '=HYPERLINK("http://evil.example")',
        "Line one line two, with a comma",  # a title is one line
        "Ünïcödé ✓ 😀 Shirt",
    ]
    assert [r.cleaned for r in rows if r.product][0] == {"title": ["html"]}
    assert [r.rejection.reason for r in rows if r.rejection] == [Reason.BAD_PRICE, Reason.UNKNOWN_CATEGORY]
    assert [r.rejection.row_ref for r in rows if r.rejection] == ["line 13", "line 14"]  # physical lines


HOSTILE_TITLES = ['<script>alert("x")</script> Blouse', "Robert'); DROP TABLE products;--", "Ünïcödé ✓ 😀 Top"]
STORED_TITLES = ["Blouse", "Robert'); DROP TABLE products;--", "Ünïcödé ✓ 😀 Top"]  # markup reduced to text


def test_a_messy_json_lines_feed_reads_every_good_row_once(tmp_path, feeds):
    northwind = feeds["northwind_apparel"]
    good = [northwind.record(sku=f"G{i}", title=t) for i, t in enumerate(HOSTILE_TITLES)]
    lines = [northwind.render(r) for r in good[:2]]
    lines += ["\n", "   \n", "<html>oops</html>\n", northwind.render(good[2]), '{"sku": "G9", "info": {"na\n']
    path = tmp_path / "northwind.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(lines).replace("\n", "\r\n").encode("utf-8"))
    rows = list(read_feed(northwind.config, path))
    assert [r.product.title for r in rows if r.product] == STORED_TITLES
    assert [(r.row_ref, r.rejection.reason, r.rejection.vendor_sku) for r in rows if r.rejection] == [
        ("line 5", Reason.MALFORMED_ROW, None),
        ("line 7", Reason.TRUNCATED_ROW, "G9"),
    ]


def test_a_messy_xml_feed_reads_every_good_row_once(tmp_path, feeds):
    sakura = feeds["sakura_mode"]
    good = [sakura.record(sku=f"G{i}", title=t) for i, t in enumerate(HOSTILE_TITLES)]
    broken = sakura.render(sakura.record(sku="X1")).replace("</burando>", "</brand>")
    cut = sakura.render(sakura.record(sku="X2"))[:60] + "\n"
    body = "".join(sakura.render(r) for r in good[:2]) + broken + cut + sakura.render(good[2])
    path = tmp_path / "sakura.xml"
    path.write_bytes(b"\xef\xbb\xbf" + (sakura.head() + body + sakura.tail()).replace("\n", "\r\n").encode("utf-8"))
    rows = list(read_feed(sakura.config, path))
    assert [r.product.title for r in rows if r.product] == STORED_TITLES
    assert [(r.rejection.reason, r.rejection.vendor_sku, r.rejection.line) for r in rows if r.rejection] == [
        (Reason.MALFORMED_ROW, "X1", 5),  # the XML head is two lines
        (Reason.TRUNCATED_ROW, "X2", 6),
    ]


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1 << 20])  # records split across reads of the file
def test_xml_records_over_several_lines_carry_the_line_they_start_on(tmp_path, feeds, monkeypatch, chunk_bytes):
    from looksync.catalog.vendors import readers

    monkeypatch.setattr(readers, "XML_CHUNK_BYTES", chunk_bytes)
    sakura = feeds["sakura_mode"]
    pretty = [sakura.render(sakura.record(sku=f"P{i}", price="x" if i == 2 else "4980")).replace("><", ">\n    <")
              for i in range(4)]  # fmt: skip
    rows = parse(sakura, tmp_path, [p.encode() for p in pretty])
    per_record = pretty[0].count("\n")
    assert [r.line for r in rows] == [3 + i * per_record for i in range(4)]
    assert rows[2].rejection.line == 3 + 2 * per_record and rows[2].rejection.row_ref == "record 3"


def test_every_rejection_carries_its_line(tmp_path, feeds, feed):
    rows = parse(feed, tmp_path, [feed.record(sku="A1"), feed.record(sku="B1", price="N/A"), feed.record(sku="A1")])
    first_line = {"desi_threads": 2, "northwind_apparel": 1, "sakura_mode": 3}[feed.name]
    assert [r.line for r in rows] == [first_line, first_line + 1, first_line + 2]
    assert [r.rejection.line for r in rows[1:]] == [first_line + 1, first_line + 2]
