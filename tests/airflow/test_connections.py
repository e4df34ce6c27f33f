"""The connection resolver (``looksync.airflow.connections``): Airflow connections defined as
``AIRFLOW_CONN_<ID>`` JSON, read through the providers' hooks, give working clients on the real Redis
(DB 7) and moto's S3 server; without connections the settings are used; a malformed connection is an
error naming its id. Elasticsearch and the LLM: the resolved client configuration, no server."""

from __future__ import annotations

import json
import uuid

import pytest

from looksync.airflow import connections
from looksync.airflow.connections import ConnectionConfigError
from looksync.settings import load_settings
from tests.pipelines.conftest import REDIS_URL

REDIS_DB = 7


def _define(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture(autouse=True)
def _no_connections(monkeypatch):
    for conn_id in connections.CONN_IDS:
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)


@pytest.fixture
def redis_key():
    import redis

    key = f"looksync-conn-test:{uuid.uuid4().hex[:8]}"
    yield key
    redis.Redis.from_url(REDIS_URL).delete(key)


@pytest.fixture
def default_boto3_session():
    import boto3

    from looksync.catalog.object_store import use_s3_client_factory

    before = boto3.DEFAULT_SESSION
    factory = use_s3_client_factory(None)
    yield
    boto3.DEFAULT_SESSION = before
    use_s3_client_factory(factory)


def test_redis_connection_gives_a_working_client_through_the_hook(monkeypatch, redis_key):
    import redis

    _define(monkeypatch, "looksync_redis", conn_type="redis", host="127.0.0.1", port=6379, extra={"db": REDIS_DB})
    # the settings name another database: the connection wins
    settings = load_settings(redis_url="redis://127.0.0.1:6379/3")
    client = connections.redis_client(settings, "attributes")
    client.set(redis_key, "via-hook")
    assert client.get(redis_key) == "via-hook"  # decoded: looksync's Redis code reads strings
    assert redis.Redis.from_url(REDIS_URL).get(redis_key) == b"via-hook"
    assert redis.Redis.from_url("redis://127.0.0.1:6379/3").get(redis_key) is None
    assert connections.with_connections(settings).redis_url == f"redis://127.0.0.1:6379/{REDIS_DB}"
    assert connections.describe(settings)["redis"] == "connection looksync_redis"

    # the queue on the same client: publish, read back through the consumer group
    stream = f"{redis_key}:updates"
    queue = connections.vendor_update_queue(load_settings(queue_stream=stream))
    message_id = queue.publish("desi_threads", "/feeds/dt.csv")
    assert [m.message_id for m in queue.read("c1", 10, 100, 60_000)] == [message_id]
    redis.Redis.from_url(REDIS_URL).delete(stream, f"{stream}:dead", f"{stream}:started")


def test_a_url_set_for_one_use_wins_over_the_connection(monkeypatch, redis_key):
    _define(monkeypatch, "looksync_redis", conn_type="redis", host="127.0.0.1", port=6379, extra={"db": 3})
    client = connections.redis_client(load_settings(queue_redis_url=REDIS_URL), "queue")
    client.set(redis_key, "specific")
    import redis

    assert redis.Redis.from_url(REDIS_URL).get(redis_key) == b"specific"


def test_without_connections_the_settings_are_used(redis_key, s3_bucket):
    client = connections.redis_client(load_settings(redis_url=REDIS_URL))
    client.set(redis_key, "via-settings")
    assert client.get(redis_key) == "via-settings"
    assert connections.redis_client(load_settings()) is None
    assert connections.attribute_mirror(load_settings()) is None
    with pytest.raises(RuntimeError, match="looksync_redis"):
        connections.vendor_update_queue(load_settings())

    s3, bucket = s3_bucket
    endpoint = s3.meta.endpoint_url
    settings = load_settings(s3_endpoint_url=endpoint, s3_bucket=bucket)
    assert connections.connection_overrides() == {} and connections.with_connections(settings) is settings
    client = connections.s3_client(settings)
    client.put_object(Bucket=bucket, Key="k", Body=b"settings")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"settings"
    assert connections.describe(settings) == {"s3": "settings", "redis": "off", "elasticsearch": "off", "llm": "off"}
    assert connections.es_client(settings) is None and connections.llm_client(settings) is None


def test_s3_connection_gives_a_working_client_with_its_credentials(monkeypatch, s3_bucket, default_boto3_session):
    s3, bucket = s3_bucket
    endpoint = s3.meta.endpoint_url
    _define(monkeypatch, "looksync_s3", conn_type="aws", login="conn-key-id", password="conn-secret",
            extra={"endpoint_url": endpoint, "region_name": "eu-west-1", "bucket": bucket})  # fmt: skip
    settings = load_settings()  # no LOOKSYNC_S3_* at all
    resolved = connections.with_connections(settings)
    assert (resolved.s3_endpoint_url, resolved.s3_region, resolved.s3_bucket) == (endpoint, "eu-west-1", bucket)

    client = connections.s3_client(settings)
    assert client.meta.endpoint_url == endpoint and client.meta.region_name == "eu-west-1"
    assert client._request_signer._credentials.access_key == "conn-key-id"
    client.put_object(Bucket=bucket, Key="through-hook", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="through-hook")["Body"].read() == b"hello"

    # inside a task: the object stores (plain boto3.client) sign with the connection's credentials
    from looksync.airflow.dag_support import airflow_settings
    from looksync.catalog.object_store import default_store

    task_settings = airflow_settings()
    store = default_store(task_settings, "reports")
    assert store.client._request_signer._credentials.access_key == "conn-key-id"
    uri = store.put_bytes("r.json", b"{}")
    assert uri == f"s3://{bucket}/looksync/reports/r.json"
    assert s3.get_object(Bucket=bucket, Key="looksync/reports/r.json")["Body"].read() == b"{}"


def test_elasticsearch_connection_configures_the_client_and_the_index():
    from looksync.index.elasticsearch import ElasticsearchIndex

    with pytest.MonkeyPatch.context() as mp:
        _define(mp, "looksync_es", conn_type="elasticsearch", host="es.internal", port=9243, schema="https",
                login="elastic", password="s3cret", extra={"verify_certs": False})  # fmt: skip
        settings = load_settings(es_url="http://127.0.0.1:9200")
        config = connections.es_client_config(settings)
        assert config["hosts"] == ["https://es.internal:9243"]
        assert config["basic_auth"] == ("elastic", "s3cret") and config["verify_certs"] is False
        client = connections.es_client(settings)
        node = client.transport.node_pool.all()[0].config
        assert (node.scheme, node.host, node.port, node.verify_certs) == ("https", "es.internal", 9243, False)
        assert client._headers["authorization"].startswith("Basic ")
        # the index backend built from the resolved settings talks to the connection's cluster
        resolved = connections.with_connections(settings)
        assert resolved.resolved_index_backend == "elasticsearch"
        index_node = ElasticsearchIndex.from_settings(resolved).client.transport.node_pool.all()[0].config
        assert (index_node.host, index_node.port) == ("es.internal", 9243)

        _define(mp, "looksync_es", conn_type="elasticsearch", host="es.internal", extra={"api_key": "k-123"})
        config = connections.es_client_config(load_settings())
        assert config["hosts"] == ["http://es.internal:9200"] and config["api_key"] == "k-123"
        assert "basic_auth" not in config


def test_llm_connection_configures_the_openai_client_through_the_hook(monkeypatch):
    from looksync.search.llm import LLMClient

    _define(monkeypatch, "looksync_llm", conn_type="openai", host="http://127.0.0.1:8011/v1", password="sk-conn")
    settings = load_settings(llm_base_url="http://other:1/v1")
    client = connections.llm_client(settings)
    assert str(client.base_url).rstrip("/") == "http://127.0.0.1:8011/v1" and client.api_key == "sk-conn"
    resolved = connections.with_connections(settings)
    assert resolved.llm_base_url.rstrip("/") == "http://127.0.0.1:8011/v1"
    assert resolved.llm_api_key.get_secret_value() == "sk-conn"
    assert LLMClient.from_settings(resolved).base_url.rstrip("/") == "http://127.0.0.1:8011/v1"


@pytest.mark.parametrize(
    ("conn_id", "definition", "message"),
    [
        ("looksync_redis", '{"conn_type": "redis", "host": ', "malformed definition"),
        ("looksync_redis", '{"conn_type": "redis", "host": "127.0.0.1", "port": "six"}', "port 'six' is not a number"),
        ("looksync_redis", '{"conn_type": "redis", "host": "127.0.0.1", "extra": "{db: 1"}', "extra is not valid JSON"),
        ("looksync_redis", '{"conn_type": "redis", "host": "127.0.0.1", "extra": {"db": "x"}}', "extra db 'x'"),
        ("looksync_redis", '{"conn_type": "redis"}', "no host"),
        ("looksync_s3", '{"conn_type": "aws", "extra": {"endpoint_url": "127.0.0.1:9000"}}', "not an http(s) URL"),
        ("looksync_es", '{"conn_type": "elasticsearch", "host": "es", "schema": "ftp"}', "must be http or https"),
        ("looksync_llm", "openai-without-a-scheme", "neither a JSON object nor a URI"),
        ("looksync_llm", "  ", "empty definition"),
    ],
)
def test_a_malformed_connection_is_an_error_naming_it(monkeypatch, conn_id, definition, message):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", definition)
    with pytest.raises(ConnectionConfigError, match=conn_id) as caught:
        connections.connection_overrides()
    assert message in str(caught.value)
    from looksync.airflow.dag_support import airflow_settings

    with pytest.raises(ConnectionConfigError, match=conn_id):
        airflow_settings()


def test_cli_prints_where_each_service_is_configured_from(monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main

    _define(monkeypatch, "looksync_redis", conn_type="redis", host="127.0.0.1", port=6379, extra={"db": REDIS_DB})
    result = CliRunner().invoke(main, ["airflow", "connections"], env={"LOOKSYNC_ES_URL": "http://127.0.0.1:9200"})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "s3: off",
        "redis: connection looksync_redis",
        "elasticsearch: settings",
        "llm: off",
    ]

    monkeypatch.setenv("AIRFLOW_CONN_LOOKSYNC_S3", '{"conn_type": "aws", "extra": [1]}')
    result = CliRunner().invoke(main, ["airflow", "connections"])
    assert result.exit_code == 1 and "'looksync_s3'" in result.output and "extra must be a JSON object" in result.output


def test_the_queue_watcher_reads_the_redis_connection_at_parse_time(monkeypatch):
    from looksync.airflow.dag_support import vendor_update_asset

    _define(monkeypatch, "looksync_redis", conn_type="redis", host="127.0.0.1", port=6379, extra={"db": REDIS_DB})
    asset = vendor_update_asset(load_settings(redis_url="redis://127.0.0.1:6379/3", queue_stream="s"))
    assert asset.uri == f"redis://127.0.0.1:6379/{REDIS_DB}/s"
    assert asset.watchers[0].trigger.redis_url == f"redis://127.0.0.1:6379/{REDIS_DB}"
    # a queue URL of its own still wins
    asset = vendor_update_asset(load_settings(queue_redis_url="redis://10.0.0.9:6380/2", queue_stream="s"))
    assert asset.watchers[0].trigger.redis_url == "redis://10.0.0.9:6380/2"


def test_object_stores_take_the_s3_connections_client_and_botocore_config(monkeypatch, s3_bucket, default_boto3_session):
    """Without touching boto3's default session: the stores get the hook's client, config_kwargs included."""
    import boto3

    from looksync.catalog.object_store import default_store, open_store

    s3, bucket = s3_bucket
    _define(monkeypatch, "looksync_s3", conn_type="aws", login="conn-key-id", password="conn-secret",
            extra={"endpoint_url": s3.meta.endpoint_url, "bucket": bucket,
                   "config_kwargs": {"s3": {"addressing_style": "path"}}})  # fmt: skip
    before = boto3.DEFAULT_SESSION
    settings = connections.with_connections(load_settings())
    # the catalog never reaches up for the connection: the Airflow wing hands its clients down
    assert default_store(settings, "snapshots").client._request_signer._credentials.access_key != "conn-key-id"
    assert connections.hand_down_s3_clients()
    for store in (default_store(settings, "snapshots"), open_store(f"s3://{bucket}/x", settings)):
        assert store.client._request_signer._credentials.access_key == "conn-key-id"
        assert store.client.meta.config.s3 == {"addressing_style": "path"}
        store.put_bytes("k", b"v")
    assert boto3.DEFAULT_SESSION is before
    assert s3.get_object(Bucket=bucket, Key="x/k")["Body"].read() == b"v"
