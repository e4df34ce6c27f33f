"""Single-flight on the look search: the same look sent at the same time by many clients is computed once,
by the threads of one worker and by several workers sharing the real Redis (DB 6); the others get the
same answer from the cache."""

from __future__ import annotations

import threading
import uuid

from looksync.search.cache import RedisCache
from serving import context
from tests.serving.conftest import b64

REDIS_URL = "redis://127.0.0.1:6379/6"


def _counting(client) -> list:
    """Count the look pipeline's runs of one app: its query generation, the first stage after the cache."""
    engine = client.application.extensions[context.ENGINE]
    runs: list = []
    original = engine.query_generator.generate

    def generate(*args, **kwargs):
        runs.append(1)
        return original(*args, **kwargs)

    engine.query_generator.generate = generate
    return runs


def _together(clients, body) -> list:
    barrier = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def send(i):
        barrier.wait()
        resp = clients[i].application.test_client().post("/v1/looks/search", json=body)
        answers[i] = (resp.status_code, resp.get_json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


def _products(body):
    return {layer["layer"]: [p["product_id"] for p in layer["products"]] for layer in body["layers"]}


def test_identical_looks_at_once_are_computed_once_across_threads_and_workers(make_client, look):
    _, data, truth = look
    prefix = f"test-sf-{uuid.uuid4().hex}:"
    # two workers (apps with their own engine, as two gunicorn workers), one Redis
    workers = [make_client(cache=RedisCache(REDIS_URL, ttl_s=60, prefix=prefix)) for _ in range(2)]
    runs = [_counting(w) for w in workers]
    body = {"image_base64": b64(data), "market": truth["market"], "k": 3, "layers": ["topwear", "footwear"],
            "rerank": "local"}  # fmt: skip
    answers = _together([workers[i % 2] for i in range(8)], body)
    assert all(status == 200 for status, _ in answers), answers
    assert len(runs[0]) + len(runs[1]) == 1  # the engine ran once for eight requests on two workers
    bodies = [b for _, b in answers]
    assert sorted(b["cache"] for b in bodies) == ["hit"] * 7 + ["miss"]
    assert all(_products(b) == _products(bodies[0]) for b in bodies)
    waited = [b for b in bodies if "single_flight_wait" in b["timings_ms"]]
    assert len(waited) >= 1  # at least one request arrived while the first was computing
    lock_keys = list(workers[0].application.extensions[context.ENGINE].cache.client.scan_iter(prefix + "flight:*"))
    assert lock_keys == []  # released
    # a different look parameter is another key: computed again
    body["k"] = 2
    status, answer = _together([workers[0]], body)[0]
    assert status == 200 and answer["cache"] == "miss" and len(runs[0]) + len(runs[1]) == 2
