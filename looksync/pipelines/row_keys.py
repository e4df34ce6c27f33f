"""Row keys in ingestion: a feed row that is exactly the one a stored product was made from is not mapped,
compared or written again.

``parse_stage`` reads the feed with the vendor's stored row keys (``known_rows``): a row whose key
(``looksync.catalog.vendors.fingerprint``: the row's bytes, the vendor mapping, the code that maps, and
``settings_salt``) a stored product carries comes back unchanged, unmapped. ``detect_stage`` confirms those
against the stores (``confirm_unchanged``): the stored image must have a vector of the run's model, else
the stored product is classified like any parsed product. ``apply_stage`` records the keys of the products a run keeps.

Offer keys (``fingerprint.offer_key``) do the same for a reprice or a restock: a row whose offer key a
stored product carries is read for its offer only (``feed.apply_offer``: the stored product with the
row's offer, validated as a mapped row is). ``parse_stage`` keeps those products apart (``offers``, with
``offered``: which of them differ from the stored product); ``detect_stage`` confirms them like the rows
as stored (``confirm_offers``), so they skip fetch, embedding and standardisation (none of which reads the
offer), and ``apply_stage`` writes the changed ones.
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


Known = dict[str, tuple[str, str, str | None]]  # key -> (product id, SKU key, category source)


def known_rows(settings: Settings, vendor: str) -> tuple[Known, Known]:
    """The vendor's stored products by the key of the feed row they were made from, and by its offer key
    (each: key -> (product id, SKU key, category source)), for those that carry one."""
    columns = ["row_key", "offer_key", "product_id", "vendor_sku", "category_source"]
    table = ProductStore(settings.data_dir).vendor_rows(vendor, columns)
    if table is None:
        return {}, {}
    keys, offer_keys, ids, skus, sources = (table.column(i).to_pylist() for i in range(len(columns)))
    found = list(zip(ids, skus, sources, strict=True))
    by_row = {key: hit for key, hit in zip(keys, found, strict=True) if key is not None}
    return by_row, {key: hit for key, hit in zip(offer_keys, found, strict=True) if key is not None}


def confirm_unchanged(
    products: ProductStore, stored: dict[str, str | None], unchanged: dict[str, str], have_vector: set[str], refetch: bool
) -> dict[str, list]:
    """Of the rows the parse found as stored (product id -> row key; ``stored``: the vendor's product ids ->
    their image hashes), those whose stored image has a
    vector of the run's model (``have_vector``) stay unchanged (``ids``; ``images``: their distinct image
    hashes), as a parsed product with the same image would. The others (no vector of this model,
    ``refetch``) come back as their stored products (``recheck``), which are what their rows map to, to
    be classified like any parsed product."""
    ids, recheck, images = _keeping_image(list(unchanged), stored, have_vector, refetch)
    return {"ids": ids, "images": sorted(images), "recheck": list(products.get_many(recheck).values()) if recheck else []}


def confirm_offers(
    stored: dict[str, str | None], offered: dict[str, list[str]], have_vector: set[str], refetch: bool
) -> dict[str, list[str]]:
    """Of the products read for their offer only (``offered``: ``changed`` / ``same`` product ids, as the
    parse compared them with the stored ones), those whose stored image has a vector of the run's model
    keep it (``changed``, ``same``; ``images``: their distinct image hashes), as ``confirm_unchanged``
    decides; the others (``recheck``) are classified like any parsed product."""
    changed, recheck, images = _keeping_image(offered.get("changed", []), stored, have_vector, refetch)
    same, recheck_same, same_images = _keeping_image(offered.get("same", []), stored, have_vector, refetch)
    return {"changed": changed, "same": same, "recheck": recheck + recheck_same, "images": sorted(images | same_images)}


def _keeping_image(
    ids: list[str], stored: dict[str, str | None], have_vector: set[str], refetch: bool
) -> tuple[list[str], list[str], set[str]]:
    """(the products whose stored image has a vector of the run's model, the others, those images)."""
    kept, rest, images = [], [], set()
    for pid in ids:
        image_hash = stored.get(pid)
        if not refetch and image_hash in have_vector:
            kept.append(pid)
            images.add(image_hash)
        else:
            rest.append(pid)
    return kept, rest, images
