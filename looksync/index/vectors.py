"""Checks on the vectors an index stores and is queried with, shared by every backend.

Stored vectors must be finite, float, of the version's size and L2-normalised (so cosine similarity is a
dot product); a bad row is reported with the reason rather than written.
"""

from __future__ import annotations

import numpy as np

from looksync.index.base import IndexBackendError

NORM_TOLERANCE = 1e-3


def vector_problem(vector: object, dim: int, norm_tolerance: float = NORM_TOLERANCE) -> str | None:
    """Why ``vector`` cannot be stored in an index of ``dim`` dimensions, or None when it can."""
    try:
        arr = np.asarray(vector)
    except (TypeError, ValueError) as exc:
        return f"vector is not a numeric array: {exc}"
    if arr.dtype.kind != "f":
        return f"vector dtype {arr.dtype} is not floating point"
    if arr.ndim != 1 or arr.shape[0] != dim:
        return f"vector shape {arr.shape} does not match the version's dim {dim}"
    finite = np.isfinite(arr)
    if not finite.all():
        return f"vector has {int((~finite).sum())} NaN/infinite value(s)"
    norm = float(np.linalg.norm(arr.astype(np.float64)))
    if abs(norm - 1.0) > norm_tolerance:
        return f"vector is not L2-normalised (norm {norm:.6f})"
    return None


def vector_problems(vectors: object, dim: int, norm_tolerance: float = NORM_TOLERANCE) -> list[str | None]:
    """``vector_problem`` of each row of ``vectors``: a float matrix of ``dim`` columns is checked in one
    vectorised pass (only the rows that fail get their message from ``vector_problem``); anything else
    row by row."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype in (np.float32, np.float64) and vectors.shape[1] == dim:
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        # in the vectors' own precision, with a margin: a row near the tolerance's edge is checked one by
        # one in float64 below, so every verdict is ``vector_problem``'s
        ok = np.isfinite(vectors).all(axis=1) & (np.abs(norms - 1.0) <= norm_tolerance * 0.99)
        problems: list[str | None] = [None] * len(vectors)
        for i in np.flatnonzero(~ok):
            problems[i] = vector_problem(vectors[i], dim, norm_tolerance)
        return problems
    return [vector_problem(v, dim, norm_tolerance) for v in vectors]


def query_vector(vector: object, dim: int) -> np.ndarray:
    """A query as a unit float32 vector of ``dim`` values; raises ``IndexBackendError`` naming the problem."""
    try:
        arr = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IndexBackendError(f"query vector is not a numeric array: {exc}") from None
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise IndexBackendError(f"query vector shape {arr.shape} does not match the index's dim {dim}")
    if not np.isfinite(arr).all():
        raise IndexBackendError("query vector has NaN/infinite values")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise IndexBackendError("query vector is all zeros")
    return (arr / norm).astype(np.float32)
