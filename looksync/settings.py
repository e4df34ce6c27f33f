"""One typed settings object, read from ``LOOKSYNC_*`` environment variables.

Every optional service is off unless configured: no Elasticsearch URL means the embedded index,
no Redis URL means the in-process cache, no S3 bucket means local-directory snapshots, no LLM base URL
means the local (CLIP zero-shot) query generator. A malformed value raises ``SettingsError`` naming
the variable, at startup.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "LOOKSYNC_"


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the environment variable."""


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    # where local state lives (embedded index, embeddings store, quarantine, run reports)
    data_dir: Path = Path("var")

    # index
    index_backend: Literal["auto", "embedded", "elasticsearch"] = "auto"
    index_path: Path | None = None  # default: <data_dir>/index
    index_name: str = "looksync-products"
    es_url: str | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_api_key: SecretStr | None = None
    es_verify_certs: bool = True

    # cache
    redis_url: str | None = None
    cache_ttl_s: int = Field(default=3600, ge=0)

    # object store (snapshots, embeddings store, feeds)
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = "looksync"
    s3_region: str = "us-east-1"

    # LLM (OpenAI-compatible)
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=4.0, gt=0)
    llm_max_retries: int = Field(default=1, ge=0)

    # CLIP
    clip_model: str = "ViT-H-14"
    clip_weights: str = "laion2b_s32b_b79k"  # a pretrained tag, a checkpoint path, s3:// URI, or random:<seed>
    clip_cache_dir: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int | None = Field(default=None, ge=1)
    embed_batch_size: int = Field(default=32, ge=1)

    # image fetching (ingestion and image-URL queries)
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    fetch_concurrency: int = Field(default=8, ge=1)
    fetch_retries: int = Field(default=2, ge=0)
    fetch_allow_private: bool = False  # loopback/private hosts are refused unless this is set
    image_max_bytes: int = Field(default=10_000_000, ge=1)
    image_max_pixels: int = Field(default=25_000_000, ge=1)

    # service
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(default=8_000_000, ge=1)
    default_k: int = Field(default=10, ge=1, le=100)

    _split_api_keys = field_validator("api_keys", mode="before")(_comma_list)

    @property
    def resolved_index_backend(self) -> Literal["embedded", "elasticsearch"]:
        if self.index_backend == "auto":
            return "elasticsearch" if self.es_url else "embedded"
        return self.index_backend

    @property
    def resolved_index_path(self) -> Path:
        return self.index_path or self.data_dir / "index"

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus explicit overrides), turning validation errors
    into one ``SettingsError`` that names each bad variable and value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"] if isinstance(p, str)).upper()
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for entry points (CLI, DAG tasks, gunicorn); tests build their own."""
    return load_settings()
