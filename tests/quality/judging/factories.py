"""Small builders of ratings and submissions for the judging tests."""

from __future__ import annotations

from typing import Any

from looksync.quality.judging import CRITERIA, Rating


def scores(overall: int = 4, **others: int | None) -> dict[str, int | None]:
    values: dict[str, int | None] = {c: overall for c in CRITERIA}
    values.update(others)
    return values


def rating(judge: str = "ana", product: str = "p1", model: str = "model-a", layer: str = "topwear",
           look: str = "look-001", **score_values: int | None) -> Rating:  # fmt: skip
    overall = score_values.pop("overall", 4)
    return Rating(judge_id=judge, layer=layer, product_id=product, model_id=model, look_id=look,
                  scores=scores(overall, **score_values), rank=1, index_version="v1", query_text="navy shirt")  # fmt: skip


def submission(n: int = 2, **shared: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "judge_id": "ana",
        "look_id": "look-001",
        "look_sha256": "ab" * 32,
        "model_id": "LookSync-Tiny:random",
        "index_version": "v20260101",
        "ratings": [
            {"layer": "topwear", "product_id": f"vendor-{i}", "rank": i + 1, "query_text": "women navy t-shirt",
             "scores": scores(3 + i % 3, sleeve=None if i % 2 else 2)}  # fmt: skip
            for i in range(n)
        ],
    }
    body.update(shared)
    return body
