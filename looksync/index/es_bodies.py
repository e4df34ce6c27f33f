"""The request bodies the Elasticsearch backend sends, built by pure functions (no client, no server).

Each function returns the JSON the Elasticsearch 9 REST API documents for its endpoint, so the unit
tests can check shapes without a cluster: index creation and the index template (mappings from
``infra/elasticsearch/index-template.json``), the top-level ``knn`` search with its pre-filter, bulk
actions, ``_aliases`` actions, index settings for a bulk load, and snapshot repository / restore bodies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from looksync.index.base import IndexBackendError, SearchFilters, filter_number

TEMPLATE_FILE = Path(__file__).resolve().parents[2] / "infra" / "elasticsearch" / "index-template.json"
VECTOR_FIELD = "vector"
MAX_NUM_CANDIDATES = 10_000  # Elasticsearch's limit on knn.num_candidates
META_KEY = "looksync"  # mappings._meta.looksync = {model_id, dim, version, created_at}
SEPARATOR = "--"  # index of a version: <prefix>--<version> (see looksync.index.elasticsearch.check_prefix)
# knn.rescore_vector.oversample: "valid values are between 1.0 and 10.0 (inclusive), or 0 exactly to disable
# oversampling" (elasticsearch-specification specification/_types/mapping/DenseVectorProperty.ts,
# DenseVectorIndexOptionsRescoreVector; the search-time RescoreVector of specification/_types/Knn.ts is the same)
OVERSAMPLE_MIN, OVERSAMPLE_MAX = 1.0, 10.0


def check_oversample(value: float) -> float:
    if not (value == 0 or OVERSAMPLE_MIN <= value <= OVERSAMPLE_MAX):
        raise IndexBackendError(
            f"rescore oversample {value!r}: Elasticsearch accepts 0 (off) or {OVERSAMPLE_MIN:g} to {OVERSAMPLE_MAX:g}"
        )
    return float(value)


def index_pattern(prefix: str) -> str:
    """Every version index of ``prefix`` and nothing of another prefix (prefixes never contain '--')."""
    return f"{prefix}{SEPARATOR}*"


@dataclass(frozen=True)
class VectorOptions:
    similarity: str = "cosine"  # or dot_product (vectors are unit length)
    index_type: str = "int8_hnsw"
    m: int = 16
    ef_construction: int = 100


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    try:
        raw = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexBackendError(f"{TEMPLATE_FILE}: cannot read the Elasticsearch index template: {exc}") from exc
    raw.pop("_comment", None)
    return raw


def vector_mapping(dim: int | None, options: VectorOptions) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "type": "dense_vector",
        "index": True,
        "similarity": options.similarity,
        "index_options": {"type": options.index_type, "m": options.m, "ef_construction": options.ef_construction},
    }
    if dim is not None:
        mapping["dims"] = dim
    return mapping


def index_body(
    model_id: str, dim: int, version: str, created_at: str, options: VectorOptions, shards: int, replicas: int
) -> dict[str, Any]:
    """``PUT /<index>`` body: settings and mappings of one index version (dims from the model)."""
    body = copy.deepcopy(_template())
    body["settings"]["index"].update({"number_of_shards": shards, "number_of_replicas": replicas})
    body["mappings"]["properties"][VECTOR_FIELD] = vector_mapping(dim, options)
    body["mappings"]["_meta"] = {META_KEY: {"model_id": model_id, "dim": dim, "version": version, "created_at": created_at}}
    return body


def index_template_body(prefix: str, options: VectorOptions) -> dict[str, Any]:
    """``PUT /_index_template/<prefix>`` body: the same layout for every ``<prefix>--*`` index (dims are
    left to each version's own mapping, since they depend on the model). Patterns of two prefixes never
    overlap, so every prefix's template can share one priority."""
    body = copy.deepcopy(_template())
    body["mappings"]["properties"][VECTOR_FIELD] = vector_mapping(None, options)
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 200,
        "template": body,
        "_meta": {"managed_by": "looksync", "prefix": prefix},
    }


def num_candidates(k: int, per_k: int, requested: int | None = None) -> int:
    """Candidates each shard examines: ``requested`` or ``k * per_k``, at least k, at most 10,000."""
    if k > MAX_NUM_CANDIDATES:
        raise IndexBackendError(f"k={k} exceeds Elasticsearch's limit of {MAX_NUM_CANDIDATES}")
    return min(MAX_NUM_CANDIDATES, max(k, requested if requested is not None else k * per_k))


def filter_query(filters: SearchFilters | None) -> dict[str, Any] | None:
    """``SearchFilters`` as one ``bool`` query of filter / must_not clauses (None when unconstrained).
    Empty lists constrain nothing, as in ``SearchFilters.matches``."""
    if filters is None:
        return None
    keep: list[dict[str, Any]] = []
    drop: list[dict[str, Any]] = []
    for field, values in (
        ("layer", filters.layers),
        ("category", filters.categories),
        ("gender", filters.genders),
        ("brand", filters.brands_include),
        ("sizes", filters.sizes),  # any of them: terms on a multi-valued keyword
    ):
        if values:
            keep.append({"terms": {field: list(values)}})
    if filters.market:
        keep.append({"term": {"market": filters.market}})
    price: dict[str, float] = {}
    if filters.price_min is not None:
        price["gte"] = filter_number(filters.price_min, "price_min")
    if filters.price_max is not None:
        price["lte"] = filter_number(filters.price_max, "price_max")
    if price:
        keep.append({"range": {"price": price}})
    if filters.in_stock is not None:
        keep.append({"term": {"in_stock": bool(filters.in_stock)}})
    if filters.brands_exclude:
        drop.append({"terms": {"brand": list(filters.brands_exclude)}})
    if filters.exclude_ids:
        drop.append({"ids": {"values": list(filters.exclude_ids)}})
    if not keep and not drop:
        return None
    query: dict[str, Any] = {}
    if keep:
        query["filter"] = keep
    if drop:
        query["must_not"] = drop
    return {"bool": query}


def knn_search_body(
    vector: np.ndarray,
    k: int,
    candidates: int,
    filters: SearchFilters | None = None,
    rescore_oversample: float = 0.0,
) -> dict[str, Any]:
    """``POST /<index>/_search`` body: a top-level ``knn`` with the filter applied inside the graph search,
    ``size`` k, and the vector left out of the returned ``_source``."""
    knn: dict[str, Any] = {
        "field": VECTOR_FIELD,
        "query_vector": [float(x) for x in np.asarray(vector, dtype=np.float32)],
        "k": k,
        "num_candidates": max(k, candidates),
    }
    query = filter_query(filters)
    if query is not None:
        knn["filter"] = query
    if check_oversample(rescore_oversample) > 0:
        # quantised (int8/int4/bbq) graphs: re-score the oversampled top hits on the raw float vectors
        knn["rescore_vector"] = {"oversample": rescore_oversample}
    return {"knn": knn, "size": k, "_source": {"excludes": [VECTOR_FIELD]}, "track_total_hits": False}


def cosine_from_score(score: float, similarity: str) -> float:
    """Elasticsearch scores cosine and dot_product as (1 + similarity) / 2; the contract returns cosine."""
    if similarity not in ("cosine", "dot_product"):
        raise IndexBackendError(f"unsupported similarity {similarity!r}")
    return 2.0 * float(score) - 1.0


def document(product: Mapping[str, Any], model_id: str, vector: np.ndarray) -> dict[str, Any]:
    """The stored document: the product's JSON fields, the version's model id and the unit vector
    (renormalised in float32, so dot_product's unit-length check passes)."""
    arr = np.asarray(vector, dtype=np.float64)
    arr = (arr / np.linalg.norm(arr)).astype(np.float32)
    return {**product, "model_id": model_id, VECTOR_FIELD: [float(x) for x in arr]}


def index_actions(index: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> Iterable[dict[str, Any]]:
    """Bulk ``index`` actions (create or replace) in the helpers' form: ``_op_type``/``_index``/``_id``/``_source``."""
    for doc_id, doc in docs:
        yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": doc}


def update_actions(index: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> Iterable[dict[str, Any]]:
    """Bulk partial ``update`` actions: only the given fields change, the stored vector stays; a missing
    document fails (no upsert)."""
    for doc_id, fields in docs:
        yield {"_op_type": "update", "_index": index, "_id": doc_id, "doc": fields}


def delete_actions(index: str, ids: Iterable[str]) -> Iterable[dict[str, Any]]:
    for doc_id in ids:
        yield {"_op_type": "delete", "_index": index, "_id": doc_id}


def bulk_item_failure(item: Mapping[str, Any]) -> tuple[str, str]:
    """(document id, reason) of one failed item of a bulk response, as ``streaming_bulk`` yields it."""
    op, info = next(iter(item.items()))
    error = info.get("error") or info.get("exception") or {}
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
    else:
        reason = str(error)
    return str(info.get("_id")), f"{op} failed (status {info.get('status')}): {reason}"


def alias_actions(alias: str, new_index: str, current: Sequence[str], write_index: bool = True) -> list[dict[str, Any]]:
    """``POST /_aliases`` actions moving ``alias`` from ``current`` to ``new_index`` in one atomic call
    (``write_index``: the alias writes go to, as the live alias is; the shadow alias is read-only)."""
    actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": alias}} for old in current if old != new_index]
    add: dict[str, Any] = {"index": new_index, "alias": alias}
    if write_index:
        add["is_write_index"] = True
    actions.append({"add": add})
    return actions


def bulk_load_settings() -> dict[str, Any]:
    """``PUT /<index>/_settings`` before a bulk load: no refreshes, no replicas."""
    return {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}


def serving_settings(refresh_interval: str, replicas: int) -> dict[str, Any]:
    """``PUT /<index>/_settings`` after the load: refreshes and replicas back."""
    return {"index": {"refresh_interval": refresh_interval, "number_of_replicas": replicas}}


def s3_repository_body(bucket: str, base_path: str, client: str = "default", compress: bool = True) -> dict[str, Any]:
    """``PUT /_snapshot/<repository>`` body of an ``s3`` repository. The endpoint and path-style access
    of an S3-compatible store are client settings (``s3_client_settings``), not repository settings."""
    if not bucket:
        raise IndexBackendError("an s3 snapshot repository needs a bucket (LOOKSYNC_S3_BUCKET)")
    return {
        "type": "s3",
        "settings": {"bucket": bucket, "base_path": base_path.strip("/"), "client": client, "compress": compress},
    }


def s3_client_settings(client: str, endpoint: str | None, path_style_access: bool, region: str) -> dict[str, Any]:
    """The ``elasticsearch.yml`` lines (as a flat mapping) pointing S3 client ``client`` at an
    S3-compatible ``endpoint``. Since Elasticsearch 9.1 repository-s3 runs on AWS SDK v2: the endpoint
    carries its scheme (``http://minio:9000``), ``s3.client.<name>.protocol`` is deprecated and has no
    effect, and the signing ``region`` must be set explicitly for a store the SDK cannot place (elastic/
    elasticsearch docs/release-notes/breaking-changes.md, 9.1.0 "Upgrades repository-s3 plugin to AWS SDK
    v2", #126843). So: endpoint with scheme, region, path style; never ``protocol``."""
    settings: dict[str, Any] = {}
    if endpoint:
        scheme, sep, host = endpoint.partition("://")
        if not sep or scheme not in ("http", "https") or not host.strip("/"):
            raise IndexBackendError(
                f"S3 endpoint {endpoint!r}: give the scheme too (http://host:port or https://host); "
                "Elasticsearch 9.1+ reads HTTP or HTTPS from the endpoint (s3.client.*.protocol has no effect)"
            )
        settings[f"s3.client.{client}.endpoint"] = f"{scheme}://{host.rstrip('/')}"
    if not region:
        raise IndexBackendError("S3 client settings need the signing region (LOOKSYNC_S3_REGION), e.g. us-east-1 for MinIO")
    settings[f"s3.client.{client}.region"] = region
    settings[f"s3.client.{client}.path_style_access"] = bool(path_style_access)
    return settings


def snapshot_body(index: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /_snapshot/<repository>/<snapshot>`` body: one index version, no cluster state."""
    return {"indices": index, "include_global_state": False, "ignore_unavailable": False, "metadata": dict(metadata)}


def restore_body(index: str, new_index: str) -> dict[str, Any]:
    """``POST /_snapshot/<repository>/<snapshot>/_restore`` body: that index, under ``new_index``, without
    its aliases (a restore never changes what is live)."""
    return {
        "indices": index,
        "rename_pattern": "^(.+)$",
        "rename_replacement": new_index,
        "include_aliases": False,
        "include_global_state": False,
    }
