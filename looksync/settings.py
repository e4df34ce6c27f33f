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

    # index (issue 5): tuning shared by the backends, Elasticsearch index options, snapshots
    index_ann_min_rows: int = Field(default=50_000, ge=1)  # embedded: smaller versions stay on exact search
    index_candidates_per_k: int = Field(default=10, ge=1)  # ANN candidates per requested hit (num_candidates = k x this)
    # embedded search: "faiss" = in-memory views over saved FAISS HNSW graphs per partition; "lance" = LanceDB's search
    index_search: Literal["faiss", "lance"] = "faiss"
    index_refresh_s: float = Field(default=1.0, ge=0)  # embedded: how often a reader re-checks for commits; 0 = every search
    index_hnsw_m: int = Field(default=32, ge=4)  # embedded FAISS graphs: links per node
    index_hnsw_ef_construction: int = Field(default=64, ge=8)
    index_hnsw_ef_search: int = Field(default=64, ge=1)  # the HNSW beam when a search names no num_candidates
    index_exact_max_rows: int = Field(default=2048, ge=0)  # at most this many graph rows pass a filter: score them exactly
    # embedded FAISS graphs' vectors: "mmap" = mapped from the version directory, shared by worker processes through the
    # page cache and read ahead when a view loads; "private" = read into each process (no page faults, memory per worker)
    index_graph_memory: Literal["mmap", "private"] = "mmap"
    # embedded FAISS structure per partition, built by build_ann_index / end_bulk_load: "ivf" = IndexIVFFlat (30x cheaper
    # to build, docs/index.md); "hnsw" = IndexHNSWFlat (the index_hnsw_* settings). A search uses what each partition has
    index_ann_structure: Literal["hnsw", "ivf"] = "ivf"
    index_ivf_nlist: int = Field(default=0, ge=0)  # IVF lists per partition; 0 = 2 * sqrt(rows), at most rows / 39
    index_ivf_nprobe: int = Field(default=16, ge=1)  # IVF lists a search probes (more for selective filters)
    es_vector_index_type: Literal["int8_hnsw", "hnsw", "int4_hnsw", "bbq_hnsw"] = "int8_hnsw"
    es_similarity: Literal["cosine", "dot_product"] = "cosine"
    es_hnsw_m: int = Field(default=16, ge=2)
    es_hnsw_ef_construction: int = Field(default=100, ge=2)
    # quantised kNN re-scored on raw vectors: 0 = off, else 1.0-10.0 (what Elasticsearch accepts, see _oversample below)
    es_rescore_oversample: float = 3.0
    es_shards: int = Field(default=1, ge=1)
    es_replicas: int = Field(default=1, ge=0)
    es_refresh_interval: str = "1s"
    es_bulk_chunk_size: int = Field(default=500, ge=1)
    es_bulk_max_retries: int = Field(default=5, ge=0)  # on 429, with exponential backoff
    es_bulk_initial_backoff_s: float = Field(default=1.0, gt=0)
    es_bulk_max_backoff_s: float = Field(default=60.0, gt=0)
    es_request_timeout_s: float = Field(default=30.0, gt=0)
    # force-merge, snapshot and restore: their own deadline (not the request timeout) and never sent twice;
    # force-merges and snapshots are started as tasks and polled every es_long_op_poll_s
    es_long_op_timeout_s: float = Field(default=7200.0, gt=0)
    es_long_op_poll_s: float = Field(default=5.0, gt=0)
    es_snapshot_repository: str = "looksync-snapshots"
    es_snapshot_s3_client: str = "default"  # the s3.client.<name> block of elasticsearch.yml (endpoint, path style)

    # cache
    redis_url: str | None = None
    cache_ttl_s: int = Field(default=3600, ge=0)
    # with Redis: a small per-worker LRU in front of it (repeats cost no round trip and survive an outage)
    cache_local_items: int = Field(default=1024, ge=0)  # 0: Redis only
    cache_local_ttl_s: int = Field(default=60, ge=1)

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
    # circuit breaker: this many outage-like failures in a row (timeout, connection, 5xx, 429) stop calls for
    # llm_breaker_open_s, so a hanging LLM does not hold every server thread (0: no breaker)
    llm_breaker_failures: int = Field(default=3, ge=0)
    llm_breaker_open_s: float = Field(default=30.0, gt=0)

    # CLIP
    clip_model: str = "ViT-H-14"
    clip_weights: str = "laion2b_s32b_b79k"  # a pretrained tag, a checkpoint path, s3:// URI, or random:<seed>
    clip_cache_dir: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # what runs the image and text towers on the CPU (embeddings.runtime, docs/embeddings.md): torch (the
    # reference), onnx (ONNX Runtime, fp32) or onnx-int8 (int8 weights, refused below cosine 0.99 to torch)
    clip_runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"
    torch_threads: int | None = Field(default=None, ge=1)
    embed_batch_size: int = Field(default=32, ge=1)
    # embeddings image pipeline (issue 4): preprocess threads (None: one per core, 0: inline), reduced-scale JPEG decode
    embed_workers: int | None = Field(default=None, ge=0)
    embed_draft_decode: bool = False

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

    # pipelines (issue 6): change detection, standardisation, dedup, Redis mirror, queue, reindex
    ingest_delete_vanished: bool = True  # a full feed without a product deletes it
    # deletions you can trust (docs/vendors.md): a full feed's run holds all its deletions when it would
    # delete more than this share of the vendor's live products ...
    ingest_delete_max_share: float = Field(default=0.05, ge=0, le=1)
    # ... unless it deletes at most this many (a small vendor losing one product is not a broken feed)
    ingest_delete_free_count: int = Field(default=3, ge=0)
    # sharded ingest (docs/airflow.md): products per shard; the DAGs' `shard_size` Param overrides it
    ingest_shard_size: int = Field(default=50_000, ge=1)
    # a feed row that is the one a stored product was made from is not mapped again (its row key,
    # docs/airflow.md); false: every row of every feed is mapped and compared
    ingest_row_keys: bool = True
    zeroshot_min_confidence: float = Field(default=0.35, ge=0, le=1)  # below: leave the attribute missing
    # category terms that neither the vendor's map nor the shared synonyms know: CLIP's nearest standard
    # category is taken at this softmax probability or above (docs/vendors.md), if the model passes its
    # self-check on the known synonym terms (at most this share of what it accepts there wrong)
    category_clip_fallback: bool = True
    category_clip_min_confidence: float = Field(default=0.9, ge=0, le=1)
    category_clip_max_wrong: float = Field(default=0.01, ge=0, le=1)
    dedup_threshold: float = Field(default=0.95, ge=-1, le=1)  # image cosine for a near-duplicate
    dedup_title_overlap: float = Field(default=0.5, ge=0, le=1)  # title signature overlap across languages (catalog.groups)
    attributes_redis_url: str | None = None  # default: redis_url; none = no mirror (logged)
    attributes_prefix: str = "looksync:attr"
    queue_redis_url: str | None = None  # default: redis_url
    queue_stream: str = "looksync:vendor-updates"
    queue_group: str = "catalog_ingest"
    queue_claim_idle_s: int = Field(default=600, ge=1)  # unacknowledged this long: delivered again
    reindex_keep: int = Field(default=3, ge=1)
    reindex_min_recall: float = Field(default=0.9, ge=0, le=1)
    reindex_sample: int = Field(default=50, ge=1)
    airflow_retries: int = Field(default=2, ge=0)  # per task, with exponential backoff
    # Celery queue of the embedding tasks (CeleryExecutor): "default" is the queue every worker serves;
    # infra/compose.yaml sets "embedding" so GPU workers can take them (docs/deploy.md)
    airflow_embedding_queue: str = Field(default="default", min_length=1)

    # service (issue 7): rerank, look-response cache, region finder, search tuning
    rerank_mode: Literal["auto", "llm", "local", "off"] = "auto"  # default when a request does not say
    rerank_llm_budget_s: float = Field(default=3.0, gt=0)  # time budget of one LLM rerank call (no retries)
    rerank_text_weight: float = Field(default=0.5, ge=0, le=1)  # crop rerank: w * text + (1 - w) * crop cosine
    rerank_candidates_per_k: int = Field(default=3, ge=1)  # kNN candidates per returned product when reranking
    # look kNN query: normalise((1 - w) * text + w * crop) when the query generator embedded the garment's
    # crop (local generator); 0 = the text query alone
    look_crop_weight: float = Field(default=0.5, ge=0, le=1)
    # looksync.search.region_finders.REGION_FINDERS: "layout" (taxonomy slots, for full-body looks; the local query
    # generator reads its attributes there too), "pose" (from the body's keypoints, any framing; layers out of
    # frame are skipped), "clip_boxes" (CLIP search over candidate bands) or "auto" (pose when its model files
    # are at hand, from the pypi source only when already cached: nothing is downloaded at startup; else
    # layout, each response saying why in `degraded`). The evaluation's `regions=truth` (ground-truth
    # boxes) is no service finder: it knows the answer, so the setting refuses it with the others unknown
    region_finder: Literal["auto", "layout", "pose", "clip_boxes"] = "auto"
    # detection heads (`looksync heads train`) for look searches without gender or layers: presence and gender
    # read from the region finder's crops; trained for one CLIP model and one region finder (checked at startup)
    detection_heads: Path | None = None
    # a gender the look search inferred (none was requested) filters the kNN only when its detector is at least
    # this sure; below it the layers are searched across genders, the query names none, and the response says
    # `gender_filter: unsure` (a wrong gender filter loses the planted garment; a missing one only widens)
    look_gender_min_confidence: float = Field(default=0.9, ge=0.5, le=1)
    # pose region finder (issue 14): where BlazePose's model files come from: "pypi" (the pinned mediapipe
    # wheel, downloaded with pip from the configured index, only the model files kept), a directory holding
    # them, or s3://bucket/prefix; each is checked against the sha256 in looksync/search/pose/blazepose.yaml
    pose_models: str = "pypi"
    pose_models_dir: Path | None = None  # cache of fetched model files; default ~/.cache/looksync/models
    pose_threads: int | None = Field(default=None, ge=1)  # LiteRT CPU threads; default: cores, at most 4
    pose_min_detection: float = Field(default=0.5, ge=0, le=1)  # person detector score
    pose_min_visibility: float = Field(default=0.5, ge=0, le=1)  # a keypoint below it is not seen
    # a pose whose body axis (hips -> shoulders) is further than this from upright is not used: on looks the
    # detector reads upside down, the landmarks are confident and wrong (the person's box is placed instead)
    pose_max_tilt: float = Field(default=60.0, ge=0, le=180)  # degrees
    # a pose whose landmarks span less than this share of the person mask's height is not used either: the landmark
    # model is sometimes sure of points crowded into the upper body of a drawn figure (the person's box is placed)
    pose_min_span: float = Field(default=0.7, ge=0, le=1)
    # no usable pose in the whole look (no person, landmarks not sure, upside down, short span): detect again within
    # the person mask's box, widened, where the figure fills more of the detector's square. Off: on 460 generated
    # looks it gave a usable pose on 22 of the 199 it retried, looks Recall@10 on the eval sample did not move
    # (+0.000), and it costs a detector call and two landmark reads (~45 ms CPU) on every look without a pose
    # (docs/evaluation.md, "why the pose finder falls back")
    pose_retry: bool = False
    # the person-box fallback hangs the taxonomy slots from the mask's head top and midline, not its box's top and
    # centre (raised hands and a held bag stretch the box)
    pose_figure_axis: bool = True
    # a layer worn on either side (the bag, on either arm) is cropped on the one side that shows something beside the
    # body, where one clearly does (one crop fewer), else on both (docs/service.md, "One side of the bag")
    pose_pick_side: bool = True
    # a pose extent the taxonomy marks ``unless_continuous`` is not cropped where the garment runs on past it (the
    # knee-length crop of trousers whose colour runs from the thighs down the shins; docs/service.md, same section)
    pose_pick_length: bool = True
    # no usable pose from the detector, but a person mask: the landmark model reads the ROI a standing figure hung
    # from the mask's head and scaled by its height (or width, when cut by the look's bottom) would have; on 200
    # generated varied training looks it gave a usable pose on 77 of the 101 that fell back, half figures' garments
    # covered 0.62 -> 0.73 (all of them), three-quarter 0.79 -> 0.87 (docs/evaluation.md, "cut figures")
    pose_figure_roi: bool = True
    # landmark reads after the first (each in the ROI the read before gives) at most, and the change of that ROI
    # (a share of its side) up to which a further read is skipped as adding nothing (0: every read is made)
    pose_refine_reads: int = Field(default=1, ge=0, le=3)
    pose_refine_tolerance: float = Field(default=0.1, ge=0, le=1)
    pose_person_mask: bool = True  # no pose: the person box from the selfie-segmentation mask
    # cut each layer's crop from the look with its background blanked to white by the person mask (packshots are on
    # white); off: it lowered look Recall@10 0.80 -> 0.65 (docs/service.md, "Blanking the background")
    pose_blank_background: bool = False
    search_dedup_cosine: float | None = Field(default=None, ge=-1, le=1)  # image cosine of near-duplicates; None = off
    groups_refresh_s: float = Field(default=60.0, ge=0)  # product groups (one card per item): re-read at most this often
    look_cache_ttl_s: int = Field(default=900, ge=0)  # whole look responses; keyed by live index version too
    # shopper preferences (issue 18): decayed counts per shopper, a bounded soft boost of results
    shopper_half_life_days: float = Field(default=30.0, gt=0)
    shopper_ttl_days: float = Field(default=180.0, gt=0)  # profile and events expire after the last event
    shopper_max_events: int = Field(default=500, ge=1)  # newest events kept per shopper
    shopper_max_boost: float = Field(default=0.05, ge=0, le=1)  # added to a result's score at most
    # single-flight for identical looks: the longest a request waits for another one computing the same look
    # (and the Redis lock's time-out, so a worker that dies holding it is waited for at most this long)
    look_flight_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # search service latency (issue 7): text vectors of the local query vocabulary, per model id
    text_vocab_precompute: Literal["off", "background", "blocking"] = "background"  # at service start
    text_vocab_dir: Path | None = None  # where the tables are saved; default: <data_dir>/textvec
    search_modifier_weight: float = Field(default=1.0, ge=0)  # image + text search: image + w * text
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # service JSON logs

    # judging (issue 8): ratings database (default: SQLite under data_dir) and the looks offered to judges
    judging_db_url: str | None = None  # sqlite:///<file> or postgresql://user@host/db
    judging_looks_dir: Path | None = None  # default: <data_dir>/sample/looks when it exists
    # signs the blind live/shadow sides of /judge; default: random per process (set it when several workers serve)
    judging_secret: SecretStr | None = None

    # model rollout (issue 19): the service mirrors this share of live look and text queries to the index's
    # shadow version, in the background, with the shadow model (default: clip_model with shadow_clip_weights)
    shadow_share: float = Field(default=0.0, ge=0, le=1)  # 0 = no mirroring
    shadow_clip_model: str | None = None  # default: clip_model
    shadow_clip_weights: str | None = None  # needed to mirror: the candidate's weights source
    shadow_queue_size: int = Field(default=64, ge=1)  # mirrored queries waiting; more are dropped (counted)
    shadow_log_dir: Path | None = None  # comparisons, one JSON-lines file per shadow version; default <index_path>/shadow

    _split_api_keys = field_validator("api_keys", mode="before")(_comma_list)

    @field_validator("es_rescore_oversample")
    @classmethod
    def _oversample(cls, value: float) -> float:
        # elasticsearch-specification specification/_types/mapping/DenseVectorProperty.ts
        # (DenseVectorIndexOptionsRescoreVector.oversample): "between 1.0 and 10.0 (inclusive), or 0 exactly"
        if not (value == 0 or 1.0 <= value <= 10.0):
            raise ValueError("must be 0 (off) or between 1.0 and 10.0, as Elasticsearch accepts")
        return value

    @property
    def resolved_index_backend(self) -> Literal["embedded", "elasticsearch"]:
        if self.index_backend == "auto":
            return "elasticsearch" if self.es_url else "embedded"
        return self.index_backend

    @property
    def resolved_index_path(self) -> Path:
        return self.index_path or self.data_dir / "index"

    @property
    def resolved_shadow_log_dir(self) -> Path:
        return self.shadow_log_dir or self.resolved_index_path / "shadow"

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
