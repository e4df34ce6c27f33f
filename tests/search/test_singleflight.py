"""Single-flight (looksync/search/singleflight.py): identical work asked at the same time is computed once,
across threads (in-process) and across workers (a Redis lock on the real Redis at 127.0.0.1:6379), and
the others get its result; a failed or dead leader never strands a waiter."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

import pytest
import redis

from looksync.search.cache import RedisCache
from looksync.search.singleflight import SingleFlight

REDIS_URL = "redis://127.0.0.1:6379/6"


class Work:
    """A slow computation that stores its result where ``lookup`` finds it, counting its runs."""

    def __init__(self, cache, key: str, seconds: float = 0.3, store: bool = True):
        self.cache, self.key, self.seconds, self.store = cache, key, seconds, store
        self.runs = 0
        self._lock = threading.Lock()

    def compute(self):
        with self._lock:
            self.runs += 1
        time.sleep(self.seconds)
        result = {"answer": 42, "items": [1, 2, 3]}
        if self.store:
            self.cache.set(self.key, b"42")
        return result

    def lookup(self):
        return {"answer": 42, "items": [1, 2, 3]} if self.cache.get(self.key) == b"42" else None


def together(n: int, call) -> list:
    """``call(i)`` from ``n`` threads released at once; their results in order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.fixture
def cache():
    cache = RedisCache(REDIS_URL, ttl_s=60, prefix=f"test-sf-{uuid.uuid4().hex}:")
    yield cache
    for key in cache.client.scan_iter(cache.prefix + "*"):
        cache.client.delete(key)


def test_threads_of_one_process_compute_once(cache):
    flights = SingleFlight(timeout_s=10)  # in-process only
    work = Work(cache, "k")
    results = together(8, lambda i: flights.run("k", work.compute, work.lookup))
    assert work.runs == 1
    assert sorted(role for _, role in results) == ["leader"] + ["waited"] * 7
    assert all(result == {"answer": 42, "items": [1, 2, 3]} for result, _ in results)


def test_an_uncached_answer_is_shared_as_a_copy():
    flights = SingleFlight(timeout_s=10)
    work = Work(None, "k", store=False)  # the leader's answer is not cached (as a degraded answer is not)
    work.lookup = lambda: None
    results = together(6, lambda i: flights.run("k", work.compute, work.lookup))
    assert work.runs == 1
    assert sorted(role for _, role in results) == ["leader"] + ["shared"] * 5
    results[0][0]["items"].append(4)  # one caller changing its answer changes no other's
    assert sum(result["items"] == [1, 2, 3] for result, _ in results) == 5


def test_a_leader_alone_does_not_copy_its_answer(monkeypatch):
    """The snapshot for waiters is taken only when some caller waits: a look's answer costs milliseconds to copy."""
    import looksync.search.singleflight as module

    copies = []
    real = module.copy.deepcopy
    monkeypatch.setattr(module, "copy", SimpleNamespace(deepcopy=lambda value: copies.append(value) or real(value)))
    flights = SingleFlight(timeout_s=10)
    answer = {"items": [1, 2, 3]}
    assert flights.run("alone", lambda: answer, lambda: None) == (answer, "leader")
    assert copies == []
    work = Work(None, "k", store=False)
    work.lookup = lambda: None
    together(3, lambda i: flights.run("k", work.compute, work.lookup))
    assert work.runs == 1 and len(copies) == 1 + 2  # the snapshot, then one copy of it per waiter


def test_workers_sharing_redis_compute_once(cache):
    """Four 'workers' (each its own SingleFlight, as each gunicorn worker has) with four threads each."""
    workers = [SingleFlight(cache.client, timeout_s=10, prefix=cache.prefix + "flight:") for _ in range(4)]
    work = Work(cache, "look-key")
    results = together(16, lambda i: workers[i % 4].run("look-key", work.compute, work.lookup))
    assert work.runs == 1
    assert [role for _, role in results].count("leader") == 1
    assert all(result["answer"] == 42 for result, _ in results)
    assert cache.client.exists(cache.prefix + "flight:look-key") == 0  # the lock was released


def test_different_keys_do_not_wait_for_each_other(cache):
    flights = SingleFlight(cache.client, timeout_s=10, prefix=cache.prefix + "flight:")
    works = [Work(cache, f"k{i}", seconds=0.3) for i in range(4)]
    started = time.perf_counter()
    together(4, lambda i: flights.run(f"k{i}", works[i].compute, works[i].lookup))
    assert [w.runs for w in works] == [1, 1, 1, 1]
    assert time.perf_counter() - started < 1.0  # in parallel, not one after another (4 x 0.3 s)


def test_a_failed_leader_does_not_strand_the_waiters(cache):
    flights = SingleFlight(cache.client, timeout_s=10, prefix=cache.prefix + "flight:")
    work = Work(cache, "k", seconds=0.2)
    calls = []

    def compute():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.2)
            raise RuntimeError("the first computation fails")
        return work.compute()

    results = together(5, lambda i: _outcome(lambda: flights.run("k", compute, work.lookup)))
    assert sum(isinstance(r, RuntimeError) for r in results) == 1  # only the failing caller sees its error
    assert all(r[0]["answer"] == 42 for r in results if not isinstance(r, RuntimeError))
    assert work.runs >= 1 and cache.client.exists(cache.prefix + "flight:k") == 0


def _outcome(call):
    try:
        return call()
    except RuntimeError as exc:
        return exc


def test_a_lock_left_by_a_dead_worker_is_waited_for_at_most_its_timeout(cache):
    flights = SingleFlight(cache.client, timeout_s=0.5, prefix=cache.prefix + "flight:")
    cache.client.set(cache.prefix + "flight:k", "dead-worker", px=500)  # held, never released, no result
    work = Work(cache, "k", seconds=0.0)
    started = time.perf_counter()
    result, role = flights.run("k", work.compute, work.lookup)
    assert role == "leader" and work.runs == 1 and result["answer"] == 42
    assert 0.4 < time.perf_counter() - started < 3.0


def test_redis_down_computes_without_the_lock():
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    flights = SingleFlight(down, timeout_s=5)
    runs = []

    def compute():
        runs.append(1)
        time.sleep(0.3)
        return {"a": 1}

    results = together(4, lambda i: flights.run("k", compute, lambda: None))
    assert len(runs) == 1  # still one per process: the in-process flight needs no Redis
    assert all(result == {"a": 1} for result, _ in results)
