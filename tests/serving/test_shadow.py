"""Shadow mirroring in the service: mirrored look and text queries are compared and recorded, a full queue
drops and counts, and the live answer is the same with and without a shadow."""

from __future__ import annotations

import shutil
import threading

import pytest

from looksync.index.factory import open_index
from looksync.pipelines.reindex import build_version
from looksync.search.cache import MemoryCache
from looksync.search.engine import LookSearchRequest, SearchEngine
from looksync.search.shadow import ShadowLog, ShadowMirror
from serving.app import create_app
from serving.metrics import ServiceMetrics
from tests.serving.conftest import b64


@pytest.fixture(scope="module")
def shadowed(built_catalog, tmp_path_factory):
    """A copy of the built catalog's index with a shadow version: the same model's vectors, built again
    from the stores (so shadow must agree with live completely)."""
    root = tmp_path_factory.mktemp("shadowed")
    shutil.copytree(built_catalog.settings.resolved_index_path, root / "index")
    settings = built_catalog.settings.model_copy(
        update={"index_path": root / "index", "shadow_log_dir": root / "shadow"}
    )
    index = open_index(settings)
    live = index.live_version()
    shadow = build_version(settings, index, built_catalog.encoder.model_id).version
    index.set_shadow(shadow)
    return settings, live, shadow


def _client(built_catalog, zeroshot, settings, **overrides):
    settings = settings.model_copy(update=overrides)
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache(), zeroshot=zeroshot)
    return create_app(settings, engine), engine


def _without_timings(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "timings_ms"}


def test_mirrored_look_and_text_queries_are_compared_per_layer_and_recorded(built_catalog, zeroshot, shadowed, look):
    settings, live, shadow = shadowed
    app, engine = _client(built_catalog, zeroshot, settings, shadow_share=1.0,
                          shadow_clip_weights=built_catalog.env["LOOKSYNC_CLIP_WEIGHTS"])  # fmt: skip
    assert engine.mirror is not None and engine.mirror.version == shadow
    client = app.test_client()
    _, data, truth = look
    looked = client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"], "k": 10})
    texted = client.post("/v1/search", json={"text": "navy t-shirt", "market": "US", "k": 10})
    assert looked.status_code == 200 and texted.status_code == 200
    assert engine.mirror.drain(60)

    records = ShadowLog(settings.resolved_shadow_log_dir, shadow).read()
    assert sorted(r["kind"] for r in records) == ["look", "text"]
    assert all(r["live_version"] == live and r["shadow_version"] == shadow and not r["shadow_error"] for r in records)
    look_record = next(r for r in records if r["kind"] == "look")
    assert set(look_record["layers"]) == {layer["layer"] for layer in looked.get_json()["layers"]}
    # the shadow holds the same vectors of the same model: full agreement, no score shift
    for figures in (f for r in records for f in r["layers"].values()):
        assert figures["overlap"] == 1.0 and figures["live_n"] == figures["shadow_n"] > 0
        assert figures["spearman"] in (None, 1.0) and figures["kendall"] in (None, 1.0)
        assert abs(figures["score_shift"]) < 1e-5
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "looksync_shadow_active 1.0" in exposition
    assert 'looksync_shadow_queries_total{kind="look",outcome="queued"} 1.0' in exposition
    assert "looksync_shadow_overlap_at_10_count" in exposition
    engine.mirror.close()


def test_the_live_answer_is_the_same_with_and_without_a_shadow(built_catalog, zeroshot, shadowed, sample_looks):
    settings, _, _ = shadowed
    plain_app, plain = _client(built_catalog, zeroshot, settings)
    mirrored_app, mirrored = _client(built_catalog, zeroshot, settings, shadow_share=1.0,
                                     shadow_clip_weights=built_catalog.env["LOOKSYNC_CLIP_WEIGHTS"])  # fmt: skip
    assert plain.mirror is None and mirrored.mirror is not None
    for _, data, truth in sample_looks[:3]:
        body = {"image_base64": b64(data), "market": truth["market"], "k": 10, "rerank": "local"}
        a = plain_app.test_client().post("/v1/looks/search", json=body)
        b = mirrored_app.test_client().post("/v1/looks/search", json=body)
        assert a.status_code == b.status_code == 200
        assert _without_timings(a.get_json()) == _without_timings(b.get_json())
    text = {"text": "black leather boots", "market": "US", "k": 10}
    assert _without_timings(plain_app.test_client().post("/v1/search", json=text).get_json()) == _without_timings(
        mirrored_app.test_client().post("/v1/search", json=text).get_json()
    )
    assert mirrored.mirror.drain(60) and mirrored.mirror.compared == 4
    mirrored.mirror.close()


def test_no_mirror_without_a_shadow_version_or_weights(built_catalog, zeroshot, shadowed):
    settings, _, _ = shadowed
    app, engine = _client(built_catalog, zeroshot, settings, shadow_share=1.0)  # no LOOKSYNC_SHADOW_CLIP_WEIGHTS
    assert engine.mirror is None
    assert "looksync_shadow_active 0.0" in app.test_client().get("/metrics").get_data(as_text=True)
    _, engine = _client(built_catalog, zeroshot, built_catalog.settings, shadow_share=1.0,
                        shadow_clip_weights=built_catalog.env["LOOKSYNC_CLIP_WEIGHTS"])  # fmt: skip
    assert engine.mirror is None  # the shared catalog's index has no shadow version


class _Blocked:
    """A shadow engine whose look search waits until released: the worker stays busy on the first query."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def search_look(self, image, request):
        self.started.set()
        self.release.wait(30)
        return {"layers": [], "degraded": []}


def test_a_full_queue_drops_and_counts_without_waiting(built_catalog, shadowed, tmp_path):
    settings, _, shadow = shadowed
    blocked, metrics = _Blocked(), ServiceMetrics()
    mirror = ShadowMirror(blocked, open_index(settings), shadow, tmp_path, share=1.0, queue_size=2, events=metrics)  # type: ignore[arg-type]
    response = {
        "index_version": "live",
        "layers": [{"layer": "topwear", "products": [{"product_id": "p", "score": 0.5}]}],
    }
    request = LookSearchRequest(market="US")
    assert mirror.offer_look(None, request, response)  # taken by the worker, which blocks
    assert blocked.started.wait(10)
    accepted = [mirror.offer_look(None, request, response) for _ in range(5)]
    assert accepted == [True, True, False, False, False] and mirror.dropped == 3
    exposition = metrics.exposition().decode()
    assert 'looksync_shadow_queries_total{kind="look",outcome="dropped"} 3.0' in exposition
    assert 'looksync_shadow_queries_total{kind="look",outcome="queued"} 3.0' in exposition
    blocked.release.set()
    assert mirror.drain(10) and mirror.compared == 3
    records = ShadowLog(tmp_path, shadow).read()
    assert len(records) == 3 and records[0]["layers"]["topwear"]["shadow_n"] == 0
    assert records[0]["layers"]["topwear"]["overlap"] == 0.0
    mirror.close()


def test_share_mirrors_about_that_share(built_catalog, shadowed, tmp_path):
    settings, _, shadow = shadowed
    blocked = _Blocked()
    blocked.release.set()
    mirror = ShadowMirror(blocked, open_index(settings), shadow, tmp_path, share=0.25, queue_size=1000, seed=3)  # type: ignore[arg-type]
    taken = sum(mirror.offer_look(None, LookSearchRequest(market="US"), {"layers": []}) for _ in range(400))
    assert 60 <= taken <= 140
    mirror.drain(10)
    mirror.close()
