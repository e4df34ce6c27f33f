"""The Elasticsearch backend's request bodies, checked against the shapes the Elasticsearch 9 REST API
documents (no server: the contract suite runs against a real cluster when LOOKSYNC_ES_URL is set)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from looksync.catalog.schema import Product
from looksync.index import es_bodies as bodies
from looksync.index.base import IndexBackendError, SearchFilters
from tests.index.conftest import catalog_product, vectors

OPTIONS = bodies.VectorOptions(similarity="dot_product", index_type="int8_hnsw", m=24, ef_construction=200)


def test_index_body_maps_every_product_field_and_the_vector():
    body = bodies.index_body("ViT-H-14/laion", 1024, "v1", "2025-01-01T00:00:00+00:00", OPTIONS, shards=2, replicas=1)

    props = body["mappings"]["properties"]
    assert set(props) == set(Product.model_fields) | {"vector"}
    assert props["vector"] == {
        "type": "dense_vector",
        "dims": 1024,
        "index": True,
        "similarity": "dot_product",
        "index_options": {"type": "int8_hnsw", "m": 24, "ef_construction": 200},
    }
    assert props["price"] == {"type": "scaled_float", "scaling_factor": 100}
    for field in ("layer", "category", "gender", "market", "brand", "sizes", "product_id", "currency"):
        assert props[field]["type"] == "keyword", field
    assert props["in_stock"]["type"] == "boolean" and props["updated_at"]["type"] == "date"
    assert body["mappings"]["dynamic"] == "strict"
    assert body["mappings"]["_meta"] == {
        "looksync": {"model_id": "ViT-H-14/laion", "dim": 1024, "version": "v1", "created_at": "2025-01-01T00:00:00+00:00"}
    }
    assert body["settings"]["index"]["number_of_shards"] == 2 and body["settings"]["index"]["number_of_replicas"] == 1
    # set explicitly, not left to the cluster's default (9.2+ excludes vectors from _source, older kept them)
    assert body["settings"]["index"]["mapping"] == {"exclude_source_vectors": True}
    assert "_comment" not in body
    json.dumps(body)  # plain JSON all the way down


def test_index_template_covers_the_versions_and_leaves_dims_to_them():
    body = bodies.index_template_body("looksync-products", bodies.VectorOptions())
    assert body["index_patterns"] == ["looksync-products--*"]
    assert body["template"]["settings"]["index"]["mapping"] == {"exclude_source_vectors": True}
    vector = body["template"]["mappings"]["properties"]["vector"]
    assert "dims" not in vector and vector["index_options"]["type"] == "int8_hnsw"
    assert vector["similarity"] == "cosine"
    assert "_meta" not in body["template"]["mappings"]  # per version only


def test_knn_body_is_a_top_level_knn_with_the_filter_inside():
    query = vectors(1, dim=4, seed=1)[0]
    filters = SearchFilters(
        layers=["footwear"],
        market="IN",
        genders=["women", "unisex"],
        brands_exclude=["Acme", "O'Neill"],
        price_min=500,
        price_max=2999.5,
        sizes=["38", "39"],
        in_stock=True,
        exclude_ids=["p-1"],
    )

    body = bodies.knn_search_body(query, k=10, candidates=100, filters=filters, rescore_oversample=3.0)

    assert set(body) == {"knn", "size", "_source", "track_total_hits"}
    assert body["size"] == 10 and body["_source"] == {"excludes": ["vector"]}
    knn = body["knn"]
    assert (knn["field"], knn["k"], knn["num_candidates"]) == ("vector", 10, 100)
    np.testing.assert_allclose(knn["query_vector"], query, rtol=1e-6)
    assert all(type(x) is float for x in knn["query_vector"])
    assert knn["rescore_vector"] == {"oversample": 3.0}
    assert knn["filter"] == {
        "bool": {
            "filter": [
                {"terms": {"layer": ["footwear"]}},
                {"terms": {"gender": ["women", "unisex"]}},
                {"terms": {"sizes": ["38", "39"]}},
                {"term": {"market": "IN"}},
                {"range": {"price": {"gte": 500.0, "lte": 2999.5}}},
                {"term": {"in_stock": True}},
            ],
            "must_not": [{"terms": {"brand": ["Acme", "O'Neill"]}}, {"ids": {"values": ["p-1"]}}],
        }
    }


def test_unconstrained_filters_add_no_filter_and_bad_prices_are_refused():
    query = vectors(1, dim=4)[0]
    for filters in (None, SearchFilters(), SearchFilters(layers=[], sizes=[], brands_exclude=[])):
        body = bodies.knn_search_body(query, k=5, candidates=50, filters=filters)
        assert "filter" not in body["knn"] and "rescore_vector" not in body["knn"]
    assert bodies.filter_query(SearchFilters(brands_include=["Acme"], price_max=10)) == {
        "bool": {"filter": [{"terms": {"brand": ["Acme"]}}, {"range": {"price": {"lte": 10.0}}}]}
    }
    assert bodies.filter_query(SearchFilters(in_stock=False)) == {"bool": {"filter": [{"term": {"in_stock": False}}]}}
    with pytest.raises(IndexBackendError, match="price_min"):
        bodies.filter_query(SearchFilters(price_min=float("inf")))


def test_num_candidates_oversamples_within_the_cluster_limit():
    assert bodies.num_candidates(10, per_k=10) == 100
    assert bodies.num_candidates(10, per_k=10, requested=5) == 10  # never below k
    assert bodies.num_candidates(500, per_k=50) == 10_000
    with pytest.raises(IndexBackendError, match="10000"):
        bodies.num_candidates(20_000, per_k=1)


def test_scores_map_back_to_cosine():
    assert bodies.cosine_from_score(1.0, "cosine") == 1.0
    assert bodies.cosine_from_score(0.5, "dot_product") == 0.0
    assert bodies.cosine_from_score(0.25, "cosine") == -0.5


def test_bulk_actions_and_failures():
    product = catalog_product(3)
    vector = vectors(1, dim=4, seed=2)[0] * 1.0004  # within the norm tolerance, renormalised on the way
    doc = bodies.document(product.model_dump(mode="json"), "model-x", vector)
    assert doc["model_id"] == "model-x" and doc["title"] == product.title
    assert abs(np.linalg.norm(np.asarray(doc["vector"], dtype=np.float32)) - 1.0) < 1e-6

    (index,) = bodies.index_actions("shop-v1", [(product.product_id, doc)])
    assert index == {"_op_type": "index", "_index": "shop-v1", "_id": product.product_id, "_source": doc}
    (update,) = bodies.update_actions("shop-v1", [("p-1", {"price": 9.5})])
    assert update == {"_op_type": "update", "_index": "shop-v1", "_id": "p-1", "doc": {"price": 9.5}}
    assert list(bodies.delete_actions("shop-v1", ["a", "b"])) == [
        {"_op_type": "delete", "_index": "shop-v1", "_id": "a"},
        {"_op_type": "delete", "_index": "shop-v1", "_id": "b"},
    ]
    # an item as streaming_bulk yields it for a rejected document
    item = {
        "index": {
            "_index": "shop-v1",
            "_id": "p-9",
            "status": 400,
            "error": {"type": "document_parsing_exception", "reason": "[1:2] unknown field [colour]"},
        }
    }
    assert bodies.bulk_item_failure(item) == (
        "p-9",
        "index failed (status 400): document_parsing_exception: [1:2] unknown field [colour]",
    )
    missing = {"update": {"_id": "p-2", "status": 404, "error": {"type": "document_missing_exception", "reason": "[p-2]: document missing"}}}
    assert bodies.bulk_item_failure(missing)[1].startswith("update failed (status 404): document_missing_exception")


def test_alias_actions_move_the_live_alias_in_one_call():
    assert bodies.alias_actions("shop", "shop-v3", ["shop-v2"]) == [
        {"remove": {"index": "shop-v2", "alias": "shop"}},
        {"add": {"index": "shop-v3", "alias": "shop", "is_write_index": True}},
    ]
    assert bodies.alias_actions("shop", "shop-v1", []) == [{"add": {"index": "shop-v1", "alias": "shop", "is_write_index": True}}]
    assert bodies.alias_actions("shop", "shop-v1", ["shop-v1"]) == [
        {"add": {"index": "shop-v1", "alias": "shop", "is_write_index": True}}
    ]


def test_bulk_load_settings_and_back():
    assert bodies.bulk_load_settings() == {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}
    assert bodies.serving_settings("1s", 2) == {"index": {"refresh_interval": "1s", "number_of_replicas": 2}}


def test_snapshot_repository_client_and_restore_bodies():
    assert bodies.s3_repository_body("snaps", "/prod/es-snapshots/", client="minio") == {
        "type": "s3",
        "settings": {"bucket": "snaps", "base_path": "prod/es-snapshots", "client": "minio", "compress": True},
    }
    with pytest.raises(IndexBackendError, match="LOOKSYNC_S3_BUCKET"):
        bodies.s3_repository_body("", "x")
    assert bodies.s3_client_settings("minio", "http://minio:9000/", path_style_access=True, region="us-east-1") == {
        "s3.client.minio.endpoint": "http://minio:9000",  # the scheme stays in the endpoint (AWS SDK v2, 9.1+)
        "s3.client.minio.region": "us-east-1",
        "s3.client.minio.path_style_access": True,
    }
    assert bodies.s3_client_settings("default", None, False, "eu-west-1") == {
        "s3.client.default.region": "eu-west-1",
        "s3.client.default.path_style_access": False,
    }
    for endpoint in ("minio:9000", "ftp://minio:9000", "http://"):
        with pytest.raises(IndexBackendError, match="scheme"):
            bodies.s3_client_settings("default", endpoint, True, "us-east-1")
    with pytest.raises(IndexBackendError, match="LOOKSYNC_S3_REGION"):
        bodies.s3_client_settings("default", "http://minio:9000", True, "")
    assert bodies.snapshot_body("shop-v1", {"count": 3}) == {
        "indices": "shop-v1",
        "include_global_state": False,
        "ignore_unavailable": False,
        "metadata": {"count": 3},
    }
    restore = bodies.restore_body("shop-v1", "shop-v1-restored")
    assert restore["indices"] == "shop-v1" and restore["include_aliases"] is False
    import re

    assert re.sub(restore["rename_pattern"], restore["rename_replacement"], "shop-v1") == "shop-v1-restored"


def test_the_shipped_elasticsearch_s3_fragment_is_what_s3_client_settings_gives():
    """infra/elasticsearch/elasticsearch-s3.yml: no s3.client.*.protocol (no effect since 9.1), an endpoint
    with its scheme, the region set."""
    import yaml

    fragment = yaml.safe_load((bodies.TEMPLATE_FILE.parent / "elasticsearch-s3.yml").read_text(encoding="utf-8"))
    assert fragment == bodies.s3_client_settings("default", "http://minio:9000", True, "us-east-1")
    assert not any(key.endswith(".protocol") for key in fragment)


def test_knn_body_refuses_an_oversample_elasticsearch_rejects():
    query = vectors(1, dim=4)[0]
    for bad in (0.5, 10.5, -1):
        with pytest.raises(IndexBackendError, match="0 \\(off\\) or 1 to 10"):
            bodies.knn_search_body(query, k=5, candidates=50, rescore_oversample=bad)
    assert bodies.knn_search_body(query, 5, 50, rescore_oversample=1.0)["knn"]["rescore_vector"] == {"oversample": 1.0}


def test_the_client_accepts_every_body_key_as_a_parameter():
    """Each body is passed as keyword arguments: the 9.x client's method signatures must name them."""
    import inspect

    from elasticsearch import Elasticsearch
    from elasticsearch.client import IndicesClient, SnapshotClient

    def accepts(method, keys):
        params = set(inspect.signature(method).parameters)
        aliases = {"_source": "source"}
        missing = {k for k in keys if aliases.get(k, k) not in params}
        assert not missing, f"{method.__qualname__} has no parameter for {missing}"

    accepts(Elasticsearch.search, bodies.knn_search_body(vectors(1, dim=4)[0], 3, 30))
    accepts(IndicesClient.create, bodies.index_body("m", 4, "v", "t", OPTIONS, 1, 0))
    accepts(SnapshotClient.create, bodies.snapshot_body("i", {}))
    accepts(SnapshotClient.restore, bodies.restore_body("i", "j"))
    accepts(IndicesClient.put_index_template, {k.lstrip("_") for k in bodies.index_template_body("p", OPTIONS)})
