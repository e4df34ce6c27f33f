"""Vendor configs: the packaged ones are complete, and a bad config fails with an error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from looksync.catalog.taxonomy import get_taxonomy
from looksync.catalog.vendors import (
    PriceFormat,
    ValueProblem,
    VendorConfigError,
    list_vendors,
    load_vendor_config,
    parse_price,
)
from looksync.catalog.vendors.config import CONFIG_DIR


def test_packaged_vendors_are_listed():
    assert list_vendors() == ["desi_threads", "northwind_apparel", "sakura_mode"]


@pytest.mark.parametrize("vendor", list_vendors())
def test_packaged_configs_cover_every_standard_value(vendor):
    """Every standard category, gender, colour and pattern has a word in every vendor's vocabulary."""
    config = load_vendor_config(vendor)
    taxonomy = get_taxonomy()
    assert config.currency == taxonomy.currency_of(config.market)
    for kind, ids in (("category", taxonomy.categories), ("gender", taxonomy.genders),
                      ("colour", taxonomy.colours), ("pattern", taxonomy.patterns)):  # fmt: skip
        missing = [sid for sid in ids if not config.vendor_terms(kind, sid)]
        assert not missing, f"{vendor}: no {kind} term for {missing}"


def test_vendors_use_genuinely_different_formats():
    configs = [load_vendor_config(v) for v in list_vendors()]
    assert sorted(c.format for c in configs) == ["csv", "jsonl", "xml"]
    assert sorted(c.market for c in configs) == ["IN", "JP", "US"]


def test_a_config_loads_by_path_too(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text((CONFIG_DIR / "desi_threads.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert load_vendor_config(path).name == "desi_threads"


def broken_config(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load((CONFIG_DIR / "northwind_apparel.yaml").read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "broken_vendor.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


BROKEN = [
    (lambda c: c["synonyms"]["category"].update({"Tunics": "tunic"}), ["'Tunics'", "'tunic'"]),
    (lambda c: c.update(format="parquet"), ["parquet"]),
    (lambda c: c.update(currency="EUR"), ["EUR", "USD"]),
    (lambda c: c["fields"].pop("price"), ["price"]),
    (lambda c: c["fields"].update(colour={"path": "a.b", "split": " > "}), ["fields.colour"]),
    (lambda c: c.update(format="xml"), ["record_tag"]),
    (lambda c: c.update(colour_map={}), ["colour_map"]),
    (lambda c: c["stock"].update(kind="terms"), ["synonyms.stock"]),
    (lambda c: c["updated_at"].update(utc_offset="IST"), ["IST"]),
]


@pytest.mark.parametrize("change, words", BROKEN)
def test_a_bad_config_fails_naming_the_file_and_the_problem(tmp_path, change, words):
    path = broken_config(tmp_path, change)
    with pytest.raises(VendorConfigError) as caught:
        load_vendor_config(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_unreadable_yaml_and_unknown_names_are_clear(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("vendor: x\nfields: [unclosed\n", encoding="utf-8")
    with pytest.raises(VendorConfigError, match="bad.yaml"):
        load_vendor_config(path)
    with pytest.raises(VendorConfigError, match="desi_threads"):  # lists the known vendors
        load_vendor_config("no_such_vendor")
    with pytest.raises(VendorConfigError, match="absent.yaml"):
        load_vendor_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "text, fmt, expected",
    [
        ("1,299.00", PriceFormat(), 1299.0),
        ("29.99", PriceFormat(), 29.99),
        ("4,980", PriceFormat(decimals=0), 4980.0),
        ("4980円", PriceFormat(decimals=0, strip=("円",)), 4980.0),
        ("1.299,00", PriceFormat(thousands=".", decimal=","), 1299.0),
        (12, PriceFormat(), 12.0),
        ("１２００", PriceFormat(), 1200.0),  # full-width digits
    ],
)
def test_prices_parse_in_the_vendors_format(text, fmt, expected):
    assert parse_price(text, fmt) == expected


@pytest.mark.parametrize("text", ["", "N/A", "12.99.00", "4980.5", "1,,299", True, None, float("nan")])
def test_unreadable_prices_raise_naming_the_value(text):
    with pytest.raises(ValueProblem):
        parse_price(text, PriceFormat(decimals=0) if text == "4980.5" else PriceFormat())
