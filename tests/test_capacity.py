"""The capacity plan's arithmetic (looksync/capacity.py): the documented formulas exactly, and the
properties any plan must have (monotone in products and looks, replicas multiply what is copied and
nothing else, quantisation orders memory), the CLI, and the Redis measurement against the local Redis."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import replace

import pytest
from click.testing import CliRunner

from looksync.capacity import GIB, MEASURED, MODELS, CapacityInputs, knn_ms, measure_redis_attr_bytes, plan, render
from looksync.cli import main

REDIS_URL = "redis://127.0.0.1:6379/11"  # the local Redis the tests use; keys under a fresh prefix, deleted
PAPER = CapacityInputs(products=12_000_000, dims=1024, quantisation="int8", looks_per_day=350_000, peak_factor=3,
                       layers_per_look=5, replicas=1)  # fmt: skip


def test_int8_memory_follows_the_elasticsearch_formula():
    p = plan(PAPER)
    # ES docs: int8 num_vectors * (dims + 4), graph num_vectors * 4 * m; raw float32 kept on disk
    assert p.vector_ram_bytes_per_vector == 1024 + 4 and p.graph_bytes_per_vector == 4 * 16
    assert p.graph_upper_bytes_per_vector == 2 * 16 * 4
    assert p.raw_disk_bytes_per_vector == 4 * 1024
    assert p.ram_bytes_per_copy == 12_000_000 * (1028 + 64)
    assert p.disk_bytes_per_copy == 12_000_000 * (1028 + 64 + 4096 + PAPER.other_bytes_per_product)
    assert p.snapshot_bytes == p.disk_bytes_per_copy
    assert p.index_type == "int8_hnsw"


def test_quantisation_orders_memory_and_float_keeps_no_second_copy():
    plans = {q: plan(replace(PAPER, quantisation=q)) for q in ("float", "int8", "int4", "bbq")}
    ram = [plans[q].ram_bytes_per_copy for q in ("float", "int8", "int4", "bbq")]
    assert ram == sorted(ram, reverse=True) and len(set(ram)) == 4
    assert plans["float"].vector_ram_bytes_per_vector == 4 * 1024 and plans["float"].raw_disk_bytes_per_vector == 0
    assert plans["int4"].vector_ram_bytes_per_vector == 512 + 4 and plans["bbq"].vector_ram_bytes_per_vector == 128 + 14


@pytest.mark.parametrize("field", ["ram_bytes_per_copy", "disk_bytes_per_copy", "data_nodes", "primary_shards",
                                   "redis_attr_bytes", "redis_bytes", "snapshot_bytes", "reembed_core_hours",
                                   "knn_cores_peak"])  # fmt: skip
def test_monotone_in_products(field):
    sizes = sorted({int(10 ** (e / 8)) for e in range(0, 73)} | {12_000_000})  # 1 to 1e9, 8 steps a decade
    values = [getattr(plan(replace(PAPER, products=n)), field) for n in sizes]
    assert values == sorted(values), (field, values)
    assert values[-1] > values[0]


def test_replicas_multiply_what_is_copied_and_nothing_else():
    one, three = plan(replace(PAPER, replicas=0)), plan(replace(PAPER, replicas=2))
    assert (one.copies, three.copies) == (1, 3)
    assert three.ram_bytes_per_copy * three.copies == pytest.approx(3 * one.ram_bytes_per_copy * one.copies)
    assert three.vector_ram_gib_per_node * three.data_nodes == pytest.approx(3 * one.vector_ram_gib_per_node * one.data_nodes)
    assert three.snapshot_bytes == one.snapshot_bytes  # a snapshot holds the primaries
    assert three.knn_qps_peak == one.knn_qps_peak and three.query_clip_cores_peak == one.query_clip_cores_peak
    assert three.redis_bytes == one.redis_bytes
    for replicas in range(0, 5):
        assert plan(replace(PAPER, replicas=replicas)).data_nodes >= replicas + 1  # copies of a shard on distinct nodes


def test_query_load_is_linear_in_looks_and_peak_and_independent_of_products():
    base = plan(PAPER)
    assert base.looks_per_s_mean == pytest.approx(350_000 / 86_400)
    assert base.knn_qps_peak == pytest.approx(350_000 / 86_400 * 3 * 5)
    doubled = plan(replace(PAPER, looks_per_day=700_000))
    assert doubled.knn_qps_peak == pytest.approx(2 * base.knn_qps_peak)
    assert doubled.query_clip_cores_peak == pytest.approx(2 * base.query_clip_cores_peak)
    assert plan(replace(PAPER, peak_factor=6)).knn_qps_peak == pytest.approx(2 * base.knn_qps_peak)
    assert plan(replace(PAPER, products=1_000)).knn_qps_peak == base.knn_qps_peak
    more = [plan(replace(PAPER, looks_per_day=x)).data_nodes for x in (1e3, 1e5, 1e7, 1e9)]
    assert more == sorted(more) and more[-1] > more[0]  # enough queries need more nodes for CPU alone


def test_clip_cores_come_from_the_measured_per_item_costs():
    costs = MODELS["ViT-H-14"]
    p = plan(PAPER)
    assert (p.crops_per_look, p.texts_per_look) == (6, 5)
    per_look = 6 * costs.image_core_s.value + 5 * costs.text_core_s.value
    assert p.query_clip_cores_peak == pytest.approx(p.looks_per_s_peak * per_look / PAPER.cpu_target)
    assert p.reembed_core_hours == pytest.approx(12_000_000 * costs.image_core_s.value / 3600)
    assert p.reembed_cores == pytest.approx(p.reembed_core_hours / 24)
    assert plan(replace(PAPER, reembed_hours=48)).reembed_cores == pytest.approx(p.reembed_cores / 2)
    assert p.query_gpus is None and p.reembed_gpus is None and "no GPU figure" in render(p)
    gpu = plan(replace(PAPER, gpu_images_per_s=100.0))
    assert gpu.reembed_gpus == math.ceil(12_000_000 / 100 / (24 * 3600))
    assert gpu.query_gpus >= 1


def test_shards_stay_near_the_target_size_and_cover_the_nodes():
    for n in (10_000, 1_000_000, 12_000_000, 200_000_000):
        p = plan(replace(PAPER, products=n))
        assert p.shard_gib <= PAPER.shard_gib + 1e-9
        assert p.primary_shards * p.copies >= p.data_nodes
        assert p.vector_ram_gib_per_node <= p.page_cache_gib_per_node  # the vectors fit the nodes' page cache


def test_knn_cost_scales_with_dims_beam_and_rows():
    ref = MEASURED["knn_ms"].value
    assert knn_ms(1_000_000, 512, 256, 1.0) == pytest.approx(ref)
    assert knn_ms(1_000_000, 1024, 256, 1.0) == pytest.approx(2 * ref)
    assert knn_ms(1_000_000, 512, 128, 2.0) == pytest.approx(ref)
    assert ref < knn_ms(10_000_000, 512, 256, 1.0) < 2 * ref  # logarithmic in rows


@pytest.mark.parametrize("bad", [dict(products=0), dict(peak_factor=0.5), dict(replicas=-1), dict(quantisation="pq"),
                                 dict(model="RN50"), dict(cpu_target=0), dict(heap_gib=80.0), dict(dims=1001, quantisation="bbq")])  # fmt: skip
def test_bad_inputs_are_refused_by_name(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name.split("_")[0]):
        plan(replace(PAPER, **bad))


def test_cli_prints_the_plan_and_json():
    runner = CliRunner()
    result = runner.invoke(main, ["capacity", "--products", "12000000", "--looks-per-day", "350000", "--layers", "5"])
    assert result.exit_code == 0, result.output
    for needle in ("data nodes", "primary shards", "kNN QPS needed", "query side", "full re-embedding", "Redis",
                   "per index snapshot", "int8_hnsw"):  # fmt: skip
        assert needle in result.output
    as_json = runner.invoke(main, ["capacity", "--products", "12000000", "--replicas", "2", "--json"])
    data = json.loads(as_json.output)
    assert data["copies"] == 3 and data["inputs"]["dims"] == 1024 and data["sources"]["knn_ms"].startswith("docs/index.md")
    assert data["ram_bytes_per_copy"] == plan(replace(PAPER, replicas=2)).ram_bytes_per_copy
    refused = runner.invoke(main, ["capacity", "--products", "10", "--model", "RN50"])
    assert refused.exit_code != 0 and "no measured costs" in refused.output


def test_redis_bytes_per_product_are_measured_on_redis():
    import redis

    from bench.bench_capacity_inputs import products

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    prefix = f"looksync-capacity-test-{uuid.uuid4().hex[:8]}"
    measured = measure_redis_attr_bytes(client, products(500), prefix)
    assert list(client.scan_iter(f"{prefix}:*")) == []  # cleaned up
    # the recorded figure (20,000 products) is within a factor of two of a small run's
    assert MEASURED["redis_attr_bytes"].value / 2 < measured < MEASURED["redis_attr_bytes"].value * 2
    assert plan(replace(PAPER, products=1_000_000)).redis_attr_bytes / GIB == pytest.approx(
        1_000_000 * MEASURED["redis_attr_bytes"].value / GIB
    )
