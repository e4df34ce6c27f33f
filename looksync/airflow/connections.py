"""Where LookSync's service clients come from: Airflow connections, read through the providers' hooks,
when a connection is defined; otherwise the ``LOOKSYNC_*`` settings. One resolver, so the same looksync
code runs in a DAG task and from the ``looksync`` CLI without Airflow.

| conn id          | conn type       | hook                                   | configures                                            |
|------------------|-----------------|----------------------------------------|-------------------------------------------------------|
| ``looksync_s3``    | ``aws``           | ``S3Hook``                               | credentials (boto3 session), extra ``endpoint_url``, ``region_name``, ``bucket`` |
| ``looksync_redis`` | ``redis``         | ``RedisHook``                            | host, port, login/password, extra ``db`` / ``ssl*``   |
| ``looksync_es``    | ``elasticsearch`` | ``ElasticsearchPythonHook`` (fields as ``ElasticsearchSQLHook`` reads them) | host, port, schema (http/https), login/password, extra ``api_key``, ``verify_certs`` |
| ``looksync_llm``   | ``openai``        | ``OpenAIHook``                           | host = base URL, password = API key (or extra ``openai_client_kwargs``) |

"Defined" means an ``AIRFLOW_CONN_<ID>`` environment variable (JSON or URI form; anywhere, the CLI
included) or, inside a running Airflow task, any connection the task's secrets backends know (the
metadata DB through the API server). A defined connection wins field by field over the settings; what
it leaves empty comes from the settings. A malformed definition raises ``ConnectionConfigError`` naming
the connection id: it never falls back silently. Heavy imports (boto3, redis, elasticsearch, openai,
the providers) happen inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from looksync.settings import Settings

log = logging.getLogger(__name__)

S3_CONN_ID = "looksync_s3"
REDIS_CONN_ID = "looksync_redis"
ES_CONN_ID = "looksync_es"
LLM_CONN_ID = "looksync_llm"
CONN_IDS = (S3_CONN_ID, REDIS_CONN_ID, ES_CONN_ID, LLM_CONN_ID)

RedisUse = Literal["cache", "attributes", "queue"]


class ConnectionConfigError(ValueError):
    """An Airflow connection is defined but unusable; the message names the connection id."""


def _env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _in_airflow_task() -> bool:
    """True inside a running Airflow task (the Task SDK's supervisor channel is set), where connections
    stored in the metadata DB are reachable too."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def _check_extra(conn_id: str, extra: Any) -> None:
    if not extra:
        return
    try:
        value = json.loads(extra) if isinstance(extra, str) else extra
    except ValueError as exc:
        raise ConnectionConfigError(f"Airflow connection {conn_id!r}: extra is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConnectionConfigError(
            f"Airflow connection {conn_id!r}: extra must be a JSON object, got {type(value).__name__}"
        )


def _parse_env_definition(conn_id: str, value: str):
    """Parse ``AIRFLOW_CONN_<ID>`` the way Airflow's environment backend does, but loudly: that backend
    swallows a parse error and reports the connection as not defined."""
    from airflow.sdk import Connection

    where = f"Airflow connection {conn_id!r} ({_env_var(conn_id)})"
    text = value.strip()
    try:
        if text.startswith("{"):
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            _check_extra(conn_id, raw.get("extra"))
            port = raw.get("port")
            if port not in (None, "") and not str(port).isdigit():
                raise ValueError(f"port {port!r} is not a number")
            conn = Connection.from_json(text, conn_id=conn_id)
        else:
            if "://" not in text:
                raise ValueError("neither a JSON object nor a URI like redis://host:6379")
            conn = Connection.from_uri(text, conn_id=conn_id)
    except ConnectionConfigError:
        raise
    except Exception as exc:  # json, URI and int parsing errors all mean "malformed"
        raise ConnectionConfigError(f"{where}: malformed definition: {exc}") from None
    return conn


def airflow_connection(conn_id: str):
    """The Airflow ``Connection`` named ``conn_id``, or None when it is not defined (or Airflow is not
    installed). Raises ``ConnectionConfigError`` for a malformed definition."""
    value = os.environ.get(_env_var(conn_id))
    if value is not None:
        if not value.strip():
            raise ConnectionConfigError(f"Airflow connection {conn_id!r} ({_env_var(conn_id)}): empty definition")
        return _parse_env_definition(conn_id, value)
    if not _in_airflow_task():
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    _check_extra(conn_id, conn.extra)
    return conn


def defined(conn_id: str) -> bool:
    return airflow_connection(conn_id) is not None


# --- S3 -------------------------------------------------------------------------------------------------


def _s3_hook():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=S3_CONN_ID)


def s3_overrides() -> dict[str, Any]:
    """Settings values the ``looksync_s3`` connection sets (as the S3Hook reads its extra)."""
    if airflow_connection(S3_CONN_ID) is None:
        return {}
    hook = _s3_hook()
    extra = hook.conn_config.extra_config or {}
    endpoint = hook.conn_config.endpoint_url
    if endpoint and not urlsplit(endpoint).scheme.startswith("http"):
        raise ConnectionConfigError(
            f"Airflow connection {S3_CONN_ID!r}: extra endpoint_url {endpoint!r} is not an http(s) URL"
        )
    values = {"s3_endpoint_url": endpoint, "s3_region": hook.conn_config.region_name, "s3_bucket": extra.get("bucket"),
              "s3_prefix": extra.get("prefix")}  # fmt: skip
    return {k: v for k, v in values.items() if v}


def s3_session():
    """A boto3 session: the S3Hook's (the connection's credentials, role assumption, profile) when
    ``looksync_s3`` is defined, else boto3's default credential chain."""
    if airflow_connection(S3_CONN_ID) is not None:
        return _s3_hook().get_session()
    import boto3

    return boto3.session.Session()


def s3_client(settings: Settings):
    """An S3 client: credentials from ``s3_session()``, endpoint and region from the connection, then
    the settings."""
    settings = with_connections(settings)
    kwargs: dict[str, Any] = {"endpoint_url": settings.s3_endpoint_url, "region_name": settings.s3_region}
    if airflow_connection(S3_CONN_ID) is not None:
        kwargs["config"] = _s3_hook().config  # botocore config from the extra's config_kwargs
    return s3_session().client("s3", **kwargs)


def use_s3_connection_credentials() -> bool:
    """Make the ``looksync_s3`` connection's session boto3's default session in this process, so every
    ``boto3.client(...)`` LookSync makes (S3 weights, snapshots' clients) signs with the connection's
    credentials, and hand the object stores the connection's own clients (``s3_client``: its botocore
    config too). Airflow runs each task in its own process, so this stays inside the task. Returns
    whether a connection was applied."""
    if not hand_down_s3_clients():
        return False
    import boto3

    boto3.DEFAULT_SESSION = _s3_hook().get_session()
    return True


def hand_down_s3_clients() -> bool:
    """Give the object stores (``looksync.catalog.object_store``) the ``looksync_s3`` connection's
    clients, without touching boto3's default session; False (and nothing changed) when the connection
    is not defined."""
    if airflow_connection(S3_CONN_ID) is None:
        return False
    from looksync.catalog.object_store import use_s3_client_factory

    use_s3_client_factory(s3_client)
    return True


# --- Redis ----------------------------------------------------------------------------------------------


def _redis_hook_client():
    """The RedisHook's client, rebuilt on the same connection settings with ``decode_responses``:
    LookSync's Redis code reads strings."""
    import redis
    from airflow.providers.redis.hooks.redis import RedisHook

    try:
        hook_client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
    except (ValueError, TypeError) as exc:
        raise ConnectionConfigError(f"Airflow connection {REDIS_CONN_ID!r}: {exc}") from None
    if not isinstance(hook_client, redis.Redis):  # cluster mode: used as the hook made it
        return hook_client
    pool = hook_client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": True, "socket_timeout": 10}
    if "host" in kwargs and not kwargs.get("port"):  # the hook passes the connection's port, maybe empty
        kwargs["port"] = 6379
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def redis_overrides() -> dict[str, Any]:
    """``redis_url`` built from the ``looksync_redis`` connection (for code that takes a URL: the
    triggerer's serialised trigger, the service cache)."""
    conn = airflow_connection(REDIS_CONN_ID)
    if conn is None:
        return {}
    if not conn.host:
        raise ConnectionConfigError(f"Airflow connection {REDIS_CONN_ID!r}: no host")
    extra = conn.extra_dejson or {}
    db = extra.get("db", 0)
    if not str(db).isdigit():
        raise ConnectionConfigError(f"Airflow connection {REDIS_CONN_ID!r}: extra db {db!r} is not a number")
    password = None if str(conn.password).lower() in ("none", "false", "") else conn.password
    auth = f"{quote(conn.login or '', safe='')}:{quote(password, safe='')}@" if password else ""
    scheme = "rediss" if extra.get("ssl") else "redis"
    return {"redis_url": f"{scheme}://{auth}{conn.host}:{conn.port or 6379}/{db}"}


def redis_client(settings: Settings, use: RedisUse = "cache"):
    """A Redis client for one use, or None when no Redis is configured. A URL set for that use alone
    (``LOOKSYNC_ATTRIBUTES_REDIS_URL``, ``LOOKSYNC_QUEUE_REDIS_URL``) wins; then the ``looksync_redis``
    connection (RedisHook); then ``LOOKSYNC_REDIS_URL``."""
    from looksync.catalog.attribute_mirror import open_redis

    specific = {"attributes": settings.attributes_redis_url, "queue": settings.queue_redis_url}.get(use)
    if specific:
        return open_redis(specific)
    if airflow_connection(REDIS_CONN_ID) is not None:
        return _redis_hook_client()
    return open_redis(settings.redis_url) if settings.redis_url else None


def attribute_mirror(settings: Settings):
    """The Redis attribute mirror on the resolved client, or None without Redis (callers log that)."""
    from looksync.catalog.attribute_mirror import AttributeMirror

    client = redis_client(settings, "attributes")
    return AttributeMirror(client, settings.attributes_prefix) if client is not None else None


def vendor_update_queue(settings: Settings):
    """The vendor-update queue on the resolved Redis client; fails loudly without Redis."""
    from looksync.pipelines.vendor_queue import VendorUpdateQueue

    client = redis_client(settings, "queue")
    if client is None:
        raise RuntimeError(
            f"no Redis for the vendor-update queue: define the {REDIS_CONN_ID!r} connection or set "
            "LOOKSYNC_QUEUE_REDIS_URL / LOOKSYNC_REDIS_URL"
        )
    return VendorUpdateQueue(client, settings.queue_stream, settings.queue_group)


# --- Elasticsearch --------------------------------------------------------------------------------------


def es_overrides() -> dict[str, Any]:
    """Settings values from ``looksync_es``, read as the Elasticsearch provider reads its connection:
    host, port (9200), schema = http|https, login/password; extra ``api_key``, ``verify_certs``. A host
    given as a full URL is kept as it is."""
    conn = airflow_connection(ES_CONN_ID)
    if conn is None:
        return {}
    if not conn.host:
        raise ConnectionConfigError(f"Airflow connection {ES_CONN_ID!r}: no host")
    extra = conn.extra_dejson or {}
    if "://" in conn.host:
        url = conn.host
    else:
        scheme = conn.schema or "http"
        if scheme not in ("http", "https"):
            raise ConnectionConfigError(f"Airflow connection {ES_CONN_ID!r}: schema {scheme!r} must be http or https")
        url = f"{scheme}://{conn.host}:{conn.port or 9200}"
    out: dict[str, Any] = {"es_url": url}
    if conn.login:
        out["es_username"], out["es_password"] = conn.login, conn.password or ""
    if extra.get("api_key"):
        out["es_api_key"] = extra["api_key"]
    if "verify_certs" in extra:
        out["es_verify_certs"] = extra["verify_certs"]
    return out


def es_client_config(settings: Settings) -> dict[str, Any] | None:
    """The arguments of the Elasticsearch client (hosts, auth, TLS, timeouts), connection first, or None
    when no Elasticsearch is configured."""
    settings = with_connections(settings)
    if not settings.es_url:
        return None
    config: dict[str, Any] = {"hosts": [settings.es_url], "verify_certs": settings.es_verify_certs,
                              "request_timeout": settings.es_request_timeout_s, "retry_on_timeout": True}  # fmt: skip
    if settings.es_api_key:
        config["api_key"] = settings.es_api_key.get_secret_value()
    elif settings.es_username:
        config["basic_auth"] = (
            settings.es_username,
            settings.es_password.get_secret_value() if settings.es_password else "",
        )
    return config


def es_client(settings: Settings):
    """An ``elasticsearch.Elasticsearch`` from ``es_client_config``: through the provider's
    ``ElasticsearchPythonHook`` when ``looksync_es`` is defined, else made directly."""
    config = es_client_config(settings)
    if config is None:
        return None
    hosts = config.pop("hosts")
    if airflow_connection(ES_CONN_ID) is not None:
        from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook

        return ElasticsearchPythonHook(hosts=hosts, es_conn_args=config).get_conn  # a cached property
    from elasticsearch import Elasticsearch

    return Elasticsearch(hosts, **config)


# --- LLM (OpenAI-compatible) ----------------------------------------------------------------------------


def _openai_hook():
    from airflow.providers.openai.hooks.openai import OpenAIHook

    return OpenAIHook(conn_id=LLM_CONN_ID)


def llm_overrides() -> dict[str, Any]:
    """``llm_base_url`` / ``llm_api_key`` as the OpenAIHook resolves them from ``looksync_llm``."""
    if airflow_connection(LLM_CONN_ID) is None:
        return {}
    try:
        client = _openai_hook().get_conn()
    except Exception as exc:  # the hook raises ValueError / openai errors for missing or bad values
        raise ConnectionConfigError(f"Airflow connection {LLM_CONN_ID!r}: {exc}") from None
    out: dict[str, Any] = {"llm_base_url": str(client.base_url)}
    if client.api_key and client.api_key != "unused":
        out["llm_api_key"] = client.api_key
    return out


def llm_client(settings: Settings):
    """An ``openai.OpenAI`` client: the OpenAIHook's when ``looksync_llm`` is defined, else one from
    ``LOOKSYNC_LLM_*``; None when no LLM is configured."""
    if airflow_connection(LLM_CONN_ID) is not None:
        return _openai_hook().get_conn()
    if not settings.llm_base_url:
        return None
    import openai

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "unused"
    return openai.OpenAI(base_url=settings.llm_base_url, api_key=key, timeout=settings.llm_timeout_s,
                         max_retries=settings.llm_max_retries)  # fmt: skip


# --- settings -------------------------------------------------------------------------------------------


def connection_overrides() -> dict[str, Any]:
    """Every settings value the defined connections set (the undefined ones add nothing)."""
    return {**s3_overrides(), **redis_overrides(), **es_overrides(), **llm_overrides()}


def with_connections(settings: Settings) -> Settings:
    """``settings`` with the defined connections' values laid over it (validated)."""
    overrides = connection_overrides()
    if not overrides:
        return settings
    return Settings.model_validate({**settings.model_dump(), **overrides})


def describe(settings: Settings) -> dict[str, str]:
    """Where each service's configuration comes from: 'connection <id>', 'settings' or 'off'."""
    configured = {S3_CONN_ID: settings.s3_bucket or settings.s3_endpoint_url, REDIS_CONN_ID: settings.redis_url,
                  ES_CONN_ID: settings.es_url, LLM_CONN_ID: settings.llm_base_url}  # fmt: skip
    names = {S3_CONN_ID: "s3", REDIS_CONN_ID: "redis", ES_CONN_ID: "elasticsearch", LLM_CONN_ID: "llm"}
    return {names[c]: f"connection {c}" if defined(c) else ("settings" if configured[c] else "off") for c in CONN_IDS}
