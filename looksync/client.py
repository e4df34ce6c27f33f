"""A small HTTP client for the service, used by the CLI and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests


def search_look(
    base_url: str,
    image: Path,
    *,
    market: str | None = None,
    gender: str | None = None,
    layers: str | list[str] | None = None,
    k: int = 5,
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    params: dict[str, Any] = {"k": k}
    if market:
        params["market"] = market
    if gender:
        params["gender"] = gender
    if layers:
        params["layers"] = layers.split(",") if isinstance(layers, str) else list(layers)
    headers = {"X-API-Key": api_key} if api_key else {}
    with Path(image).open("rb") as fh:
        resp = requests.post(
            f"{base_url.rstrip('/')}/v1/looks/search",
            files={"image": (Path(image).name, fh, "image/png")},
            data={"params": json.dumps(params)},
            headers=headers,
            timeout=timeout_s,
        )
    body = resp.json()
    if resp.status_code != 200:
        err = body.get("error", {})
        raise RuntimeError(f"look search failed: HTTP {resp.status_code} {err.get('code')}: {err.get('message')}")
    return body


def format_look_response(response: dict[str, Any]) -> str:
    lines = [
        f"index {response['index_version']}  model {response['model_id']}  gender {response.get('gender')}",
        "timings (ms): " + ", ".join(f"{k} {v}" for k, v in response["timings_ms"].items()),
    ]
    if response.get("degraded"):
        lines.append("degraded: " + "; ".join(response["degraded"]))
    for layer in response["layers"]:
        lines.append(f"\n[{layer['layer']}] query: {layer['query']!r}")
        for rank, p in enumerate(layer["products"], 1):
            score = f"{p['score']:.3f}"
            if "rerank_score" in p:  # the order follows the rerank score; the kNN (text) score is kept beside it
                score = f"{p['rerank_score']:.3f} (knn {p['score']:.3f})"
            lines.append(
                f"  {rank:>2}. {score}  {p['title']}  ({p['brand']}, {p['category']}, "
                f"{p['price']} {p['currency']}, {p['market']})  {p['product_id']}"
            )
    return "\n".join(lines)
