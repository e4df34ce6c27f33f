"""Small factories for test data (products, unit vectors, an unreachable endpoint)."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np

from looksync.catalog.schema import Product

_CURRENCY = {"IN": "INR", "US": "USD", "JP": "JPY"}


def product_data(**overrides: Any) -> dict[str, Any]:
    market = overrides.get("market", "US")
    data: dict[str, Any] = {
        "vendor": "northwind_apparel",
        "vendor_sku": "NW-1",
        "market": market,
        "title": "Navy striped tee",
        "brand": "Northwind",
        "category": "t_shirt",
        "gender": "women",
        "colours": ["navy"],
        "pattern": "striped",
        "sizes": ["S", "M"],
        "price": 19.99,
        "currency": _CURRENCY.get(market, "USD"),
        "in_stock": True,
        "image_urls": ["http://images.example/nw-1.png"],
        "product_url": "http://shop.example/nw-1",
    }
    data.update(overrides)
    return data


def make_product(**overrides: Any) -> Product:
    return Product(**product_data(**overrides))


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def closed_loopback_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens: a port bound and released, so a connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
