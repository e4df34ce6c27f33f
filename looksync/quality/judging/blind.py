"""Blind side-by-side judging of live and shadow: one look asked of both, shown as sides A and B in a
random order with no model named. Each side carries a signed token naming its model id and index version;
the judge's ratings come back with the token, and the server (not the page) turns it into the model the
ratings are stored under, so MOS per model is collected before promotion without the judge knowing which
is which."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from looksync.quality.judging.ratings import InvalidRating

_SALT = "looksync.judge.side"
_HIDDEN = ("model_id", "index_version", "timings_ms", "cache")


def seal_side(secret: str, model_id: str, index_version: str) -> str:
    return URLSafeSerializer(secret, salt=_SALT).dumps({"m": model_id, "v": index_version})


def open_side(secret: str, token: str) -> tuple[str, str]:
    """(model id, index version) of a side token, or InvalidRating when it was not made with ``secret``."""
    try:
        data = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except BadSignature:
        raise InvalidRating(["side_token: not a token this service issued"]) from None
    return data["m"], data["v"]


def aligned_request(request: Any, live: dict[str, Any]) -> Any:
    """The look request to ask of the shadow: where the judge named no layers, the layers live found, so both
    sides show the same layers and each layer's matches can be compared. (Gender is left to each side's own
    reading: an inferred gender is a preference the search widens, a requested one a hard filter.)"""
    return replace(request, layers=request.layers or [layer["layer"] for layer in live.get("layers", [])] or None)


def blind_pair(
    secret: str, live: dict[str, Any], shadow: dict[str, Any], rng: random.Random | None = None
) -> list[dict[str, Any]]:
    """Two look responses as sides A and B in a random order: per-layer products only, each side with its token."""
    sides = [live, shadow]
    (rng or random.SystemRandom()).shuffle(sides)
    return [
        {
            "side": label,
            "side_token": seal_side(secret, response["model_id"], response["index_version"]),
            **{k: v for k, v in response.items() if k not in _HIDDEN},
        }  # fmt: skip
        for label, response in zip("AB", sides, strict=True)
    ]


def resolve_side(secret: str, body: Any) -> Any:
    """A judgments submission naming a ``side_token`` with its model id and index version filled in from it
    (a body without one is returned as it is)."""
    if not isinstance(body, dict) or "side_token" not in body:
        return body
    token = body["side_token"]
    if not isinstance(token, str):
        raise InvalidRating(["side_token: must be a string"])
    model_id, version = open_side(secret, token)
    return {**{k: v for k, v in body.items() if k != "side_token"}, "model_id": model_id, "index_version": version}
