"""A capacity plan for LookSync on Elasticsearch, from measured per-item costs and documented formulas.

``plan(CapacityInputs(...))`` is pure arithmetic over the inputs and the ``MEASURED`` per-item costs
(each naming where it was measured); ``looksync capacity`` prints it and docs/capacity.md works the
paper's case (12M products, ViT-H-14, 350,000 looks a day). Sources of the formulas:

- Elasticsearch vector memory (page cache, off-heap), elastic/docs-content
  ``deploy-manage/production-guidance/optimize-performance/approximate-knn-search.md`` ("Ensure data
  nodes have enough memory"): per vector ``dims * 4`` (float), ``dims + 4`` (int8), ``dims / 2 + 4``
  (int4), ``dims / 8 + 14`` (bbq), plus the HNSW graph ``4 * m``; quantised formats also keep the raw
  float32 vectors on disk (read for rescoring), "increasing disk usage by up to 25%" for int8.
  Lucene's bottom HNSW layer allows up to ``2 * m`` neighbours a node, so ``8 * m`` bytes is the graph's
  upper bound (reported beside the documented estimate).
- Heap: at most half the node's RAM and below the compressed-pointer limit (~31 GiB), Elasticsearch's
  "Set the JVM heap size" guidance; the page cache gets the rest minus the OS.
- Shard size: "aim for shards ... with sizes between 10GB and 50GB" (elastic/docs-content
  ``deploy-manage/production-guidance/optimize-performance/size-shards.md``).
- kNN cost: linear in the dimensions (the same approximate-knn-search page), about logarithmic in the
  rows a graph holds, linear in the candidate beam (HNSW); scaled from ``bench/bench_index.py``'s
  measured FAISS HNSW query, times ``engine_overhead`` (Lucene in the JVM, per-segment graphs,
  the request) which is an assumption, not a measurement.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

GIB = 1024**3
Quantisation = Literal["float", "int8", "int4", "bbq"]
INDEX_TYPES: dict[str, str] = {"float": "hnsw", "int8": "int8_hnsw", "int4": "int4_hnsw", "bbq": "bbq_hnsw"}


@dataclass(frozen=True)
class Measured:
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class ModelCosts:
    """CPU seconds per item of one CLIP model, measured by bench/bench_embeddings.py (docs/embeddings.md):
    the 2-core machine's throughput, so core-seconds = 2 / (items per second)."""

    dims: int
    image_core_s: Measured
    text_core_s: Measured


_EMB = "docs/embeddings.md, bench/bench_embeddings.py on the 2-core AMD EPYC, torch 2 threads, CPU fp32, load ~2"
MODELS: dict[str, ModelCosts] = {
    "ViT-H-14": ModelCosts(
        1024,
        Measured(2 / 0.46, "core-s/image", f"{_EMB}: ViT-H-14 pipeline from JPEG, batch 8, 0.46 images/s"),
        Measured(2 / 2.37, "core-s/text", f"{_EMB}: ViT-H-14 texts, batch 1, 2.37 texts/s"),
    ),
    "ViT-B-32": ModelCosts(
        512,
        Measured(2 / 16.36, "core-s/image", f"{_EMB}: ViT-B-32 bare forward, batch 32, 16.36 images/s"),
        Measured(2 / 17.19, "core-s/text", f"{_EMB}: ViT-B-32 texts, batch 1, 17.19 texts/s"),
    ),
}

MEASURED: dict[str, Measured] = {
    # one HNSW search over 1M rows of 512-d at the beam reaching recall >= 0.95, single thread
    "knn_ms": Measured(
        0.84,
        "ms per query (1M rows, 512-d, efSearch 256, 1 thread)",
        "docs/index.md, bench/bench_index.py --n 1000000: FAISS IndexHNSWFlat efSearch=256, recall@10 0.979, "
        "p50 (p95 1.52 ms), 2-core AMD EPYC, load 4.1 -> 1.4",
    ),
    # bench/bench_capacity_inputs.py: AttributeMirror.upsert into the local Redis, MEMORY USAGE summed
    # over the product hashes and the market/layer/category/all sets, per product
    "redis_attr_bytes": Measured(
        635.0,
        "bytes per product",
        "bench/bench_capacity_inputs.py --n 20000: AttributeMirror on Redis 7.0.15, MEMORY USAGE of the hashes and "
        "sets, load 5.3",
    ),
    # the JSON of one product as the index stores and the service returns it (bench/bench_capacity_inputs.py)
    "product_json_bytes": Measured(
        912.0, "bytes per product", "bench/bench_capacity_inputs.py --n 20000: mean Product JSON of the generated products"
    ),
}
KNN_REF_ROWS, KNN_REF_DIMS, KNN_REF_BEAM = 1_000_000, 512, 256


@dataclass(frozen=True)
class CapacityInputs:
    products: int
    dims: int = 1024
    quantisation: Quantisation = "int8"
    looks_per_day: float = 350_000
    peak_factor: float = 3.0  # peak hour rate / mean rate (an assumption: measure your traffic)
    layers_per_look: int = 5  # kNN queries per look, one per layer
    replicas: int = 1  # LOOKSYNC_ES_REPLICAS
    model: str = "ViT-H-14"  # picks the measured CLIP costs
    hnsw_m: int = 16  # LOOKSYNC_ES_HNSW_M
    k: int = 10
    candidates_per_k: int = 10  # LOOKSYNC_INDEX_CANDIDATES_PER_K: num_candidates = k x this
    rescore_oversample: float = 3.0  # LOOKSYNC_ES_RESCORE_OVERSAMPLE
    crops_per_look: int | None = None  # image forwards per look; default layers + 1 (local query generator)
    texts_per_look: int | None = None  # text forwards per look (cache misses); default one per layer
    node_ram_gib: float = 64.0
    node_cores: int = 16
    heap_gib: float | None = None  # default: min(31, RAM / 2)
    os_reserve_gib: float = 2.0
    cache_share_for_vectors: float = 0.8  # the rest of the page cache for other fields (the ES docs' buffer)
    cpu_target: float = 0.6  # target CPU utilisation at the peak
    engine_overhead: float = 3.0  # Elasticsearch per-query cost / bare FAISS HNSW (an assumption)
    shard_gib: float = 30.0  # target primary shard size (10-50 GB recommended)
    other_bytes_per_product: float = 1500.0  # stored fields, doc values, postings per product (assumption)
    images_per_product: int = 1  # ingestion embeds the first image
    reembed_hours: float = 24.0  # window for a full re-embedding
    gpu_images_per_s: float | None = None  # measured GPU throughput, when one was measured
    gpu_texts_per_s: float | None = None
    text_cache_ttl_s: int = 3600  # LOOKSYNC_CACHE_TTL_S
    look_cache_ttl_s: int = 900  # LOOKSYNC_LOOK_CACHE_TTL_S
    redis_headroom: float = 1.25  # allocator fragmentation and replication buffers (an assumption)

    def validate(self) -> None:
        problems = []
        for name in ("products", "dims", "layers_per_look", "node_cores", "k", "candidates_per_k", "hnsw_m"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("looks_per_day", "node_ram_gib", "reembed_hours", "shard_gib", "engine_overhead"):
            if not float(getattr(self, name)) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.peak_factor < 1:
            problems.append(f"peak_factor must be >= 1 (peak over mean), got {self.peak_factor!r}")
        if self.replicas < 0:
            problems.append(f"replicas must be >= 0, got {self.replicas!r}")
        if self.quantisation not in INDEX_TYPES:
            problems.append(f"quantisation must be one of {sorted(INDEX_TYPES)}, got {self.quantisation!r}")
        if self.model not in MODELS:
            problems.append(f"model must be one of {sorted(MODELS)} (measured costs), got {self.model!r}")
        if not 0 < self.cpu_target <= 1 or not 0 < self.cache_share_for_vectors <= 1:
            problems.append("cpu_target and cache_share_for_vectors must be in (0, 1]")
        if self.quantisation == "bbq" and self.dims % 8:
            problems.append("bbq needs dims divisible by 8")
        if self.heap_gib is not None and not 0 < self.heap_gib < self.node_ram_gib - self.os_reserve_gib:
            problems.append(f"heap_gib must leave RAM for the page cache ({self.node_ram_gib} GiB RAM)")
        if problems:
            raise ValueError("capacity inputs: " + "; ".join(problems))


@dataclass
class CapacityPlan:
    inputs: CapacityInputs
    index_type: str
    # per vector and per copy of the index
    vector_ram_bytes_per_vector: float
    graph_bytes_per_vector: float
    graph_upper_bytes_per_vector: float
    raw_disk_bytes_per_vector: float
    ram_bytes_per_copy: float  # vectors + graph, for the page cache
    disk_bytes_per_copy: float  # raw + quantised vectors + graph + other fields
    copies: int
    # nodes
    heap_gib: float
    page_cache_gib_per_node: float
    data_nodes: int
    data_nodes_for_memory: int
    data_nodes_for_cpu: int
    primary_shards: int
    shard_gib: float
    vector_ram_gib_per_node: float
    disk_gib_per_node: float
    # queries
    looks_per_s_mean: float
    looks_per_s_peak: float
    knn_qps_mean: float
    knn_qps_peak: float
    knn_ms_per_shard_search: float
    knn_cores_peak: float
    knn_qps_capacity_per_node: float
    rescore_bytes_per_query: float
    # CLIP
    crops_per_look: int
    texts_per_look: int
    query_clip_cores_peak: float
    reembed_core_hours: float
    reembed_cores: float
    query_gpus: int | None
    reembed_gpus: int | None
    # Redis, S3
    redis_attr_bytes: float
    redis_text_cache_bytes: float
    redis_look_cache_bytes: float
    redis_bytes: float
    snapshot_bytes: float
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inputs"] = asdict(self.inputs)
        return out


def vector_ram_bytes(dims: int, quantisation: str) -> float:
    """Page-cache bytes of one vector's searchable form (the ES docs' formula)."""
    return {"float": dims * 4, "int8": dims + 4, "int4": dims / 2 + 4, "bbq": dims / 8 + 14}[quantisation]


def knn_ms(rows: int, dims: int, beam: int, overhead: float) -> float:
    """Single-thread ms of one HNSW search of ``rows`` vectors, scaled from the measured FAISS query:
    linear in dims and beam, logarithmic in rows, times the engine overhead."""
    rows_factor = math.log(max(rows, 2)) / math.log(KNN_REF_ROWS)
    return MEASURED["knn_ms"].value * (dims / KNN_REF_DIMS) * (beam / KNN_REF_BEAM) * rows_factor * overhead


def plan(inputs: CapacityInputs) -> CapacityPlan:
    inputs.validate()
    n, d, q = inputs.products, inputs.dims, inputs.quantisation
    copies = inputs.replicas + 1
    costs = MODELS[inputs.model]

    vec_ram = vector_ram_bytes(d, q)
    graph = 4.0 * inputs.hnsw_m
    raw = 4.0 * d if q != "float" else 0.0  # quantised formats keep the float32 vectors on disk
    ram_per_copy = n * (vec_ram + graph)
    disk_per_copy = n * (vec_ram + graph + raw + inputs.other_bytes_per_product)

    heap = inputs.heap_gib if inputs.heap_gib is not None else min(31.0, inputs.node_ram_gib / 2)
    cache_gib = inputs.node_ram_gib - heap - inputs.os_reserve_gib
    vectors_gib_per_node_max = cache_gib * inputs.cache_share_for_vectors
    nodes_mem = max(1, math.ceil(ram_per_copy * copies / GIB / vectors_gib_per_node_max))

    looks_mean = inputs.looks_per_day / 86_400
    looks_peak = looks_mean * inputs.peak_factor
    qps_mean, qps_peak = looks_mean * inputs.layers_per_look, looks_peak * inputs.layers_per_look
    beam = inputs.k * inputs.candidates_per_k

    # shards: by size first; then enough that every data node holds a copy; the kNN cost depends on the
    # rows per shard, so settle the pair (a few rounds: both only grow)
    shards = max(1, math.ceil(disk_per_copy / GIB / inputs.shard_gib))
    for _ in range(20):
        shard_ms = knn_ms(math.ceil(n / shards), d, beam, inputs.engine_overhead)
        knn_cores = qps_peak * shards * shard_ms / 1000 / inputs.cpu_target
        nodes_cpu = max(1, math.ceil(knn_cores / inputs.node_cores))
        nodes = max(nodes_mem, nodes_cpu, copies)
        wanted = max(shards, math.ceil(nodes / copies))
        if wanted == shards:
            break
        shards = wanted
    # a query searches one copy of every shard: a node's cores at the target serve this many queries/s
    per_node_capacity = inputs.node_cores * inputs.cpu_target * 1000 / (shard_ms * shards)

    crops = inputs.crops_per_look if inputs.crops_per_look is not None else inputs.layers_per_look + 1
    texts = inputs.texts_per_look if inputs.texts_per_look is not None else inputs.layers_per_look
    per_look_core_s = crops * costs.image_core_s.value + texts * costs.text_core_s.value
    query_cores = looks_peak * per_look_core_s / inputs.cpu_target
    reembed_core_s = n * inputs.images_per_product * costs.image_core_s.value
    reembed_cores = reembed_core_s / (inputs.reembed_hours * 3600)
    query_gpus = reembed_gpus = None
    if inputs.gpu_images_per_s:
        gpu_texts = inputs.gpu_texts_per_s or inputs.gpu_images_per_s
        gpu_busy = looks_peak * (crops / inputs.gpu_images_per_s + texts / gpu_texts)
        query_gpus = max(1, math.ceil(gpu_busy / inputs.cpu_target))
        reembed_gpus = max(1, math.ceil(n * inputs.images_per_product / inputs.gpu_images_per_s / (inputs.reembed_hours * 3600)))

    attr = n * MEASURED["redis_attr_bytes"].value
    text_entry = 4 * d + 120  # a float32 vector as bytes, its key and the entry's overhead
    text_cache = looks_peak * inputs.text_cache_ttl_s * texts * text_entry  # every text distinct: upper bound
    look_response = inputs.layers_per_look * inputs.k * (MEASURED["product_json_bytes"].value + 200) + 2000
    look_cache = looks_peak * inputs.look_cache_ttl_s * look_response  # every look distinct: upper bound
    redis_total = (attr + text_cache + look_cache) * inputs.redis_headroom

    sources = {key: m.source for key, m in MEASURED.items()}
    sources["image_core_s"] = costs.image_core_s.source
    sources["text_core_s"] = costs.text_core_s.source
    return CapacityPlan(
        inputs=inputs,
        index_type=INDEX_TYPES[q],
        vector_ram_bytes_per_vector=vec_ram,
        graph_bytes_per_vector=graph,
        graph_upper_bytes_per_vector=8.0 * inputs.hnsw_m,
        raw_disk_bytes_per_vector=raw,
        ram_bytes_per_copy=ram_per_copy,
        disk_bytes_per_copy=disk_per_copy,
        copies=copies,
        heap_gib=heap,
        page_cache_gib_per_node=cache_gib,
        data_nodes=nodes,
        data_nodes_for_memory=nodes_mem,
        data_nodes_for_cpu=nodes_cpu,
        primary_shards=shards,
        shard_gib=disk_per_copy / shards / GIB,
        vector_ram_gib_per_node=ram_per_copy * copies / nodes / GIB,
        disk_gib_per_node=disk_per_copy * copies / nodes / GIB,
        looks_per_s_mean=looks_mean,
        looks_per_s_peak=looks_peak,
        knn_qps_mean=qps_mean,
        knn_qps_peak=qps_peak,
        knn_ms_per_shard_search=shard_ms,
        knn_cores_peak=knn_cores,
        knn_qps_capacity_per_node=per_node_capacity,
        rescore_bytes_per_query=(raw or 4.0 * d) * inputs.k * inputs.rescore_oversample * shards if q != "float" else 0.0,
        crops_per_look=crops,
        texts_per_look=texts,
        query_clip_cores_peak=query_cores,
        reembed_core_hours=reembed_core_s / 3600,
        reembed_cores=reembed_cores,
        query_gpus=query_gpus,
        reembed_gpus=reembed_gpus,
        redis_attr_bytes=attr,
        redis_text_cache_bytes=text_cache,
        redis_look_cache_bytes=look_cache,
        redis_bytes=redis_total,
        snapshot_bytes=disk_per_copy,
        sources=sources,
    )


def _gib(value: float) -> str:
    return f"{value / GIB:,.1f} GiB"


def render(p: CapacityPlan) -> str:
    """The plan as the text ``looksync capacity`` prints."""
    i = p.inputs
    gpu_query = f"{p.query_gpus} GPU(s)" if p.query_gpus is not None else "no GPU figure (none measured; pass --gpu-images-per-s)"
    gpu_reembed = f"{p.reembed_gpus} GPU(s)" if p.reembed_gpus is not None else "no GPU figure"
    lines = [
        f"LookSync capacity plan: {i.products:,} products, {i.dims}-d {i.model}, {p.index_type} (m={i.hnsw_m}), "
        f"{i.looks_per_day:,.0f} looks/day x{i.peak_factor:g} peak, {i.layers_per_look} layers/look, {i.replicas} replica(s)",
        "",
        "Elasticsearch",
        f"  vector bytes/vector     {p.vector_ram_bytes_per_vector:,.0f} (page cache) + HNSW graph {p.graph_bytes_per_vector:,.0f} "
        f"(docs estimate 4*m; up to {p.graph_upper_bytes_per_vector:,.0f} at Lucene's 2*m layer-0 links)"
        + (f" + raw float32 {p.raw_disk_bytes_per_vector:,.0f} on disk (rescoring)" if p.raw_disk_bytes_per_vector else ""),
        f"  off-heap (page cache)   {_gib(p.ram_bytes_per_copy)} per copy, {_gib(p.ram_bytes_per_copy * p.copies)} for {p.copies} copies",
        f"  disk                    {_gib(p.disk_bytes_per_copy)} per copy, {_gib(p.disk_bytes_per_copy * p.copies)} in all",
        f"  data nodes              {p.data_nodes} x ({i.node_cores} cores, {i.node_ram_gib:g} GiB RAM: heap {p.heap_gib:g} GiB, "
        f"page cache {p.page_cache_gib_per_node:g} GiB) [memory needs {p.data_nodes_for_memory}, kNN CPU needs "
        f"{p.data_nodes_for_cpu}, copies need {p.copies}]",
        f"  per node                {p.vector_ram_gib_per_node:,.1f} GiB of vectors+graph in page cache, {p.disk_gib_per_node:,.1f} GiB disk",
        f"  primary shards          {p.primary_shards} (~{p.shard_gib:,.1f} GiB each), {p.primary_shards * p.copies} shard copies",
        "",
        "Queries",
        f"  looks/s                 {p.looks_per_s_mean:,.2f} mean, {p.looks_per_s_peak:,.2f} peak",
        f"  kNN QPS needed          {p.knn_qps_mean:,.1f} mean, {p.knn_qps_peak:,.1f} peak (one kNN per layer)",
        f"  kNN cost                {p.knn_ms_per_shard_search:,.2f} ms per shard search (scaled from the measured FAISS query, "
        f"x{i.engine_overhead:g} engine overhead), {p.knn_cores_peak:,.1f} cores at peak ({i.cpu_target:.0%} target)",
        f"  kNN QPS per node        {p.knn_qps_capacity_per_node:,.0f} queries/s per data node at the target, "
        f"{p.knn_qps_capacity_per_node * p.data_nodes:,.0f} for the cluster ({p.knn_qps_peak / p.data_nodes:,.1f} needed per node)",
        f"  rescoring reads         {p.rescore_bytes_per_query / 1024:,.0f} KiB of raw vectors per query "
        f"(k x oversample {i.rescore_oversample:g} per shard)",
        "",
        f"CLIP ({i.model}, CPU figures measured on 2 cores)",
        f"  query side              {p.crops_per_look} crops + {p.texts_per_look} texts per look: "
        f"{p.query_clip_cores_peak:,.0f} CPU cores at peak ({i.cpu_target:.0%} target), or {gpu_query}",
        f"  full re-embedding       {p.reembed_core_hours:,.0f} core-hours: {p.reembed_cores:,.0f} cores for {i.reembed_hours:g} h, "
        f"or {gpu_reembed}",
        "",
        "Redis",
        f"  attribute mirror        {_gib(p.redis_attr_bytes)}",
        f"  text-vector cache       {_gib(p.redis_text_cache_bytes)} (TTL {i.text_cache_ttl_s} s, every text distinct)",
        f"  look-response cache     {_gib(p.redis_look_cache_bytes)} (TTL {i.look_cache_ttl_s} s, every look distinct)",
        f"  total                   {_gib(p.redis_bytes)} (x{i.redis_headroom:g} headroom)",
        "",
        "S3",
        f"  per index snapshot      {_gib(p.snapshot_bytes)} (one copy: primaries; the first snapshot of a version is full)",
    ]
    return "\n".join(lines)


def to_json(p: CapacityPlan) -> str:
    return json.dumps(p.as_dict(), indent=2, sort_keys=True)


def measure_redis_attr_bytes(client: Any, products: list, prefix: str) -> float:
    """Bytes per product the attribute mirror takes in Redis (``MEMORY USAGE`` of every key it writes
    under ``prefix``, summed, over the products); the keys are deleted afterwards."""
    from looksync.catalog.attribute_mirror import AttributeMirror

    mirror = AttributeMirror(client, prefix)
    try:
        mirror.upsert(products)
        total = sum(int(client.memory_usage(key, samples=0) or 0) for key in client.scan_iter(f"{prefix}:*", count=1000))
    finally:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    return total / max(1, len(products))
