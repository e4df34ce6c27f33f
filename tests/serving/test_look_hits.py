"""Look cache hits answered before Flask's dispatch (serving/look_hits.py): the same bytes, status, headers,
metrics and log line as Flask's path; personalised, URL, refused, stale and unrendered requests go to Flask."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil

import pytest
from pydantic import SecretStr
from werkzeug.test import Client

from looksync.index.factory import open_index
from looksync.pipelines.reindex import build_version, swap
from looksync.search.cache import MemoryCache
from serving.logs import JsonFormatter
from serving.look_hits import LookHitShortcut
from tests.serving.conftest import b64


def _params(look, **extra) -> dict:
    _, _, truth = look
    return {"market": truth["market"], "k": 3, "layers": sorted(truth["products"]), **extra}


def _multipart(client, look, params: dict, **kwargs):
    _, data, _ = look
    form = {"params": json.dumps(params), "image": (io.BytesIO(data), "look.png", "image/png")}
    return client.post("/v1/looks/search", data=form, content_type="multipart/form-data", **kwargs)


def _json(client, look, params: dict, **kwargs):
    _, data, _ = look
    return client.post("/v1/looks/search", json={"image_base64": b64(data), **params}, **kwargs)


class Counted:
    """A client over the app, counting the requests that reached Flask behind the shortcut."""

    def __init__(self, client):
        self.client = client
        self.shortcut = client.application.wsgi_app
        assert isinstance(self.shortcut, LookHitShortcut)
        self.flask_app = self.shortcut.wsgi_app  # Flask's own wsgi_app
        self.reached_flask = 0

        def counted(environ, start_response):
            self.reached_flask += 1
            return self.flask_app(environ, start_response)

        self.shortcut.wsgi_app = counted

    def sent_by_shortcut(self, send) -> bool:
        """Whether ``send()`` was answered without reaching Flask."""
        before = self.reached_flask
        self.last = send()
        return self.reached_flask == before


@pytest.fixture
def counted(make_client):
    def make(**overrides) -> Counted:
        return Counted(make_client(None, cache=overrides.pop("cache", None) or MemoryCache(), **overrides))

    return make


def _rendered(c: Counted, look, params: dict, send=_multipart) -> None:
    """A miss, then a hit through Flask that renders the answer in this worker."""
    assert send(c.client, look, params).get_json()["cache"] == "miss"
    assert not c.sent_by_shortcut(lambda: send(c.client, look, params)) and c.last.get_json()["cache"] == "hit"


def _snapshot(client) -> dict[str, float]:
    registry = client.application.extensions["looksync.metrics"].registry
    samples = {
        "requests": ("looksync_http_requests_total", {"endpoint": "/v1/looks/search", "method": "POST", "status": "200"}),
        "latency": ("looksync_http_request_seconds_count", {"endpoint": "/v1/looks/search"}),
        "cache_stage": ("looksync_stage_seconds_count", {"endpoint": "/v1/looks/search", "stage": "cache"}),
        "look_hits": ("looksync_cache_requests_total", {"cache": "look", "result": "hit"}),
        "look_misses": ("looksync_cache_requests_total", {"cache": "look", "result": "miss"}),
        "hit_ratio": ("looksync_cache_hit_ratio", {"cache": "look"}),
    }
    return {name: registry.get_sample_value(metric, labels) or 0.0 for name, (metric, labels) in samples.items()}


def _log_lines(caplog) -> list[dict]:
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "looksync.service"]
    return [{k: v for k, v in line.items() if k not in ("ts", "duration_ms")} for line in lines]


def _without_timings(body: bytes) -> bytes:
    return re.sub(rb'"timings_ms":\{[^}]*\}', b'"timings_ms":{}', body)


@pytest.mark.parametrize("send", [_multipart, _json], ids=["multipart", "json"])
def test_a_shortcut_hit_is_what_flask_answers_bytes_headers_metrics_and_log(counted, look, caplog, send):
    c = counted()
    params = _params(look)
    _rendered(c, look, params, send)
    flask_only = Client(c.shortcut.wsgi_app)  # the same app without the shortcut in front (counted)
    headers = {"X-Request-Id": "req-hit-1"}
    answers, deltas, logs = [], [], []
    for name, client in (("flask", flask_only), ("shortcut", c.client)):
        before = _snapshot(c.client)
        with caplog.at_level(logging.INFO, logger="looksync.service"):
            caplog.clear()
            shortcut = c.sent_by_shortcut(lambda client=client: send(client, look, params, headers=headers))
        assert shortcut == (name == "shortcut")
        answers.append(c.last)
        after = _snapshot(c.client)
        deltas.append({k: after[k] - before[k] for k in after if k != "hit_ratio"})
        logs.append(_log_lines(caplog))
    via_flask, via_shortcut = answers
    assert via_shortcut.status == via_flask.status == "200 OK"
    # the same headers in the same order; the length differs only by the digits of this request's timings
    assert [name for name, _ in via_shortcut.headers.items()] == [name for name, _ in via_flask.headers.items()]
    for answer in (via_flask, via_shortcut):
        assert answer.headers["Content-Length"] == str(len(answer.get_data()))
    assert {k: v for k, v in via_shortcut.headers.items() if k != "Content-Length"} == {
        k: v for k, v in via_flask.headers.items() if k != "Content-Length"}  # fmt: skip
    assert via_shortcut.headers["X-Request-Id"] == "req-hit-1"
    assert _without_timings(via_shortcut.get_data()) == _without_timings(via_flask.get_data())
    timings = json.loads(via_shortcut.get_data())["timings_ms"]
    assert set(timings) == {"cache"} and timings["cache"] >= 0
    assert deltas[1] == deltas[0] == {"requests": 1, "latency": 1, "cache_stage": 1, "look_hits": 1, "look_misses": 0}
    assert logs[1] == logs[0] and len(logs[0]) == 1
    assert logs[0][0]["request_id"] == "req-hit-1" and logs[0][0]["endpoint"] == "/v1/looks/search"


def test_a_hit_is_answered_by_flask_until_this_worker_rendered_it_then_by_the_shortcut(counted, look):
    c = counted()
    params = _params(look)
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))  # miss
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))  # first hit: rendered by Flask
    for _ in range(3):
        assert c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
        assert c.last.get_json()["cache"] == "hit"
    # other parameters, another key: a miss through Flask
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, {**params, "k": 2}))
    assert c.last.get_json()["cache"] == "miss"
    # another application root: its thumbnail URLs are rendered by Flask first
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params, base_url="http://localhost/shop-api"))
    assert c.last.get_json()["cache"] == "hit"
    assert c.sent_by_shortcut(lambda: _multipart(c.client, look, params, base_url="http://localhost/shop-api"))
    urls = [p["thumbnail_url"] for layer in c.last.get_json()["layers"] for p in layer["products"]]
    assert urls and all(u.startswith("/shop-api/v1/thumbnails/") for u in urls)


def test_personalised_searches_go_the_full_path(counted, look):
    c = counted(shopper_max_boost=0.5)
    params = _params(look)
    _rendered(c, look, params)
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, {**params, "shopper_id": "shopper-h1"}))
    answer = c.last.get_json()
    assert c.last.status_code == 200 and answer["cache"] == "hit"
    assert answer["preferences"] == {"shopper_id": "shopper-h1", "applied": [], "note": "no profile yet"}
    assert c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
    assert "preferences" not in c.last.get_json()


def test_an_expired_or_replaced_entry_is_not_sent_from_the_rendered_answer(counted, look):
    cache = MemoryCache()
    c = counted(cache=cache)
    params = _params(look)
    _rendered(c, look, params)
    (key,) = [k for k in cache._items if k.startswith("look:")]
    del cache._items[key]  # expired (or evicted)
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
    assert c.last.get_json()["cache"] == "miss"
    stored = json.loads(cache.get(key))
    stored["layers"] = stored["layers"][:1]  # another worker stored another answer under the key
    cache.set(key, json.dumps(stored, separators=(",", ":")).encode())
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
    assert [layer["layer"] for layer in c.last.get_json()["layers"]] == [stored["layers"][0]["layer"]]
    assert c.sent_by_shortcut(lambda: _multipart(c.client, look, params))  # the new bytes, rendered once
    assert [layer["layer"] for layer in c.last.get_json()["layers"]] == [stored["layers"][0]["layer"]]


def test_a_new_live_version_is_never_answered_from_an_older_versions_entry(counted, built_catalog, tmp_path, look):
    data_dir = tmp_path / "data"
    shutil.copytree(built_catalog.settings.data_dir, data_dir)
    settings = built_catalog.settings.model_copy(update={"data_dir": data_dir})
    index = open_index(settings)
    c = counted(index=index, data_dir=data_dir)
    params = _params(look)
    _rendered(c, look, params)
    before = c.last.get_json()["index_version"]
    report = build_version(settings, index, built_catalog.encoder.model_id)
    swap(index, report.version)
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
    after = c.last.get_json()
    assert after["cache"] == "miss" and after["index_version"] == report.version != before


def test_a_live_index_of_another_model_is_refused_not_answered_from_the_cache(counted, look):
    c = counted()
    params = _params(look)
    _rendered(c, look, params)
    engine = c.client.application.extensions["looksync.engine"]
    version = c.last.get_json()["index_version"]
    engine._checked_versions[version] = "another-model"  # as check_ready finds a version built by another model
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params))
    assert c.last.status_code == 503 and c.last.get_json()["error"]["code"] == "not_ready"


def test_refused_requests_reach_flask_and_get_its_answer(counted, look):
    c = counted(api_keys=[SecretStr("key-1")])
    params = _params(look)
    key = {"X-API-Key": "key-1"}
    assert _multipart(c.client, look, params, headers=key).get_json()["cache"] == "miss"
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, params, headers=key))
    assert c.sent_by_shortcut(lambda: _multipart(c.client, look, params, headers=key))
    for headers in ({}, {"X-API-Key": "key-2"}):
        assert not c.sent_by_shortcut(lambda headers=headers: _multipart(c.client, look, params, headers=headers))
        assert c.last.status_code == 401
    assert not c.sent_by_shortcut(lambda: _multipart(c.client, look, {**params, "k": 0}, headers=key))
    assert c.last.status_code == 400 and c.last.get_json()["error"]["field"] == "k"
    url = {"image_url": "http://127.0.0.1:9/look.png", **params}  # an URL is fetched by Flask's path only
    assert not c.sent_by_shortcut(lambda: c.client.post("/v1/looks/search", json=url, headers=key))
    assert c.last.status_code != 200
