"""Blind side-by-side judging of live and shadow through the Flask app: sides in a random order with no
model named, ratings stored under the model each side came from, MOS per model in the report."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr

from looksync.quality.judging.blind import open_side
from tests.quality.judging.service import SHADOW_WEIGHTS, judging_app, shadowed_data


@pytest.fixture(scope="module")
def with_shadow(built_catalog, tmp_path_factory):
    data_dir, candidate = shadowed_data(built_catalog, tmp_path_factory.mktemp("judge-shadow"))
    assert candidate["embedded"] > 0 and candidate["version"] != candidate["live"]
    return data_dir, candidate


def _look(built_catalog) -> dict:
    looks = Path(built_catalog.manifest.looks_dir)
    look_id, truth = sorted(built_catalog.ground_truth.items())[0]
    data = (looks / f"{look_id}.png").read_bytes()
    return {"image_base64": base64.b64encode(data).decode(), "market": truth["market"], "k": 4}


def test_live_and_shadow_side_by_side_blind_and_rated_per_model(built_catalog, with_shadow, tmp_path):
    data_dir, candidate = with_shadow
    app = judging_app(built_catalog, tmp_path, data_dir=data_dir, shadow_share=0.01, shadow_clip_weights=SHADOW_WEIGHTS,
                      judging_secret=SecretStr("judging-test-secret"))  # fmt: skip
    client = app.test_client()
    orders = set()
    for _ in range(12):
        resp = client.post("/v1/judge/compare", json=_look(built_catalog))
        assert resp.status_code == 200, resp.get_json()
        sides = resp.get_json()["sides"]
        assert [s["side"] for s in sides] == ["A", "B"]
        assert not any(key in side for side in sides for key in ("model_id", "index_version"))  # blind
        assert [layer["layer"] for layer in sides[0]["layers"]] == [layer["layer"] for layer in sides[1]["layers"]]
        models = [open_side("judging-test-secret", s["side_token"]) for s in sides]
        orders.add(tuple(m for m, _ in models))
    assert len(orders) == 2  # both orders turn up
    live_id, shadow_id = built_catalog.encoder.model_id, candidate["model_id"]
    assert {m for order in orders for m in order} == {live_id, shadow_id}

    for side, overall in zip(sides, (2, 5), strict=True):
        ratings = [{"layer": layer["layer"], "product_id": p["product_id"], "rank": i + 1, "scores": {"overall": overall}}
                   for layer in side["layers"] for i, p in enumerate(layer["products"][:2])]  # fmt: skip
        saved = client.post("/v1/judgments", json={"judge_id": "ana", "look_id": "l1", "side_token": side["side_token"],
                                                   "ratings": ratings})  # fmt: skip
        assert saved.status_code == 201, saved.get_json()
    report = client.get("/v1/judgments/report").get_json()
    mos = {m["model_id"]: m["criteria"]["overall"]["mean"] for m in report["models"]}
    by_side = dict(zip((open_side("judging-test-secret", s["side_token"])[0] for s in sides), (2, 5), strict=True))
    assert mos == {live_id: by_side[live_id], shadow_id: by_side[shadow_id]}

    forged = client.post("/v1/judgments", json={"judge_id": "ana", "side_token": "x.y", "ratings": ratings})
    assert forged.status_code == 400 and "side_token" in forged.get_json()["error"]["message"]


def test_compare_without_a_shadow_is_409(built_catalog, tmp_path):
    resp = judging_app(built_catalog, tmp_path).test_client().post("/v1/judge/compare", json=_look(built_catalog))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "no_shadow"
