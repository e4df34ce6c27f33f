"""The Elasticsearch catalog index (scale-out), with the official ``elasticsearch`` 9.x client.

Each index version is one Elasticsearch index ``<index_name>-<version>`` whose mapping ``_meta`` records
its model id and vector size; the alias ``<index_name>`` names the live one and moves with a single
atomic ``_aliases`` call. Searches are top-level ``knn`` with the filters inside (pre-filtered), the
vector left out of ``_source``. Writes go through ``streaming_bulk`` (chunked, 429s retried with
backoff) and every failed document is reported. Snapshots go to a registered ``s3`` repository.
Request bodies come from ``es_bodies`` (pure functions, unit-tested without a server).
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from looksync.catalog.schema import Product
from looksync.index import es_bodies as bodies
from looksync.index.base import (
    BulkResult,
    CatalogIndex,
    Hit,
    IndexBackendError,
    SearchFilters,
    SnapshotInfo,
    VersionInfo,
)
from looksync.index.vectors import NORM_TOLERANCE, query_vector, vector_problem
from looksync.settings import Settings

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")  # Elasticsearch index names are lowercase
# An index version is ``<prefix>--<version>``. A prefix may not contain "--" nor end with "-" and a version
# starts with a letter or digit, so no prefix's pattern ``<prefix>--*`` matches another prefix's index
# (``shop--*`` never matches ``shop-eu--v1``): templates of two prefixes never overlap (overlapping
# patterns at one priority are refused, elasticsearch-specification
# specification/indices/put_index_template/IndicesPutIndexTemplateRequest.ts, "Multiple matching
# templates") and each prefix lists only its own versions.
SEPARATOR = bodies.SEPARATOR
SHADOW = "shadow"  # <prefix>--shadow is the shadow version's alias, so no version takes this name
_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9._]|-(?!-))*(?<!-)$")
# index creation and the alias move are not idempotent: sent once (no retry on a timeout) under this timeout
ONE_SHOT_TIMEOUT_S = 120.0
SNAPSHOT_DONE = ("SUCCESS", "FAILED", "PARTIAL", "INCOMPATIBLE")  # specification/snapshot/_types/SnapshotState.ts


def check_prefix(prefix: str) -> str:
    """The index-name prefix (LOOKSYNC_INDEX_NAME): lowercase letters, digits, '.', '_', '-', starting
    with a letter or digit, without "--" and not ending with "-" (the version separator is "--")."""
    if not _PREFIX.match(prefix or "") or len(prefix) > 100:
        raise IndexBackendError(
            f"index name {prefix!r}: Elasticsearch index prefixes are lowercase letters, digits, '.', '_', '-', "
            "start with a letter or digit, contain no '--' and do not end with '-' (versions are <name>--<version>)"
        )
    return prefix


def _model_slug(model_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")[:40] or "model"


class ElasticsearchIndex(CatalogIndex):
    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        vector_options: bodies.VectorOptions | None = None,
        candidates_per_k: int = 10,
        rescore_oversample: float = 3.0,
        shards: int = 1,
        replicas: int = 1,
        refresh_interval: str = "1s",
        chunk_size: int = 500,
        max_retries: int = 5,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        snapshot_repository: str = "looksync-snapshots",
        snapshot_bucket: str | None = None,
        snapshot_base_path: str = "looksync/es-snapshots",
        snapshot_s3_client: str = "default",
        norm_tolerance: float = NORM_TOLERANCE,
        long_op_timeout_s: float = 7200.0,
        long_op_poll_s: float = 5.0,
    ):
        self.client = client
        self.alias = check_prefix(prefix)
        self.vector_options = vector_options = vector_options or bodies.VectorOptions()
        self.candidates_per_k = candidates_per_k
        oversample = bodies.check_oversample(rescore_oversample)
        self.rescore_oversample = oversample if vector_options.index_type != "hnsw" else 0.0  # raw vectors: nothing to re-score
        self.shards, self.replicas, self.refresh_interval = shards, replicas, refresh_interval
        self.chunk_size, self.max_retries = chunk_size, max_retries
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self.snapshot_repository = snapshot_repository
        self.snapshot_bucket, self.snapshot_base_path = snapshot_bucket, snapshot_base_path
        self.snapshot_s3_client = snapshot_s3_client
        self.norm_tolerance = norm_tolerance
        self.long_op_timeout_s, self.long_op_poll_s = long_op_timeout_s, long_op_poll_s
        self._loading: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchIndex:
        from elasticsearch import Elasticsearch

        if not settings.es_url:
            raise IndexBackendError("the elasticsearch index backend needs LOOKSYNC_ES_URL")
        auth: dict[str, Any] = {}
        if settings.es_api_key:
            auth["api_key"] = settings.es_api_key.get_secret_value()
        elif settings.es_username:
            password = settings.es_password.get_secret_value() if settings.es_password else ""
            auth["basic_auth"] = (settings.es_username, password)
        client = Elasticsearch(
            settings.es_url,
            verify_certs=settings.es_verify_certs,
            request_timeout=settings.es_request_timeout_s,
            retry_on_timeout=True,
            **auth,
        )
        return cls(
            client,
            settings.index_name,
            vector_options=bodies.VectorOptions(
                similarity=settings.es_similarity,
                index_type=settings.es_vector_index_type,
                m=settings.es_hnsw_m,
                ef_construction=settings.es_hnsw_ef_construction,
            ),
            candidates_per_k=settings.index_candidates_per_k,
            rescore_oversample=settings.es_rescore_oversample,
            shards=settings.es_shards,
            replicas=settings.es_replicas,
            refresh_interval=settings.es_refresh_interval,
            chunk_size=settings.es_bulk_chunk_size,
            max_retries=settings.es_bulk_max_retries,
            initial_backoff_s=settings.es_bulk_initial_backoff_s,
            max_backoff_s=settings.es_bulk_max_backoff_s,
            snapshot_repository=settings.es_snapshot_repository,
            snapshot_bucket=settings.s3_bucket,
            snapshot_base_path=f"{settings.s3_prefix.strip('/')}/es-snapshots",
            snapshot_s3_client=settings.es_snapshot_s3_client,
            long_op_timeout_s=settings.es_long_op_timeout_s,
            long_op_poll_s=settings.es_long_op_poll_s,
        )

    def __repr__(self) -> str:
        return f"ElasticsearchIndex(alias={self.alias!r})"

    def index_of(self, version: str) -> str:
        return f"{self.alias}{SEPARATOR}{version}"

    def version_of(self, index: str) -> str | None:
        """The version an index name holds, or None for an index of another prefix."""
        head = f"{self.alias}{SEPARATOR}"
        return index[len(head) :] if index.startswith(head) and _VERSION_NAME.match(index[len(head) :]) else None

    @property
    def index_pattern(self) -> str:
        return bodies.index_pattern(self.alias)

    def _once(self, request_timeout_s: float | None = None) -> Any:
        """The client for a call that must be sent exactly once (no retry on a timeout or a 5xx: a
        force-merge, snapshot or restore sent again would start again or fail as a duplicate, an index
        created twice fails), with its own timeout (default: the long-operation one) instead of the
        client's request timeout."""
        return self.client.options(
            request_timeout=request_timeout_s or self.long_op_timeout_s, max_retries=0, retry_on_timeout=False
        )

    # ---- versions -------------------------------------------------------------------------------

    def create_version(self, model_id: str, dim: int, name: str | None = None) -> str:
        if not model_id:
            raise IndexBackendError("create_version: model_id is required")
        if not isinstance(dim, int) or dim < 1:
            raise IndexBackendError(f"create_version: dim must be a positive integer, got {dim!r}")
        now = datetime.now(UTC)
        name = name or f"v{now:%Y%m%dt%H%M%S%f}z-{_model_slug(model_id)}"
        if not _VERSION_NAME.match(name):
            raise IndexBackendError(f"version name {name!r}: use lowercase letters, digits, '.', '_' or '-'")
        if name == SHADOW:
            raise IndexBackendError(f"version name {name!r} is reserved: {self.shadow_alias} is the shadow alias")
        body = bodies.index_body(
            model_id, dim, name, now.isoformat(timespec="microseconds"), self.vector_options, self.shards, self.replicas
        )
        with self._errors(f"create index {self.index_of(name)}"):
            template = bodies.index_template_body(self.alias, self.vector_options)
            self.client.indices.put_index_template(
                name=self.alias,
                index_patterns=template["index_patterns"],
                priority=template["priority"],
                template=template["template"],
                meta=template["_meta"],
            )
            if self.client.indices.exists(index=self.index_of(name)):
                raise IndexBackendError(f"version {name!r} already exists ({self.index_of(name)})")
            # not idempotent (a second create of the index fails): sent once, like the alias move below
            self._once(ONE_SHOT_TIMEOUT_S).indices.create(index=self.index_of(name), **body)
        log.info("index version created", extra={"version": name, "model_id": model_id, "dim": dim})
        return name

    def _versions(self) -> dict[str, dict[str, Any]]:
        """version name -> its _meta (model_id, dim, created_at), for every index under the prefix."""
        from elasticsearch import NotFoundError

        try:
            mappings = self.client.indices.get_mapping(index=self.index_pattern, expand_wildcards="open")
        except NotFoundError:
            return {}
        except Exception as exc:
            raise IndexBackendError(f"{self!r}: cannot list index versions: {exc}") from exc
        found = {}
        for index, body in dict(mappings).items():
            meta = (body.get("mappings", {}).get("_meta") or {}).get(bodies.META_KEY)
            version = self.version_of(index)
            if meta and version is not None:
                found[version] = meta
        return found

    def _meta(self, version: str | None) -> tuple[str, dict[str, Any]]:
        name = version if version is not None else self.live_version()
        if name is None:
            raise IndexBackendError(f"{self!r}: no live index version; create one and call set_live")
        versions = self._versions()
        if name not in versions:
            raise IndexBackendError(f"{self!r}: no index version {name!r}; known: {sorted(versions)}")
        return name, versions[name]

    @property
    def shadow_alias(self) -> str:
        """The alias naming the shadow version: ``<prefix>--shadow`` (no prefix holds '--', and no
        version may be called ``shadow``, so it names nothing else)."""
        return f"{self.alias}{SEPARATOR}{SHADOW}"

    def _aliased(self, alias: str) -> list[str]:
        """The indices ``alias`` points at ([] when it does not exist)."""
        from elasticsearch import NotFoundError

        try:
            return list(dict(self.client.indices.get_alias(name=alias)))
        except NotFoundError:
            return []
        except Exception as exc:
            raise IndexBackendError(f"{self!r}: cannot read the alias {alias}: {exc}") from exc

    def _aliased_version(self, alias: str) -> str | None:
        indices = self._aliased(alias)
        if not indices:
            return None
        if len(indices) != 1:
            raise IndexBackendError(f"alias {alias!r} points at {len(indices)} indices: {sorted(indices)}")
        version = self.version_of(indices[0])
        if version is None:
            raise IndexBackendError(f"alias {alias!r} points at {indices[0]!r}, not a version of {self.index_pattern!r}")
        return version

    def live_version(self) -> str | None:
        return self._aliased_version(self.alias)

    def shadow_version(self) -> str | None:
        return self._aliased_version(self.shadow_alias)

    def set_live(self, version: str) -> None:
        versions = self._versions()
        if version not in versions:
            raise IndexBackendError(f"{self!r}: cannot make {version!r} live: no such version; known: {sorted(versions)}")
        current = self._aliased(self.alias)
        actions = bodies.alias_actions(self.alias, self.index_of(version), current)
        if self.index_of(version) in self._aliased(self.shadow_alias):  # promoted: unmarked in the same call
            actions.insert(0, {"remove": {"index": self.index_of(version), "alias": self.shadow_alias}})
        with self._errors(f"move alias {self.alias} to {version}"):
            self._once(ONE_SHOT_TIMEOUT_S).indices.update_aliases(actions=actions)
        log.info("index live version swapped", extra={"version": version, "previous": current})

    def set_shadow(self, version: str | None) -> None:
        current = self._aliased(self.shadow_alias)
        if version is None:
            actions = [{"remove": {"index": old, "alias": self.shadow_alias}} for old in current]
        else:
            self._meta(version)  # IndexBackendError when there is no such version
            if version == self.live_version():
                raise IndexBackendError(f"{self!r}: {version} is live; a shadow version is a candidate beside live")
            actions = bodies.alias_actions(self.shadow_alias, self.index_of(version), current, write_index=False)
        if actions:
            with self._errors(f"move alias {self.shadow_alias} to {version}"):
                self._once(ONE_SHOT_TIMEOUT_S).indices.update_aliases(actions=actions)
        log.info("index shadow version set", extra={"version": version, "previous": current})

    def list_versions(self) -> list[VersionInfo]:
        live, shadow = self.live_version(), self.shadow_version()
        infos = [
            VersionInfo(
                name=name,
                model_id=meta["model_id"],
                dim=int(meta["dim"]),
                count=self.count(name),
                live=name == live,
                created_at=meta["created_at"],
                shadow=name == shadow,
            )
            for name, meta in self._versions().items()
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.name))

    def prune(self, keep: int) -> list[str]:
        if keep < 0:
            raise IndexBackendError(f"prune: keep must be >= 0, got {keep}")
        live = self.live_version()
        newest = sorted(self._versions().items(), key=lambda kv: (kv[1]["created_at"], kv[0]), reverse=True)
        kept = {name for name, _ in newest[:keep]} | {live, self.shadow_version()}
        dropped = [name for name, _ in reversed(newest) if name not in kept]
        for name in dropped:  # deleting an index removes its aliases with it
            with self._errors(f"delete index {self.index_of(name)}"):
                self.client.indices.delete(index=self.index_of(name))
        if dropped:
            log.info("index versions pruned", extra={"dropped": dropped, "keep": keep})
        return dropped

    def drop_version(self, version: str) -> None:
        if version == self.live_version():
            raise IndexBackendError(f"drop version: {version} is live; make another version live first")
        self._meta(version)  # IndexBackendError when there is no such version
        with self._errors(f"delete index {self.index_of(version)}"):
            self.client.indices.delete(index=self.index_of(version))
        log.info("index version dropped", extra={"version": version})

    # ---- bulk load ------------------------------------------------------------------------------

    def begin_bulk_load(self, version: str) -> None:
        """No refreshes and no replicas while a new version loads."""
        self._meta(version)
        with self._errors(f"set bulk-load settings on {version}"):
            self.client.indices.put_settings(index=self.index_of(version), settings=bodies.bulk_load_settings())
        self._loading.add(version)

    def end_bulk_load(self, version: str) -> None:
        """Restore refreshes and replicas, refresh, and force-merge to one segment per shard."""
        index = self.index_of(version)
        with self._errors(f"finish the bulk load of {version}"):
            self.client.indices.put_settings(
                index=index, settings=bodies.serving_settings(self.refresh_interval, self.replicas)
            )
            self.client.indices.refresh(index=index)
        self._forcemerge(index)
        self._loading.discard(version)

    def _forcemerge(self, index: str) -> None:
        """Force-merge ``index`` to one segment per shard: started once as a task
        (``wait_for_completion=false`` returns ``task``, specification/indices/forcemerge/_types/response.ts),
        then the task is polled (``GET _tasks/<id>``, specification/tasks/get/GetTaskResponse.ts) until it
        completes or LOOKSYNC_ES_LONG_OP_TIMEOUT_S passes. The start is never sent again: a merge whose
        request timed out goes on in the background and a second one would queue behind it."""
        with self._errors(f"start the force-merge of {index} (sent once, not retried)"):
            started = self._once().indices.forcemerge(index=index, max_num_segments=1, wait_for_completion=False)
        task = dict(started).get("task")
        if not task:
            raise IndexBackendError(f"{self!r}: force-merge of {index} started without a task id: {dict(started)}")
        deadline = time.monotonic() + self.long_op_timeout_s
        while True:
            with self._errors(f"read the force-merge task {task} of {index}"), warnings.catch_warnings():
                # the task API is "experimental" in the specification (specification/tasks/get/GetTaskRequest.ts);
                # the client warns on every call
                warnings.filterwarnings("ignore", message=".*technical preview.*")
                status = dict(self.client.tasks.get(task_id=task))
            if status.get("completed"):
                failed = ((status.get("response") or {}).get("_shards") or {}).get("failed", 0)
                if status.get("error") or failed:
                    raise IndexBackendError(
                        f"{self!r}: force-merge of {index} failed: {status.get('error') or status.get('response')}"
                    )
                return
            if time.monotonic() >= deadline:
                raise IndexBackendError(
                    f"{self!r}: force-merge of {index} still running after {self.long_op_timeout_s:g} s "
                    f"(LOOKSYNC_ES_LONG_OP_TIMEOUT_S); it goes on in the cluster as task {task}"
                )
            time.sleep(self.long_op_poll_s)

    # ---- writes ---------------------------------------------------------------------------------

    def upsert(self, version: str, products: Sequence[Product], vectors: np.ndarray) -> BulkResult:
        name, meta = self._meta(version)
        if len(vectors) != len(products):
            raise IndexBackendError(f"{version}: {len(products)} products but {len(vectors)} vectors")
        result = BulkResult()
        docs: dict[str, dict[str, Any]] = {}
        for product, vector in zip(products, vectors, strict=True):
            reason = vector_problem(vector, int(meta["dim"]), self.norm_tolerance)
            if reason is None and product.model_id and product.model_id != meta["model_id"]:
                reason = f"vector of model {product.model_id!r}; version {version} holds {meta['model_id']!r}"
            if reason is not None:
                result.failures.append((product.product_id, reason))
                continue
            docs.pop(product.product_id, None)  # a product twice in one batch: the last row wins
            docs[product.product_id] = bodies.document(product.model_dump(mode="json"), meta["model_id"], vector)
        written, failures = self._bulk(name, bodies.index_actions(self.index_of(name), docs.items()))
        result.written, result.failures = written, result.failures + failures
        return result

    def update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        name, meta = self._meta(version)
        latest = {p.product_id: p for p in products}
        stored = self._mget(name, list(latest), ["image_hash"])
        result = BulkResult()
        updates: list[tuple[str, dict[str, Any]]] = []
        for product_id, product in latest.items():
            old = stored.get(product_id)
            if old is None:
                reason = f"not in version {version}"
            elif product.model_id and product.model_id != meta["model_id"]:
                reason = f"model {product.model_id!r} differs from the version's {meta['model_id']!r}"
            elif product.image_hash and old.get("image_hash") and product.image_hash != old["image_hash"]:
                reason = (
                    f"image changed ({old['image_hash'][:12]} -> {product.image_hash[:12]}): re-embed it and upsert instead"
                )
            else:
                fields = product.model_dump(mode="json")
                fields.pop("model_id")
                fields["image_hash"] = product.image_hash or old.get("image_hash")
                updates.append((product_id, fields))
                continue
            result.failures.append((product_id, reason))
        written, failures = self._bulk(name, bodies.update_actions(self.index_of(name), updates))
        result.written, result.failures = written, result.failures + failures
        return result

    def delete(self, version: str, product_ids: Sequence[str]) -> int:
        name, _ = self._meta(version)
        deleted = 0
        failures = []
        for ok, item in self._stream(name, bodies.delete_actions(self.index_of(name), dict.fromkeys(product_ids))):
            info = item.get("delete", {})
            if ok and info.get("result") == "deleted":
                deleted += 1
            elif info.get("status") != 404:
                failures.append(bodies.bulk_item_failure(item))
        self._refresh(name)
        if failures:
            raise IndexBackendError(f"delete from {version}: {len(failures)} failed, e.g. {failures[:3]}")
        return deleted

    def _stream(self, version: str, actions: Iterable[dict[str, Any]]) -> Iterable[tuple[bool, dict[str, Any]]]:
        from elasticsearch.helpers import streaming_bulk

        try:
            yield from streaming_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_retries=self.max_retries,  # 429s: retried with exponential backoff
                initial_backoff=self.initial_backoff_s,
                max_backoff=self.max_backoff_s,
                raise_on_error=False,
                raise_on_exception=False,
            )
        except Exception as exc:
            raise IndexBackendError(f"bulk write to {self.index_of(version)}: {exc}") from exc

    def _bulk(self, version: str, actions: Iterable[dict[str, Any]]) -> tuple[int, list[tuple[str, str]]]:
        written, failures = 0, []
        for ok, item in self._stream(version, actions):
            if ok:
                written += 1
            else:
                failures.append(bodies.bulk_item_failure(item))
        if written or failures:
            self._refresh(version)
        for product_id, reason in failures[:20]:
            log.warning("index write failed", extra={"version": version, "product_id": product_id, "reason": reason})
        return written, failures

    def _refresh(self, version: str) -> None:
        if version not in self._loading:  # during a bulk load, searches need not see the rows yet
            with self._errors(f"refresh {self.index_of(version)}"):
                self.client.indices.refresh(index=self.index_of(version))

    # ---- reads ----------------------------------------------------------------------------------

    def _mget(self, version: str, ids: list[str], fields: list[str] | None = None) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        params: dict[str, Any] = {"_source_includes": fields} if fields else {"_source_excludes": [bodies.VECTOR_FIELD]}
        with self._errors(f"read {len(ids)} products from {version}"):
            response = self.client.mget(index=self.index_of(version), ids=ids, **params)
        return {d["_id"]: d["_source"] for d in response["docs"] if d.get("found")}

    def get(self, product_id: str, version: str | None = None) -> dict[str, Any] | None:
        name, _ = self._meta(version)
        found = self._mget(name, [product_id]).get(product_id)
        return self._product(found) if found is not None else None

    @staticmethod
    def _product(source: dict[str, Any]) -> dict[str, Any]:
        source.pop(bodies.VECTOR_FIELD, None)
        return source

    def count(self, version: str | None = None) -> int:
        name = version if version is not None else self._meta(None)[0]
        with self._errors(f"count {name}"):
            return int(self.client.count(index=self.index_of(name))["count"])

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: SearchFilters | None = None,
        num_candidates: int | None = None,
        version: str | None = None,
    ) -> list[Hit]:
        if k < 1:
            raise IndexBackendError(f"search: k must be >= 1, got {k}")
        name, meta = self._meta(version)
        query = query_vector(vector, int(meta["dim"]))
        candidates = bodies.num_candidates(k, self.candidates_per_k, num_candidates)
        body = bodies.knn_search_body(query, k, candidates, filters, self.rescore_oversample)
        with self._errors(f"search {name} (k={k})"):
            response = self.client.search(index=self.index_of(name), **body)
        similarity = self.vector_options.similarity
        return [
            Hit(
                product_id=h["_id"],
                score=bodies.cosine_from_score(h["_score"], similarity),
                product=self._product(h["_source"]),
            )
            for h in response["hits"]["hits"]
        ]

    def stats(self) -> dict[str, Any]:
        versions = []
        for info in self.list_versions():
            with self._errors(f"stats of {info.name}"):
                raw = self.client.indices.stats(index=self.index_of(info.name), metric=["docs", "store", "segments"])
            total = raw["indices"][self.index_of(info.name)]["primaries"]
            versions.append(
                {
                    "name": info.name,
                    "model_id": info.model_id,
                    "dim": info.dim,
                    "count": info.count,
                    "live": info.live,
                    "created_at": info.created_at,
                    "index": self.index_of(info.name),
                    "bytes": total["store"]["size_in_bytes"],
                    "segments": total["segments"]["count"],
                }
            )
        return {"backend": "elasticsearch", "alias": self.alias, "live": self.live_version(), "versions": versions}

    # ---- snapshots ------------------------------------------------------------------------------

    def wait_for_cluster(self, timeout_s: float, poll_s: float = 2.0) -> dict[str, Any]:
        """Wait until the cluster answers with status yellow or green (``GET _cluster/health?wait_for_status=yellow``,
        specification/cluster/health/ClusterHealthRequest.ts; a wait that times out answers 408 with
        ``timed_out: true``, ClusterHealthResponse.ts); connection errors while it starts are retried.
        Returns the health body; past ``timeout_s`` an ``IndexBackendError`` says the last state seen."""
        deadline = time.monotonic() + timeout_s
        last: Any = "no answer"
        while True:
            wait_s = max(1, min(10, int(deadline - time.monotonic())))
            try:
                health = dict(
                    self.client.options(ignore_status=408, request_timeout=wait_s + 5, max_retries=0).cluster.health(
                        wait_for_status="yellow", timeout=f"{wait_s}s"
                    )
                )
                if not health.get("timed_out") and health.get("status") in ("yellow", "green"):
                    return health
                last = f"status {health.get('status')}"
            except Exception as exc:  # the node is still starting: connection refused, 503, timeout
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise IndexBackendError(f"{self!r}: the cluster was not ready (yellow) within {timeout_s:g} s; last: {last}")
            time.sleep(poll_s)

    def register_snapshot_repository(self, verify: bool = True) -> dict[str, Any]:
        """Register (or update) the ``s3`` repository snapshots go to; returns the body sent."""
        body = bodies.s3_repository_body(self.snapshot_bucket or "", self.snapshot_base_path, self.snapshot_s3_client)
        with self._errors(f"register snapshot repository {self.snapshot_repository}"):
            self.client.snapshot.create_repository(name=self.snapshot_repository, repository=body, verify=verify)
        return body

    def snapshot_repository_exists(self) -> bool:
        from elasticsearch import NotFoundError

        try:
            self.client.snapshot.get_repository(name=self.snapshot_repository)
            return True
        except NotFoundError:
            return False

    def snapshot(self, version: str | None = None, name: str | None = None) -> SnapshotInfo:
        """Snapshot one version into the repository, idempotently: the snapshot's status is read first
        (a snapshot of this version under this name that exists or is running is waited for, not created
        again: a second create of an existing name fails on a cluster), then the create is sent once with
        ``wait_for_completion=false`` (specification/snapshot/create/SnapshotCreateRequest.ts) and the
        snapshot's state polled (``GET _snapshot/<repo>/<name>``, specification/snapshot/_types/SnapshotInfo.ts)
        until it leaves IN_PROGRESS or LOOKSYNC_ES_LONG_OP_TIMEOUT_S passes."""
        version, meta = self._meta(version)
        now = datetime.now(UTC)
        name = name or f"{version}~{now:%Y%m%dt%H%M%S%f}z"
        where = f"{self.snapshot_repository}/{name}"
        existing = self._snapshot_status(name)
        if existing is None:
            count = self.count(version)
            metadata = {"version": version, "model_id": meta["model_id"], "dim": meta["dim"], "count": count,
                        "created_at": now.isoformat(timespec="microseconds")}  # fmt: skip
            try:
                self._once().snapshot.create(
                    repository=self.snapshot_repository,
                    snapshot=name,
                    wait_for_completion=False,
                    **bodies.snapshot_body(self.index_of(version), metadata),
                )
            except Exception as exc:  # timed out, or refused: did the snapshot start all the same?
                if self._snapshot_status(name) is None:
                    raise IndexBackendError(f"{self!r}: cannot snapshot {version} to {where}: {exc}") from exc
                log.warning("snapshot create answered with an error but the snapshot exists; waiting for it",
                            extra={"snapshot": where, "error": str(exc)})  # fmt: skip
        else:
            found = (existing.get("metadata") or {}).get("version")
            if found != version or self.index_of(version) not in existing.get("indices", [self.index_of(version)]):
                raise IndexBackendError(
                    f"{self!r}: snapshot {where} already exists and holds version {found!r}, not {version!r}; "
                    "choose another snapshot name"
                )
        final = self._wait_for_snapshot(name)
        if final.get("state") != "SUCCESS":
            raise IndexBackendError(f"{self!r}: snapshot {where} ended {final.get('state')}: {final.get('failures') or final}")
        return self._snapshot_info(name, final["metadata"])

    def _snapshot_status(self, name: str) -> dict[str, Any] | None:
        """The snapshot's ``SnapshotInfo`` (state, metadata, indices), or None when there is none by that name."""
        with self._errors(f"read snapshot {self.snapshot_repository}/{name}"):
            response = self.client.snapshot.get(repository=self.snapshot_repository, snapshot=name, ignore_unavailable=True)
        snaps = [s for s in response.get("snapshots", []) if s.get("snapshot") == name]
        return snaps[0] if snaps else None

    def _wait_for_snapshot(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.long_op_timeout_s
        while True:
            status = self._snapshot_status(name)
            if status is None:
                raise IndexBackendError(f"{self!r}: snapshot {self.snapshot_repository}/{name} vanished while running")
            if status.get("state") in SNAPSHOT_DONE:
                return status
            if time.monotonic() >= deadline:
                raise IndexBackendError(
                    f"{self!r}: snapshot {self.snapshot_repository}/{name} still {status.get('state')} after "
                    f"{self.long_op_timeout_s:g} s (LOOKSYNC_ES_LONG_OP_TIMEOUT_S); it goes on in the cluster"
                )
            time.sleep(self.long_op_poll_s)

    def restore(self, snapshot: str, as_version: str | None = None) -> str:
        """Restore a snapshot as a new version: one ``_restore`` call with ``wait_for_completion=true``
        (it answers once every primary shard's recovery has finished or failed,
        specification/snapshot/restore/SnapshotRestoreRequest.ts), under LOOKSYNC_ES_LONG_OP_TIMEOUT_S and
        never sent again (a second restore into the index the first one is creating is refused)."""
        meta = self._snapshot_meta(snapshot)
        name = as_version or meta["version"]
        if not _VERSION_NAME.match(name):
            raise IndexBackendError(f"version name {name!r}: use lowercase letters, digits, '.', '_' or '-'")
        if name == SHADOW:
            raise IndexBackendError(f"version name {name!r} is reserved: {self.shadow_alias} is the shadow alias")
        if name in self._versions():
            raise IndexBackendError(f"{self!r}: version {name!r} already exists; restore under another name")
        with self._errors(f"restore {self.snapshot_repository}/{snapshot} as {name} (sent once, not retried)"):
            response = self._once().snapshot.restore(
                repository=self.snapshot_repository,
                snapshot=snapshot,
                wait_for_completion=True,
                **bodies.restore_body(self.index_of(meta["version"]), self.index_of(name)),
            )
        shards = (dict(response).get("snapshot") or {}).get("shards") or {}  # SnapshotRestoreResponse.ts
        if shards.get("failed"):
            raise IndexBackendError(f"{self!r}: restore of {snapshot} as {name}: {shards['failed']} shard(s) failed: {shards}")
        with self._errors(f"refresh the restored {self.index_of(name)}"):
            self.client.indices.refresh(index=self.index_of(name))
        count = self.count(name)
        if count != int(meta["count"]):
            raise IndexBackendError(f"restored {name!r} holds {count} documents; snapshot {snapshot} says {meta['count']}")
        return name

    def list_snapshots(self) -> list[SnapshotInfo]:
        with self._errors(f"list snapshots in {self.snapshot_repository}"):
            response = self.client.snapshot.get(repository=self.snapshot_repository, snapshot="*")
        infos = [
            self._snapshot_info(s["snapshot"], s["metadata"])
            for s in response.get("snapshots", [])
            if (s.get("metadata") or {}).get("version") and s.get("state") == "SUCCESS"
            and any(self.version_of(i) is not None for i in s.get("indices", []))
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.name))

    def _snapshot_meta(self, snapshot: str) -> dict[str, Any]:
        from elasticsearch import NotFoundError

        try:
            response = self.client.snapshot.get(repository=self.snapshot_repository, snapshot=snapshot)
        except NotFoundError as exc:
            raise IndexBackendError(f"{self.snapshot_repository}/{snapshot}: no such snapshot") from exc
        snaps = response.get("snapshots", [])
        if not snaps or not (snaps[0].get("metadata") or {}).get("version"):
            raise IndexBackendError(f"{self.snapshot_repository}/{snapshot}: not a LookSync index snapshot")
        return snaps[0]["metadata"]

    def _snapshot_info(self, name: str, meta: dict[str, Any]) -> SnapshotInfo:
        return SnapshotInfo(
            name=name,
            version=meta["version"],
            model_id=meta["model_id"],
            dim=int(meta["dim"]),
            count=int(meta["count"]),
            created_at=meta["created_at"],
            location=f"es-snapshot://{self.snapshot_repository}/{name}",
        )

    # ---- internals ------------------------------------------------------------------------------

    def _errors(self, what: str) -> _ErrorContext:
        return _ErrorContext(f"{self!r}: cannot {what}")


class _ErrorContext:
    """Client errors (transport, API) become one ``IndexBackendError`` saying what was being done."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, IndexBackendError):
            return False
        raise IndexBackendError(f"{self.what}: {exc}") from exc
