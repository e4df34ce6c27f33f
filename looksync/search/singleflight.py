"""Single-flight: one computation per key at a time, the other callers wait for its result.

Identical look queries sent together (the same image and parameters: the same cache key) would each run
the whole pipeline; with single-flight one caller (the leader) computes and the others wait:

- within a process, threads asking for a key that is in flight wait on the leader's flight, then read the
  cache; when the leader's answer was not cached (a degraded answer, or the cache is down) they take a
  copy of the leader's answer;
- across processes (gunicorn workers, replicas), when a Redis client is given, the leader holds a Redis
  lock (``SET key token NX PX ttl``, released only by its holder); a caller that finds the lock taken
  polls the cache until the result is there, the lock is released without one (it then competes for the
  lock again) or the lock's time-out passes (a leader that died: it then computes itself). A Redis error
  never fails a caller: it computes without the lock.

The time-out bounds every wait: a waiter never waits longer than ``timeout_s`` for a leader.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# delete the lock only when it still holds our token (a lock that expired and was taken by another
# worker is not ours to delete)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


@dataclass
class _Flight(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    failed: bool = False
    followers: int = 0  # callers of this process waiting on it (counted under SingleFlight._lock)


class SingleFlight:
    """``run(key, compute, lookup)``: the result of ``compute()`` for ``key``, computed once among the
    callers that ask at the same time. ``lookup()`` reads a result a leader stored (the cache); None when
    there is none. Returns (result, role): role ``leader`` (computed here), ``waited`` (found by
    ``lookup`` after waiting) or ``shared`` (a copy of this process's leader's uncached answer)."""

    def __init__(self, redis_client: Any = None, timeout_s: float = 30.0, poll_s: float = 0.02,
                 prefix: str = "looksync:flight:"):  # fmt: skip
        self.redis = redis_client
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.prefix = prefix
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, compute: Callable[[], T], lookup: Callable[[], T | None],
            across_workers: bool = True) -> tuple[T, str]:  # fmt: skip
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
            else:
                flight.followers += 1
        if not leader:
            return self._follow(flight, compute, lookup)
        try:
            result, role = self._lead(key, compute, lookup, across_workers and self.redis is not None)
            with self._lock:  # from here on no caller joins this flight
                self._flights.pop(key, None)
                followed = flight.followers > 0
            if followed:  # a snapshot for them: the caller may change its own answer (a look's: ~3-6 ms to copy)
                flight.result = copy.deepcopy(result)
            return result, role
        except BaseException:
            flight.failed = True
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _follow(self, flight: _Flight, compute: Callable[[], T], lookup: Callable[[], T | None]) -> tuple[T, str]:
        if flight.done.wait(self.timeout_s):
            found = lookup()
            if found is not None:
                return found, "waited"
            if not flight.failed:
                return copy.deepcopy(flight.result), "shared"
        # the leader failed or is still running past the time-out: compute here
        return compute(), "leader"

    def _lead(self, key: str, compute: Callable[[], T], lookup: Callable[[], T | None],
              across_workers: bool) -> tuple[T, str]:  # fmt: skip
        if not across_workers:
            return compute(), "leader"
        import redis

        lock_key = self.prefix + key
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                acquired = self.redis.set(lock_key, token, nx=True, px=max(1, int(self.timeout_s * 1000)))
            except redis.RedisError as exc:
                log.warning("single-flight lock unavailable, computing without it: %s", exc)
                return compute(), "leader"
            if acquired:
                try:
                    found = lookup()  # a worker may have finished between our cache miss and the lock
                    return (found, "waited") if found is not None else (compute(), "leader")
                finally:
                    try:
                        self.redis.eval(_RELEASE, 1, lock_key, token)
                    except redis.RedisError as exc:  # the lock expires by itself
                        log.warning("single-flight lock not released (expires in %.0f s): %s", self.timeout_s, exc)
            # another worker computes: wait for its result in the cache
            while True:
                found = lookup()
                if found is not None:
                    return found, "waited"
                if time.monotonic() >= deadline:
                    return compute(), "leader"
                try:
                    held = self.redis.exists(lock_key)
                except redis.RedisError:
                    return compute(), "leader"
                if not held:
                    break  # released or expired without a cached result: compete for the lock again
                time.sleep(self.poll_s)
