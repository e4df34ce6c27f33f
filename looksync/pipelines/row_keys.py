"""Row keys in ingestion: a feed row that is exactly the one a stored product was made from is not mapped,
compared or written again.

``parse_stage`` reads the feed with the vendor's stored row keys (``known_rows``): a row whose key
(``looksync.catalog.vendors.fingerprint``: the row's bytes, the vendor mapping, the code that maps, and
``settings_salt``) a stored product carries comes back unchanged, unmapped. ``detect_stage`` confirms those
against the stores (``confirm_unchanged``): the stored image must have a vector of the run's model, else
the stored product is classified like any parsed product. ``apply_stage`` records the keys of the products a run keeps.
"""

from __future__ import annotations

from pathlib import Path

from looksync.catalog.stores import ProductStore
from looksync.settings import Settings


def settings_salt(settings: Settings) -> bytes:
    """What, besides the vendor mapping, decides the product a row becomes (category fallback and
    standardisation settings): part of every row key (``looksync.catalog.vendors.fingerprint``)."""
    from looksync.pipelines import enrich

    parts = (settings.category_clip_fallback, settings.category_clip_min_confidence, settings.category_clip_max_wrong,
             settings.zeroshot_min_confidence, Path(enrich.__file__).read_bytes())  # fmt: skip
    return repr(parts).encode()


def known_rows(settings: Settings, vendor: str) -> dict[str, tuple[str, str, str | None]]:
    """Row key -> (product id, SKU key, category source) of the vendor's stored products that carry the
    key of the feed row they were made from."""
    table = ProductStore(settings.data_dir).vendor_rows(vendor, ["row_key", "product_id", "vendor_sku", "category_source"])
    if table is None:
        return {}
    keys, ids, skus, sources = (table.column(i).to_pylist() for i in range(4))
    return {key: (pid, sku, source) for key, pid, sku, source in zip(keys, ids, skus, sources, strict=True) if key is not None}


def confirm_unchanged(
    products: ProductStore, stored: dict[str, str | None], unchanged: dict[str, str], have_vector: set[str], refetch: bool
) -> dict[str, list]:
    """Of the rows the parse found as stored (product id -> row key; ``stored``: the vendor's product ids ->
    their image hashes), those whose stored image has a
    vector of the run's model (``have_vector``) stay unchanged (``ids``; ``images``: their distinct image
    hashes), as a parsed product with the same image would. The others (no vector of this model,
    ``refetch``) come back as their stored products (``recheck``), which are what their rows map to, to
    be classified like any parsed product."""
    out: dict[str, list] = {"ids": [], "images": [], "recheck": []}
    if not unchanged:
        return out
    recheck = []
    images: set[str] = set()
    for pid in unchanged:
        image_hash = stored.get(pid)
        if not refetch and image_hash in have_vector:
            out["ids"].append(pid)
            images.add(image_hash)
        else:
            recheck.append(pid)
    out["images"] = sorted(images)
    out["recheck"] = list(products.get_many(recheck).values())
    return out
