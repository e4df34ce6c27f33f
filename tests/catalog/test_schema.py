import pytest
from pydantic import ValidationError

from looksync.catalog.schema import Product, make_product_id
from tests.factories import make_product, product_data


def test_ids_and_derived_fields():
    p = make_product()
    assert p.product_id == make_product_id("northwind_apparel", "NW-1")
    assert p.product_id == make_product(title="another title").product_id  # stable across feeds
    assert p.product_id != make_product(vendor_sku="NW-2").product_id
    assert p.layer == "topwear"
    assert make_product(category="jeans").layer == "bottomwear"


def test_prices_round_to_the_market_currency():
    assert make_product(market="JP", price=4980.4).price == 4980
    assert make_product(market="IN", price=1299.005).price == pytest.approx(1299.0, abs=0.01)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"market": "FR"}, "unknown market 'FR'"),
        ({"category": "kilt"}, "unknown category 'kilt'"),
        ({"gender": "kids"}, "unknown gender 'kids'"),
        ({"colours": ["teal"]}, "unknown colour"),
        ({"pattern": "paisley"}, "unknown pattern 'paisley'"),
        ({"price": -1.0}, "must not be negative"),
        ({"price": float("nan")}, "finite"),
        ({"currency": "EUR"}, "does not match market US"),
        ({"layer": "footwear"}, "contradicts category 't_shirt'"),
        ({"image_urls": []}, "image_urls"),
        ({"image_urls": ["ftp://x/y.png"]}, "http"),
        ({"vendor_sku": ""}, "vendor_sku"),
        ({"product_id": "forged"}, r"not derived from vendor\+SKU"),
        ({"colour": "navy"}, "colour"),  # extra fields are refused, not dropped
    ],
)
def test_invalid_products_are_rejected_with_the_field(override, message):
    with pytest.raises(ValidationError, match=message):
        Product(**product_data(**override))


def test_same_model_round_trips_through_json():
    p = make_product(sizes=["M"], image_hash="ab" * 32, model_id="LookSync-Tiny@123")
    again = Product.model_validate_json(p.model_dump_json())
    assert again == p
    dumped = p.model_dump(mode="json")
    assert dumped["layer"] == "topwear" and dumped["currency"] == "USD" and isinstance(dumped["updated_at"], str)
