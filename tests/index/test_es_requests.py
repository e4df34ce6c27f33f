"""Request-shape tests of the Elasticsearch backend: the real ``elasticsearch`` 9.x client talks to a
loopback recorder (``tests/index/es_recorder.py``) that records what is sent and answers with scripted
JSON shaped after the elasticsearch-specification response types. These tests check what LookSync
sends, how often, and what it does with documented answers; they are NOT cluster tests (no
Elasticsearch runs here; the contract suite runs against a real cluster with LOOKSYNC_ES_URL)."""

from __future__ import annotations

import fnmatch
import itertools
import time

import pytest

from looksync.index import es_bodies as bodies
from looksync.index.base import IndexBackendError
from looksync.index.elasticsearch import ElasticsearchIndex, check_prefix
from looksync.settings import SettingsError, load_settings
from tests.index.conftest import drop_test_indices
from tests.index.es_recorder import RecorderServer, Request

SHARDS_OK = {"total": 1, "successful": 1, "failed": 0}  # specification/_types/Stats.ts ShardStatistics
META = {"model_id": "m", "dim": 4, "version": "v1", "created_at": "2026-01-01T00:00:00+00:00"}


@pytest.fixture
def recorder():
    with RecorderServer() as rec:
        yield rec


def _index(recorder, prefix: str = "shop", **settings) -> ElasticsearchIndex:
    """The backend as ``from_settings`` builds it: a short client request timeout (0.2 s, retry on
    timeout as configured), fast polling."""
    values = {"es_request_timeout_s": 0.2, "es_long_op_poll_s": 0.02, "es_long_op_timeout_s": 5.0, **settings}
    return ElasticsearchIndex.from_settings(load_settings(es_url=recorder.url, index_name=prefix, s3_bucket="snaps", **values))


def _versions(recorder, indices: dict[str, dict]) -> None:
    """``GET /<pattern>/_mapping`` answered for the named indices the pattern matches
    (specification/indices/get_mapping/IndicesGetMappingResponse.ts)."""

    def answer(request: Request):
        pattern = request.path.split("/")[1]
        return 200, {
            name: {"mappings": {"_meta": {"looksync": meta}, "properties": {}}}
            for name, meta in indices.items()
            if any(fnmatch.fnmatchcase(name, p) for p in pattern.split(","))
        }

    recorder.route("GET", r"/[^_/][^/]*/_mapping", answer)


# ---- long operations: sent once, own timeout, polled ----------------------------------------------


def test_force_merge_is_started_once_as_a_task_and_polled(recorder):
    index = _index(recorder)
    recorder.route("PUT", r"/shop--v1/_settings", (200, {"acknowledged": True}))
    recorder.route("POST", r"/shop--v1/_refresh", (200, {"_shards": SHARDS_OK}))
    # the start answers after 0.6 s, three times the client's request timeout
    recorder.route("POST", r"/shop--v1/_forcemerge", (200, {"_shards": SHARDS_OK, "task": "node-1:42"}), delay_s=0.6)
    polls = iter([False, False, True])
    recorder.route(
        "GET",
        r"/_tasks/node-1:42",
        lambda r: (200, {"completed": next(polls), "task": {"node": "node-1", "id": 42, "type": "transport"},
                         "response": {"_shards": SHARDS_OK}}),  # fmt: skip
    )

    index.end_bulk_load("v1")

    (merge,) = recorder.sent("POST", r"/shop--v1/_forcemerge")
    assert merge.query == {"max_num_segments": "1", "wait_for_completion": "false"}
    assert len(recorder.sent("GET", r"/_tasks/.*")) == 3


def test_a_force_merge_start_that_times_out_is_sent_once_and_reported(recorder):
    index = _index(recorder, es_long_op_timeout_s=0.3)
    recorder.route("PUT", r"/shop--v1/_settings", (200, {"acknowledged": True}))
    recorder.route("POST", r"/shop--v1/_refresh", (200, {"_shards": SHARDS_OK}))
    recorder.route("POST", r"/shop--v1/_forcemerge", (200, {"task": "n:1"}), delay_s=1.0)

    with pytest.raises(IndexBackendError, match="sent once, not retried"):
        index.end_bulk_load("v1")
    time.sleep(0.8)  # a retry, had there been one, would have arrived by now
    assert len(recorder.sent("POST", r"/shop--v1/_forcemerge")) == 1


def test_a_force_merge_task_that_fails_or_outlives_the_deadline_is_an_error(recorder):
    index = _index(recorder, es_long_op_timeout_s=0.2)
    recorder.route("POST", r"/shop--v1/_forcemerge", (200, {"task": "n:7"}))
    recorder.route("GET", r"/_tasks/n:7", (200, {"completed": False, "task": {"id": 7}}))
    with pytest.raises(IndexBackendError, match=r"still running after 0.2 s .*task n:7"):
        index._forcemerge("shop--v1")
    recorder.route("GET", r"/_tasks/n:7", (200, {"completed": True, "task": {"id": 7},
                                                 "error": {"type": "io_exception", "reason": "disk full"}}))  # fmt: skip
    with pytest.raises(IndexBackendError, match="disk full"):
        index._forcemerge("shop--v1")
    assert len(recorder.sent("POST", r"/shop--v1/_forcemerge")) == 2  # one per call


def _snapshot_routes(recorder, states: list[dict | None], create=(200, {"accepted": True}), create_delay=0.0):
    """``GET /_snapshot/snaps-repo/<name>`` answers in turn from ``states`` (None: no such snapshot, an
    empty list under ignore_unavailable, specification/snapshot/get/SnapshotGetResponse.ts), the last
    one repeated; ``PUT`` of the snapshot answers ``create``."""
    _versions(recorder, {"shop--v1": META})
    recorder.route("POST", r"/shop--v1/_count", (200, {"count": 3, "_shards": SHARDS_OK}))
    recorder.route("GET", r"/shop--v1/_count", (200, {"count": 3, "_shards": SHARDS_OK}))
    answers = iter(states)
    last: list[dict | None] = [None]

    def status(request: Request):
        last[0] = next(answers, last[0])
        snaps = [] if last[0] is None else [{"snapshot": request.path.rsplit("/", 1)[1], "uuid": "u", "data_streams": [], **last[0]}]
        return 200, {"snapshots": snaps, "total": len(snaps), "remaining": 0}

    recorder.route("GET", r"/_snapshot/looksync-snapshots/[^/]+", status)
    recorder.route("PUT", r"/_snapshot/looksync-snapshots/[^/]+", create, delay_s=create_delay)


def _snap(state: str, version: str = "v1") -> dict:
    return {"state": state, "indices": [f"shop--{version}"],
            "metadata": {**META, "version": version, "count": 3}}  # fmt: skip


def test_a_snapshot_is_created_once_without_waiting_and_polled_to_success(recorder):
    index = _index(recorder)
    _snapshot_routes(recorder, [None, _snap("IN_PROGRESS"), _snap("IN_PROGRESS"), _snap("SUCCESS")])

    info = index.snapshot("v1", name="nightly")

    (create,) = recorder.sent("PUT", r"/_snapshot/.*")
    assert create.path == "/_snapshot/looksync-snapshots/nightly"
    assert create.query == {"wait_for_completion": "false"}
    assert create.body["indices"] == "shop--v1" and create.body["include_global_state"] is False
    assert create.body["metadata"]["version"] == "v1" and create.body["metadata"]["count"] == 3
    assert all(r.query.get("ignore_unavailable") == "true" for r in recorder.sent("GET", r"/_snapshot/.*"))
    assert (info.name, info.version, info.count) == ("nightly", "v1", 3)


def test_a_second_snapshot_of_the_same_name_is_not_created_again(recorder):
    index = _index(recorder)
    _snapshot_routes(recorder, [_snap("SUCCESS")])
    assert index.snapshot("v1", name="nightly").name == "nightly"
    _snapshot_routes(recorder, [_snap("IN_PROGRESS"), _snap("SUCCESS")])  # a run still going: waited for
    assert index.snapshot("v1", name="nightly").version == "v1"
    assert recorder.sent("PUT", r"/_snapshot/.*") == []


def test_a_snapshot_name_holding_another_version_is_refused(recorder):
    index = _index(recorder)
    _snapshot_routes(recorder, [_snap("SUCCESS", version="v0")])
    with pytest.raises(IndexBackendError, match="already exists and holds version 'v0'"):
        index.snapshot("v1", name="nightly")
    assert recorder.sent("PUT", r"/_snapshot/.*") == []


def test_a_snapshot_create_that_times_out_is_not_sent_again_but_followed(recorder):
    index = _index(recorder, es_long_op_timeout_s=0.3)
    # the create request outlives its timeout, yet the cluster started the snapshot
    _snapshot_routes(recorder, [None, _snap("IN_PROGRESS"), _snap("SUCCESS")], create_delay=1.0)
    assert index.snapshot("v1", name="nightly").name == "nightly"
    time.sleep(0.8)
    assert len(recorder.sent("PUT", r"/_snapshot/.*")) == 1


def test_a_refused_create_with_no_snapshot_behind_it_is_an_error(recorder):
    index = _index(recorder)
    refused = (400, {"error": {"type": "invalid_snapshot_name_exception", "reason": "bad name"}, "status": 400})
    _snapshot_routes(recorder, [None], create=refused)
    with pytest.raises(IndexBackendError, match="invalid_snapshot_name_exception"):
        index.snapshot("v1", name="nightly")
    _snapshot_routes(recorder, [None, _snap("FAILED")])
    with pytest.raises(IndexBackendError, match="ended FAILED"):
        index.snapshot("v1", name="nightly")


def test_restore_is_one_request_under_the_long_timeout(recorder):
    index = _index(recorder)
    snap = {"snapshot": "nightly", "uuid": "u", "data_streams": [], **_snap("SUCCESS")}
    recorder.route("GET", r"/_snapshot/looksync-snapshots/nightly", (200, {"snapshots": [snap], "total": 1, "remaining": 0}))
    _versions(recorder, {})
    restored = {"snapshot": {"snapshot": "nightly", "indices": ["shop--v2"], "shards": SHARDS_OK}}
    recorder.route("POST", r"/_snapshot/looksync-snapshots/nightly/_restore", (200, restored), delay_s=0.6)
    recorder.route("POST", r"/shop--v2/_refresh", (200, {"_shards": SHARDS_OK}))
    recorder.route("POST", r"/shop--v2/_count", (200, {"count": 3}))
    recorder.route("GET", r"/shop--v2/_count", (200, {"count": 3}))

    assert index.restore("nightly", as_version="v2") == "v2"

    (sent,) = recorder.sent("POST", r".*/_restore")
    assert sent.query == {"wait_for_completion": "true"}
    assert sent.body["indices"] == "shop--v1" and sent.body["rename_replacement"] == "shop--v2"
    failed = {"snapshot": {"snapshot": "nightly", "indices": ["shop--v3"], "shards": {"total": 2, "successful": 1, "failed": 1}}}
    recorder.route("POST", r"/_snapshot/looksync-snapshots/nightly/_restore", (200, failed))
    with pytest.raises(IndexBackendError, match="1 shard"):
        index.restore("nightly", as_version="v3")


# ---- prefixes ---------------------------------------------------------------------------------------


def test_prefixes_that_extend_each_other_keep_their_own_versions_and_templates(recorder):
    indices = {"shop--v1": META, "shop-eu--v1": META, "shop-eu--v2": {**META, "version": "v2"}}
    _versions(recorder, indices)
    recorder.route("GET", r"/_alias/[^/]+", (404, {"error": "alias missing", "status": 404}))
    recorder.route("GET", r"/shop[^/]*/_count", (200, {"count": 0}))
    recorder.route("POST", r"/shop[^/]*/_count", (200, {"count": 0}))

    shop, shop_eu = _index(recorder, "shop"), _index(recorder, "shop-eu")
    assert [v.name for v in shop.list_versions()] == ["v1"]
    assert sorted(v.name for v in shop_eu.list_versions()) == ["v1", "v2"]
    assert {r.path for r in recorder.sent("GET", r".*/_mapping")} == {"/shop--*/_mapping", "/shop-eu--*/_mapping"}

    recorder.route("PUT", r"/_index_template/[^/]+", (200, {"acknowledged": True}))
    recorder.route("HEAD", r"/shop[^/]*", (404, {}))
    recorder.route("PUT", r"/shop[^/]*", (200, {"acknowledged": True, "index": "x"}))
    shop.create_version("m", 4, name="v9")
    shop_eu.create_version("m", 4, name="v9")
    templates = {r.path: r.body for r in recorder.sent("PUT", r"/_index_template/.*")}
    assert templates["/_index_template/shop"]["index_patterns"] == ["shop--*"]
    assert templates["/_index_template/shop-eu"]["index_patterns"] == ["shop-eu--*"]
    created = [r for r in recorder.sent("PUT") if not r.path.startswith("/_")]
    assert [r.path for r in created] == ["/shop--v9", "/shop-eu--v9"]
    assert created[0].body["settings"]["index"]["mapping"] == {"exclude_source_vectors": True}


def test_no_prefix_pattern_matches_another_prefixes_index():
    """Exhaustive over short prefixes of 'a', '-', '.': every accepted pair has disjoint patterns."""
    accepted = []
    for n in range(1, 6):
        for chars in itertools.product("a-.", repeat=n):
            try:
                accepted.append(check_prefix("".join(chars)))
            except IndexBackendError:
                pass
    assert "a-a" in accepted and "a--a" not in accepted and "a-" not in accepted and "-a" not in accepted
    versions = ["v1", "a", "a-b", "1.0", "x--y"]
    for a, b in itertools.product(accepted, repeat=2):
        pattern = bodies.index_pattern(a)
        for version in versions:
            assert fnmatch.fnmatchcase(f"{b}{bodies.SEPARATOR}{version}", pattern) == (a == b), (a, b, version)


@pytest.mark.parametrize("bad", ["Shop", "shop-", "shop--eu", "-shop", "_shop", "shop eu", "shop*", ""])
def test_ambiguous_or_invalid_prefixes_are_refused(bad):
    with pytest.raises(IndexBackendError, match="index name"):
        check_prefix(bad)


# ---- settings and cleanup ---------------------------------------------------------------------------


@pytest.mark.parametrize("value,ok", [(0, True), (1.0, True), (3, True), (10.0, True), (0.5, False), (0.99, False),
                                      (10.01, False), (-1, False)])  # fmt: skip
def test_rescore_oversample_is_zero_or_one_to_ten(value, ok, recorder):
    if ok:
        assert load_settings(es_rescore_oversample=value).es_rescore_oversample == value
        assert _index(recorder, es_rescore_oversample=value).rescore_oversample == value
        return
    with pytest.raises(SettingsError, match="LOOKSYNC_ES_RESCORE_OVERSAMPLE"):
        load_settings(es_rescore_oversample=value)
    with pytest.raises(IndexBackendError, match="oversample"):
        ElasticsearchIndex(object(), "shop", rescore_oversample=value)


def test_test_cleanup_deletes_indices_by_name_only(recorder):
    recorder.route("GET", r"/looksync-test-ab--\*", (200, {"looksync-test-ab--v1": {}, "looksync-test-ab--v2": {}}))
    recorder.route("DELETE", r"/[^/]+", (200, {"acknowledged": True}))
    from elasticsearch import Elasticsearch

    assert drop_test_indices(Elasticsearch(recorder.url), "looksync-test-ab") == ["looksync-test-ab--v1", "looksync-test-ab--v2"]
    (delete,) = recorder.sent("DELETE")
    assert delete.path == "/looksync-test-ab--v1,looksync-test-ab--v2" and "*" not in delete.path
    assert "expand_wildcards" not in delete.query


# ---- looksync index register-repository (what the compose es-init container runs) -------------------


def test_register_repository_waits_for_the_cluster_then_registers_once(recorder, monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main

    answers = iter([(503, {"error": {"type": "master_not_discovered_exception"}, "status": 503}),
                    (408, {"cluster_name": "looksync", "status": "red", "timed_out": True})])  # fmt: skip
    recorder.route(
        "GET",
        r"/_cluster/health",
        lambda r: next(answers, (200, {"cluster_name": "looksync", "status": "yellow", "timed_out": False})),
    )
    recorder.route("PUT", r"/_snapshot/looksync-snapshots", (200, {"acknowledged": True}))
    for key, value in {"LOOKSYNC_ES_URL": recorder.url, "LOOKSYNC_S3_BUCKET": "snaps", "LOOKSYNC_S3_PREFIX": "prod",
                       }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("looksync.index.elasticsearch.time.sleep", lambda s: None)

    result = CliRunner().invoke(main, ["index", "register-repository", "--wait-s", "30"])

    assert result.exit_code == 0, result.output
    assert "cluster looksync is yellow" in result.output
    health = recorder.sent("GET", r"/_cluster/health")
    assert len(health) == 3 and health[0].query["wait_for_status"] == "yellow"
    (put,) = recorder.sent("PUT", r"/_snapshot/.*")
    assert put.query == {"verify": "true"}
    assert put.body == {"type": "s3", "settings": {"bucket": "snaps", "base_path": "prod/es-snapshots",
                                                   "client": "default", "compress": True}}  # fmt: skip


def test_register_repository_reports_a_cluster_that_never_gets_ready(recorder, monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main

    recorder.route("GET", r"/_cluster/health", (408, {"status": "red", "timed_out": True}))
    monkeypatch.setenv("LOOKSYNC_ES_URL", recorder.url)
    monkeypatch.setenv("LOOKSYNC_S3_BUCKET", "snaps")
    result = CliRunner().invoke(main, ["index", "register-repository", "--wait-s", "1"])
    assert result.exit_code == 1 and "not ready (yellow) within 1 s; last: status red" in result.output
    assert recorder.sent("PUT") == []
    no_es = CliRunner().invoke(main, ["index", "register-repository"], env={"LOOKSYNC_ES_URL": ""})
    assert no_es.exit_code == 1 and "LOOKSYNC_ES_URL" in no_es.output


def test_index_creation_and_the_alias_move_are_sent_once(recorder):
    """Neither is idempotent: a create retried after a timeout fails as 'already exists', so both go
    out once even when the answer is slower than the client's request timeout (0.2 s here)."""
    index = _index(recorder)
    recorder.route("PUT", r"/_index_template/shop", (200, {"acknowledged": True}))
    recorder.route("HEAD", r"/shop--v1", (404, {}))
    recorder.route("PUT", r"/shop--v1", (200, {"acknowledged": True, "index": "shop--v1"}), delay_s=0.6)
    assert index.create_version("m", 4, name="v1") == "v1"
    assert len(recorder.sent("PUT", r"/shop--v1")) == 1

    _versions(recorder, {"shop--v1": META})
    recorder.route("GET", r"/_alias/shop(--shadow)?", (404, {"error": "alias missing", "status": 404}))
    recorder.route("POST", r"/_aliases", (200, {"acknowledged": True}), delay_s=0.6)
    index.set_live("v1")
    (move,) = recorder.sent("POST", r"/_aliases")
    assert move.body == {"actions": [{"add": {"index": "shop--v1", "alias": "shop", "is_write_index": True}}]}


def test_shadow_is_an_alias_of_its_own_and_promotion_moves_both_in_one_call(recorder):
    """The shadow version is ``<prefix>--shadow`` (read-only: no write index); promoting it moves the live
    alias and removes the shadow alias in one ``POST /_aliases`` (atomic in Elasticsearch)."""
    index = _index(recorder)
    _versions(recorder, {"shop--v1": META, "shop--v2": META})
    recorder.route("GET", r"/_alias/shop", (200, {"shop--v1": {"aliases": {"shop": {}}}}))
    recorder.route("GET", r"/_alias/shop--shadow", (404, {"error": "alias missing", "status": 404}))
    recorder.route("POST", r"/_aliases", (200, {"acknowledged": True}))
    assert index.shadow_version() is None
    index.set_shadow("v2")
    (mark,) = recorder.sent("POST", r"/_aliases")
    assert mark.body == {"actions": [{"add": {"index": "shop--v2", "alias": "shop--shadow"}}]}
    with pytest.raises(IndexBackendError, match="is live"):
        index.set_shadow("v1")
    with pytest.raises(IndexBackendError, match="reserved"):
        index.create_version("m", 4, name="shadow")

    recorder.route("GET", r"/_alias/shop--shadow", (200, {"shop--v2": {"aliases": {"shop--shadow": {}}}}))
    assert index.shadow_version() == "v2"
    assert index.promote_shadow() == ("v1", "v2")
    promote = recorder.sent("POST", r"/_aliases")[-1]
    assert promote.body == {"actions": [
        {"remove": {"index": "shop--v2", "alias": "shop--shadow"}},
        {"remove": {"index": "shop--v1", "alias": "shop"}},
        {"add": {"index": "shop--v2", "alias": "shop", "is_write_index": True}},
    ]}  # fmt: skip
    index.set_shadow(None)
    assert recorder.sent("POST", r"/_aliases")[-1].body == {"actions": [{"remove": {"index": "shop--v2", "alias": "shop--shadow"}}]}
