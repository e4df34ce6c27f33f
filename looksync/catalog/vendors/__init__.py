"""Vendor feeds: per-vendor YAML configs (``configs/``) and the parser that turns a feed file into
canonical products and quarantine records.

    config = load_vendor_config("desi_threads")
    for row in read_feed(config, "feeds/desi_threads.csv"):
        row.product or row.rejection
"""

from looksync.catalog.vendors.config import (
    FieldSpec,
    PriceFormat,
    TimestampFormat,
    VendorConfig,
    VendorConfigError,
    list_vendors,
    load_vendor_config,
)
from looksync.catalog.vendors.feed import ParsedRow, read_feed
from looksync.catalog.vendors.readers import FeedError
from looksync.catalog.vendors.values import PriceProblem, ValueProblem, format_price, parse_price

__all__ = [
    "FeedError",
    "FieldSpec",
    "ParsedRow",
    "PriceFormat",
    "PriceProblem",
    "TimestampFormat",
    "ValueProblem",
    "VendorConfig",
    "VendorConfigError",
    "format_price",
    "list_vendors",
    "load_vendor_config",
    "parse_price",
    "read_feed",
]
