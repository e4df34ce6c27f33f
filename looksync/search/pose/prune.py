"""A LiteRT model cut, in memory, to the outputs LookSync reads.

``pose_landmark_full.tflite`` computes five outputs: the 195 landmark values, the pose-presence flag, a
256 x 256 person mask, 64 x 64 x 39 heatmaps and 117 world-landmark values. The pose finder reads the first
two, but an interpreter runs every operator of its graph whether or not anything reads the result, so the
mask and heatmap branches cost about 40% of each landmark call. ``prune_outputs`` keeps the operators the
wanted outputs depend on (249 of 332 for the landmark model) and drops the others; what remains computes
the same values, bit for bit (``tests/search/test_pose.py``). The file on disk stays the verified one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def prune_outputs(model: bytes, keep: Callable[[tuple[int, ...]], bool]) -> bytes:
    """``model`` (a .tflite flatbuffer with one subgraph) with only the outputs whose shape (batch
    dimension dropped) ``keep`` accepts and the operators they need. Unchanged when it keeps every output."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(parsed.subgraphs) != 1:
        raise ValueError(f"prune_outputs: expected one subgraph, the model has {len(parsed.subgraphs)}")
    graph = parsed.subgraphs[0]
    outputs = [int(t) for t in graph.outputs]
    shapes = {t: tuple(int(d) for d in graph.tensors[t].shape) for t in outputs}
    wanted = [t for t in outputs if keep(shapes[t][1:])]
    if not wanted:
        raise ValueError(f"prune_outputs: no output of the model is kept; its output shapes: {list(shapes.values())}")
    if len(wanted) == len(outputs):
        return model
    producer = {int(t): k for k, op in enumerate(graph.operators) for t in (op.outputs if op.outputs is not None else [])}
    needed: set[int] = set()
    pending = list(wanted)
    while pending:  # walk back from the wanted outputs to the graph's inputs and constants
        k = producer.get(pending.pop())
        if k is None or k in needed:
            continue
        needed.add(k)
        pending.extend(int(t) for t in graph.operators[k].inputs if t >= 0)
    graph.operators = [op for k, op in enumerate(graph.operators) if k in needed]  # execution order kept
    graph.outputs = wanted
    builder = flatbuffers.Builder(len(model))
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
