"""Exact similarity search: ``VectorEngine`` (in memory) and ``StreamingVectorEngine`` (from a
store, batch by batch, logical rows only).

The signatures and result shapes are those of the published NumPack 0.6; where it crashed,
these return the obvious answer (``k = 0`` or no candidates → empty results, negative ``k`` →
``ValueError``). Scores are float64; indices uint64. Similarities (``dot``, ``cosine``) rank
descending, distances ascending; NaN scores rank last.

Which dtypes are searched together, and how (native float32/float64/float16/int8 kernels,
packed bits for hamming/jaccard, float64 for any other pair) is decided once, in the engine
(``numpack::vector::promote``), for in-memory and streamed searches alike; pairs it cannot
search raise ``DtypeMismatchError``. This module only adapts the published signatures.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .snapshot import Snapshot

__all__ = ["MetricType", "StreamingVectorEngine", "VectorEngine"]

MetricType = Literal[
    "dot", "dot_product", "dotproduct", "inner", "inner_product", "cos", "cosine",
    "cosine_similarity", "l2", "euclidean", "l2_distance", "l2sq", "l2_squared",
    "squared_euclidean", "hamming", "jaccard", "kl", "kl_divergence", "js", "js_divergence",
]  # fmt: skip


def _metric(metric: Any) -> str:
    """The name the engine parses (aliases and case included); ``ValueError`` for a non-str."""
    if not isinstance(metric, str):
        raise ValueError(f"Unknown metric: {metric}")
    return metric


def _check_k(k: Any) -> int:
    """``k`` of ``segmented_top_k_search``, the one search ranked here, not in the engine."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, not {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(k)


def _array(x: Any) -> npt.NDArray[Any]:
    """``x`` as the engine takes arrays: C-contiguous, aligned, native byte order (a copy only
    when it is not). The dtype is the engine's business (``numpack::vector::promote``)."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.require(a, requirements=["C", "A"])


class VectorEngine:
    """In-memory exact search (SIMD-friendly Rust kernels, both cores, GIL released)."""

    def capabilities(self) -> str:
        """The SIMD level in use, e.g. ``"CPU: AVX-512, AVX2"``."""
        return _core.simd_capabilities()

    def compute_metric(self, a: Any, b: Any, metric: MetricType | str) -> float:
        """The metric between two 1-d vectors."""
        a, b, m = _array(a), _array(b), _metric(metric)
        if a.ndim != 1 or b.ndim != 1:
            raise TypeError("Both arrays must be 1D vectors")
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"Vector dimensions don't match: {a.shape[0]} vs {b.shape[0]}")
        return float(_core.vector_scores(a[None, :], b[None, :], m)[0, 0])

    def batch_compute(
        self, query: Any, candidates: Any, metric: MetricType | str
    ) -> npt.NDArray[np.float64]:
        """Scores of a query ``(d,)`` → ``(n,)``, or of queries ``(m, d)`` → ``(m, n)``."""
        q, c, m = _array(query), _array(candidates), _metric(metric)
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        if q.ndim not in (1, 2):
            raise TypeError(f"Query must be 1D or 2D array, got {q.ndim}D")
        out = _core.vector_scores(q[None, :] if q.ndim == 1 else q, c, m)
        return out[0] if q.ndim == 1 else out

    def top_k_search(
        self, query: Any, candidates: Any, metric: MetricType | str, k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The ``min(k, n)`` best candidates for a 1-d query, best first."""
        q, c, m = _array(query), _array(candidates), _metric(metric)
        if q.ndim != 1:
            raise TypeError("Query must be a 1D array")
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        idx, scores = _core.vector_top_k(q[None, :], c, m, k)
        return idx[0], scores[0]

    def multi_query_top_k(
        self, queries: Any, candidates: Any, metric: MetricType | str, k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """Top-k of every query, flattened row-major: shape ``(n_queries * min(k, n),)``."""
        q, c, m = _array(queries), _array(candidates), _metric(metric)
        if q.ndim != 2:
            raise TypeError("Queries must be a 2D array")
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        idx, scores = _core.vector_top_k(q, c, m, k)
        return idx.reshape(-1), scores.reshape(-1)

    def segmented_top_k_search(
        self,
        query: Any,
        candidates: Any,
        metric: MetricType | str,
        global_offset: int,
        current_indices: npt.NDArray[np.uint64],
        current_scores: npt.NDArray[np.float64],
        k: int,
        is_similarity: bool,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """Merge the scores of one candidate batch (labelled ``global_offset + i``) into a
        running top-k, ranked by the caller's ``is_similarity``."""
        k = _check_k(k)
        if not isinstance(current_indices, np.ndarray) or current_indices.dtype != np.uint64:
            raise TypeError("current_indices must be a uint64 ndarray")
        if not isinstance(current_scores, np.ndarray) or current_scores.dtype != np.float64:
            raise TypeError("current_scores must be a float64 ndarray")
        c = _array(candidates)
        if c.ndim != 2 or c.shape[0] == 0:
            return current_indices[:k].copy(), current_scores[:k].copy()
        scores = self.batch_compute(query, c, metric)
        idx = np.concatenate(
            [current_indices, np.arange(c.shape[0], dtype=np.uint64) + global_offset]
        )
        sc = np.concatenate([current_scores, scores])
        return _rank(idx, sc, k, bool(is_similarity))


def _rank(
    idx: npt.NDArray[np.uint64], sc: npt.NDArray[np.float64], k: int, similarity: bool
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
    """The ``k`` best of ``(idx, sc)`` by the engine's order: similarities descending,
    distances ascending, NaN last, ties to the lower index."""
    key = np.where(np.isnan(sc), np.inf, -sc if similarity else sc)
    order = np.lexsort((idx, key))[:k]
    return idx[order], sc[order]


class StreamingVectorEngine:
    """Exact search over an array of a store (or a snapshot, at its version), read batch by
    batch from its mapping (deleted rows skipped; indices are logical rows). Sees every
    committed array, also ones written by another open handle."""

    def capabilities(self) -> str:
        """The SIMD level in use."""
        return _core.simd_capabilities()

    @staticmethod
    def _source(npk_dir: str | os.PathLike[str] | Snapshot) -> Any:
        """What the engine searches: a snapshot (at its version) or a store's path."""
        return npk_dir._core if isinstance(npk_dir, Snapshot) else os.fspath(npk_dir)

    def streaming_top_k_from_file(
        self,
        query: Any,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        metric: MetricType | str,
        k: int,
        batch_size: int = 10000,
        *,
        exact: bool = False,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The ``min(k, rows)`` best logical rows of ``array_name`` for a 1-d query: through
        the array's index when it has a current one of this metric (``exact=False``; rows
        found approximately, scores exact), else exactly."""
        q, m = _array(query), _metric(metric)
        if q.ndim != 1:
            raise TypeError("Query must be a 1D array")
        idx, scores = self._top_k(npk_dir, array_name, q[None, :], m, k, batch_size, exact)
        return idx[0], scores[0]

    def _top_k(
        self,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        q: npt.NDArray[Any],
        m: str,
        k: int,
        batch_size: int,
        exact: bool,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        src = self._source(npk_dir)
        if exact or isinstance(npk_dir, Snapshot):
            return _core.vector_stream_top_k(src, array_name, q, m, k, batch_size)
        idx, scores, _ = _core.index_search(src, array_name, q, k, m, None, None, False, batch_size)
        return idx, scores

    def streaming_batch_compute(
        self,
        query: Any,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        metric: MetricType | str,
        batch_size: int = 10000,
    ) -> npt.NDArray[np.float64]:
        """Scores against every logical row: ``(rows,)`` for a 1-d query, ``(m, rows)`` for 2-d."""
        q, m = _array(query), _metric(metric)
        if q.ndim not in (1, 2):
            raise TypeError(f"Query must be 1D or 2D array, got {q.ndim}D")
        src = self._source(npk_dir)
        q2 = q[None, :] if q.ndim == 1 else q
        out = _core.vector_stream_scores(src, array_name, q2, m, batch_size)
        return out[0] if q.ndim == 1 else out

    def streaming_multi_query_top_k(
        self,
        queries: Any,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        metric: MetricType | str,
        k: int,
        batch_size: int = 10000,
        *,
        exact: bool = False,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """Top-k of every query, flattened row-major: ``(n_queries * min(k, rows),)``;
        through the array's index as ``streaming_top_k_from_file``."""
        q, m = _array(queries), _metric(metric)
        if q.ndim != 2:
            raise ValueError("Queries must be a 2D array")
        idx, scores = self._top_k(npk_dir, array_name, q, m, k, batch_size, exact)
        return idx.reshape(-1), scores.reshape(-1)
