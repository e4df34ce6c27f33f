"""End to end: sample -> ingest -> index -> service (gunicorn) over HTTP -> every endpoint, and the
planted products' recall@10 per layer on the sample looks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import requests

from looksync.catalog.quarantine import read_quarantine
from looksync.catalog.taxonomy import get_taxonomy
from looksync.demo import free_port, start_service, stop_service, wait_ready


def test_every_planted_fault_is_quarantined_with_its_reason(built_catalog):
    quarantined = []
    for report in built_catalog.reports.values():
        quarantined += read_quarantine(Path(report["quarantine_path"]))
    got = Counter((q["vendor"], q["reason"]) for q in quarantined)
    expected = Counter((f["vendor"], f["expected_reason"]) for f in built_catalog.faults)
    assert got == expected
    assert len({f["kind"] for f in built_catalog.faults}) >= 10
    assert all(q["message"] and q["run_id"] for q in quarantined)


def test_valid_rows_are_all_stored_and_indexed(built_catalog):
    from looksync.index.factory import open_index

    stored = sum(r["products_stored"] for r in built_catalog.reports.values())
    assert stored == 150
    index = open_index(built_catalog.settings)
    assert index.count() == 150
    assert index.live_model_id() == built_catalog.encoder.model_id


def test_reingest_reuses_embeddings(built_catalog, tmp_path):
    from looksync.pipelines.ingest import ingest_feed

    vendor, feed = next(iter(built_catalog.manifest.feeds.items()))
    # the session's image server still serves the feed's image URLs
    report = ingest_feed(built_catalog.settings, vendor, feed, built_catalog.encoder)
    assert report.embedded == 0
    assert report.embeddings_reused == built_catalog.reports[vendor]["embedded"]


@pytest.fixture(scope="module")
def service(built_catalog):
    port = free_port()
    proc = start_service(built_catalog.env, port, built_catalog.root / "service.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc=proc)
        yield base
    finally:
        stop_service(proc)


def _post_look(base, look_path, params):
    with open(look_path, "rb") as fh:
        return requests.post(
            f"{base}/v1/looks/search",
            files={"image": ("look.png", fh, "image/png")},
            data={"params": json.dumps(params)},
            timeout=60,
        )


def test_look_search_over_http_returns_products_for_each_layer(built_catalog, service):
    taxonomy = get_taxonomy()
    ready = requests.get(f"{service}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and ready["products"] == 150
    for look_id, truth in sorted(built_catalog.ground_truth.items())[:3]:
        layers = sorted(truth["products"])
        resp = _post_look(service, Path(built_catalog.manifest.looks_dir) / f"{look_id}.png",
                          {"market": truth["market"], "gender": truth["gender"], "layers": layers, "k": 5})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_id"] == built_catalog.encoder.model_id
        assert body["index_version"] == ready["index_version"]
        assert sorted(layer["layer"] for layer in body["layers"]) == layers
        for layer in body["layers"]:
            assert layer["query"], layer
            assert layer["products"], f"{look_id}: no products for {layer['layer']}"
            for product in layer["products"]:
                assert product["category"] in taxonomy.categories_of(layer["layer"])
                assert product["market"] == truth["market"]
                assert product["gender"] in (truth["gender"], "unisex")
            # the default rerank (auto, no LLM configured) is the crop-embedding cosine blend
            assert body["rerank"] == "local"
            scores = [p["rerank_score"] for p in layer["products"]]
            assert scores == sorted(scores, reverse=True)
        assert set(body["timings_ms"]) >= {"query_generation", "text_embedding", "knn", "rerank"}


def test_look_search_detects_layers_when_none_given(built_catalog, service):
    look_id = sorted(built_catalog.ground_truth)[0]
    resp = _post_look(service, Path(built_catalog.manifest.looks_dir) / f"{look_id}.png", {"k": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["layers"] and all(layer["layer"] in get_taxonomy().layers for layer in body["layers"])
    detected = body["gender_detected"]  # read from the look: used as a filter only when sure enough
    assert detected["gender"] in ("women", "men", "unisex") and 0 < detected["confidence"] <= 1
    assert detected["used"] == (detected["confidence"] >= 0.9) == (body["gender"] == detected["gender"])
    for layer in body["layers"]:  # an inferred gender is widened rather than leaving a layer empty
        assert len(layer["products"]) == 3, layer
        assert layer["gender_filter"] in (("inferred", "relaxed") if detected["used"] else ("unsure",))


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"layers": ["cape"]}, 400, "invalid_request"),
        ({"market": "FR"}, 400, "invalid_request"),
        ({"k": 0}, 400, "invalid_request"),
        ({"filters": {"colour": "red"}}, 400, "invalid_request"),
    ],
)
def test_bad_look_requests_get_4xx_json(built_catalog, service, params, status, code):
    look_id = sorted(built_catalog.ground_truth)[0]
    resp = _post_look(service, Path(built_catalog.manifest.looks_dir) / f"{look_id}.png", params)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]


def test_non_image_and_missing_image_uploads(service):
    resp = requests.post(f"{service}/v1/looks/search", files={"image": ("x.png", b"<html>", "image/png")}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "image_not_image"
    resp = requests.post(f"{service}/v1/looks/search", json={"market": "US"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "missing_image"
    resp = requests.post(f"{service}/v1/looks/search", data="{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    assert requests.get(f"{service}/nope", timeout=5).json()["error"]["code"] == "not_found"


def test_other_endpoints_over_http(service):
    text = requests.post(f"{service}/v1/search", json={"text": "women's navy t-shirt", "k": 3}, timeout=30)
    assert text.status_code == 200, text.text
    products = text.json()["products"]
    assert len(products) == 3
    pid = products[0]["product_id"]
    assert requests.get(f"{service}/v1/products/{pid}", timeout=10).json()["product"]["product_id"] == pid
    similar = requests.get(f"{service}/v1/products/{pid}/similar", params={"k": 3}, timeout=10)
    assert similar.status_code == 200 and all(p["product_id"] != pid for p in similar.json()["products"])
    assert requests.get(f"{service}/openapi.json", timeout=10).json()["paths"]
    metrics = requests.get(f"{service}/metrics", timeout=10).text
    assert 'looksync_http_requests_total{endpoint="/v1/search",method="POST",status="200"}' in metrics


def test_planted_recall_at_10_per_layer(built_catalog, service, capsys):
    """With random weights this proves the plumbing, not match quality: the figures are reported, and
    the test asserts that every planted layer was searched and answered."""
    found: dict[str, list[int]] = {}
    for look_id, truth in sorted(built_catalog.ground_truth.items()):
        layers = sorted(truth["products"])
        resp = _post_look(service, Path(built_catalog.manifest.looks_dir) / f"{look_id}.png",
                          {"market": truth["market"], "gender": truth["gender"], "layers": layers, "k": 10})
        assert resp.status_code == 200, resp.text
        got = {layer["layer"]: [p["product_id"] for p in layer["products"]] for layer in resp.json()["layers"]}
        assert set(got) == set(layers)
        for layer, planted in truth["products"].items():
            found.setdefault(layer, []).append(int(planted in got[layer]))
    recall = {layer: round(sum(hits) / len(hits), 3) for layer, hits in sorted(found.items())}
    with capsys.disabled():
        print(f"\nplanted recall@10 per layer (random weights, {len(built_catalog.ground_truth)} looks): {recall}")
    assert all(0.0 <= r <= 1.0 for r in recall.values()) and recall
