"""Why each match: per attribute, what was read from the look's region beside the product's value and
whether they agree; and the parts of the score.

Attributes compared are those the query generator read for the layer (the local generator: category,
colour, pattern, gender; an LLM writes what it writes) and that the catalog stores. Agreement rules:
category and pattern are equal values; a colour agrees when it is one of the product's colours; a
gender agrees when equal, or when either side is unisex.
"""

from __future__ import annotations

from typing import Any

_PRODUCT_FIELD = {"category": "category", "colour": "colours", "pattern": "pattern", "gender": "gender"}


def _agrees(name: str, look_value: str, product_value: Any) -> bool:
    if name == "colour":
        return look_value in (product_value or [])
    if name == "gender":
        return look_value == product_value or "unisex" in (look_value, product_value)
    return look_value == product_value


def explain_match(
    read: dict[str, str | None],
    product: dict[str, Any],
    knn_score: float,
    crop_score: float | None = None,
    rerank_score: float | None = None,
    text_weight: float | None = None,
) -> dict[str, Any]:
    """The ``match`` of one result: ``attributes`` (name, look, product, agrees) for every attribute read
    from the look that the product stores, and ``score`` parts: ``knn`` (cosine with the layer's
    query: the text query blended with the region's crop), ``crop`` (best cosine between the region's
    crops and the product image, when the crop rerank ran), ``rerank`` (the blend the results are
    ordered by, with its ``text_weight``)."""
    attributes = []
    for name, field_name in _PRODUCT_FIELD.items():
        look_value = read.get(name)
        if look_value is None or field_name not in product:
            continue
        product_value = product.get(field_name)
        attributes.append({"name": name, "look": look_value, "product": product_value, "agrees": _agrees(name, look_value, product_value)})
    score: dict[str, float] = {"knn": round(float(knn_score), 6)}
    if crop_score is not None:
        score["crop"] = round(float(crop_score), 6)
    if rerank_score is not None:
        score["rerank"] = round(float(rerank_score), 6)
        if text_weight is not None:
            score["text_weight"] = text_weight
    return {"attributes": attributes, "agreed": sum(a["agrees"] for a in attributes), "score": score}
