"""Exact similarity search: ``VectorEngine`` (in memory) and ``StreamingVectorEngine`` (from a
store, batch by batch, logical rows only).

The signatures and result shapes are those of the published NumPack 0.6; where it crashed,
these return the obvious answer (``k = 0`` or no candidates → empty results, negative ``k`` →
``ValueError``). Scores are float64; indices uint64. Similarities (``dot``, ``cosine``) rank
descending, distances ascending; NaN scores rank last.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .exceptions import ArrayNotFoundError
from .snapshot import Snapshot

__all__ = ["MetricType", "StreamingVectorEngine", "VectorEngine"]

MetricType = Literal[
    "dot", "dot_product", "dotproduct", "inner", "inner_product", "cos", "cosine",
    "cosine_similarity", "l2", "euclidean", "l2_distance", "l2sq", "l2_squared",
    "squared_euclidean", "hamming", "jaccard", "kl", "kl_divergence", "js", "js_divergence",
]  # fmt: skip

_ALIASES = {
    "dot": "dot", "dot_product": "dot", "dotproduct": "dot", "inner": "dot",
    "inner_product": "dot", "cos": "cosine", "cosine": "cosine", "cosine_similarity": "cosine",
    "l2": "l2", "euclidean": "l2", "l2_distance": "l2", "l2sq": "l2sq", "l2_squared": "l2sq",
    "squared_euclidean": "l2sq", "hamming": "hamming", "jaccard": "jaccard", "kl": "kl",
    "kl_divergence": "kl", "js": "js", "js_divergence": "js",
}  # fmt: skip
_BINARY = ("hamming", "jaccard")
_SIMILARITY = ("dot", "cosine")


def _metric(metric: str) -> str:
    if not isinstance(metric, str) or metric.lower() not in _ALIASES:
        raise ValueError(f"Unknown metric: {metric}")
    return _ALIASES[metric.lower()]


def _array(x: Any) -> npt.NDArray[Any]:
    return x if isinstance(x, np.ndarray) else np.asarray(x)


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(np.int8))


def _prepare(
    a: npt.NDArray[Any], b: npt.NDArray[Any], metric: str
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Both operands in one kernel element type: float32, float64, float16, int8 (computed
    natively), or packed bits (uint8, bool); wider integers and mixed dtypes become float64."""
    da, db = a.dtype, b.dtype
    for d in (da, db):
        if d.kind not in "biuf":
            raise TypeError(f"Unsupported dtype: {d}")
    if metric in _BINARY:
        if da.kind == "b" and db.kind == "b":
            return _ready(np.packbits(a, axis=-1), np.uint8), _ready(
                np.packbits(b, axis=-1), np.uint8
            )
        if da == np.uint8 and db == np.uint8:
            return _ready(a, np.uint8), _ready(b, np.uint8)
        bad = db if da in (np.uint8, np.bool_) else da
        raise ValueError(f"Compute error: Unsupported metric '{metric}' for dtype {bad}")
    if "b" in (da.kind, db.kind):
        raise ValueError(f"bool arrays only support 'hamming' and 'jaccard' metrics, got: {metric}")
    if np.uint8 in (da, db):
        raise ValueError(
            f"uint8 arrays only support 'hamming' and 'jaccard' metrics, got: {metric}"
        )
    if da == db and da == np.int8 and metric not in ("dot", "cosine", "l2", "l2sq"):
        raise ValueError(f"Compute error: Unsupported metric '{metric}' for dtype int8")
    target = da if da == db and da in _NATIVE else np.dtype(np.float64)
    a, b = _ready(a, target), _ready(b, target)
    if a.shape[-1] == 0:
        # Zero-width vectors score like zero vectors of width 1 (dot 0, cosine 1, l2 0).
        a, b = np.zeros((*a.shape[:-1], 1), target), np.zeros((*b.shape[:-1], 1), target)
    return a, b


def _ready(x: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
    """C-contiguous, aligned, native-order copy (or the array itself when it already is)."""
    return np.require(x, dtype=dtype, requirements=["C", "A"])


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, not {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(k)


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
        qa, qb = _prepare(a, b, m)
        return float(_core.vector_scores(qa[None, :], qb[None, :], m)[0, 0])

    def batch_compute(
        self, query: Any, candidates: Any, metric: MetricType | str
    ) -> npt.NDArray[np.float64]:
        """Scores of a query ``(d,)`` → ``(n,)``, or of queries ``(m, d)`` → ``(m, n)``."""
        q, c, m = _array(query), _array(candidates), _metric(metric)
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        if q.ndim not in (1, 2):
            raise TypeError(f"Query must be 1D or 2D array, got {q.ndim}D")
        if q.shape[-1] != c.shape[1]:
            raise ValueError(
                f"Query dimension {q.shape[-1]} does not match candidates dimension {c.shape[1]}"
            )
        qq, cc = _prepare(q[None, :] if q.ndim == 1 else q, c, m)
        out = _core.vector_scores(qq, cc, m)
        return out[0] if q.ndim == 1 else out

    def top_k_search(
        self, query: Any, candidates: Any, metric: MetricType | str, k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The ``min(k, n)`` best candidates for a 1-d query, best first."""
        q, c, m, k = _array(query), _array(candidates), _metric(metric), _check_k(k)
        if q.ndim != 1:
            raise TypeError("Query must be a 1D array")
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        if q.shape[0] != c.shape[1]:
            raise ValueError(
                f"Query dimension {q.shape[0]} does not match candidates dimension {c.shape[1]}"
            )
        qq, cc = _prepare(q[None, :], c, m)
        idx, scores = _core.vector_top_k(qq, cc, m, k)
        return idx[0], scores[0]

    def multi_query_top_k(
        self, queries: Any, candidates: Any, metric: MetricType | str, k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """Top-k of every query, flattened row-major: shape ``(n_queries * min(k, n),)``."""
        q, c, m, k = _array(queries), _array(candidates), _metric(metric), _check_k(k)
        if q.ndim != 2:
            raise TypeError("Queries must be a 2D array")
        if c.ndim != 2:
            raise TypeError("Candidates must be a 2D array")
        if q.shape[1] != c.shape[1]:
            raise ValueError(
                f"Query dimension {q.shape[1]} does not match candidates dimension {c.shape[1]}"
            )
        qq, cc = _prepare(q, c, m)
        idx, scores = _core.vector_top_k(qq, cc, m, k)
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


class _Fallback:
    """Streaming for what the native path does not search in place (float16, integer and
    bit arrays, or a query dtype other than the array's): batches of logical rows through
    ``NumPack.stream_load`` scored by the in-memory engine, so mixed dtypes are promoted as
    there and memory stays one batch."""

    def __init__(self, source: str | Snapshot, name: str, batch_size: int) -> None:
        self.source, self.name, self.batch_size = source, name, batch_size

    def batches(self) -> Any:
        from .numpack import NumPack

        if isinstance(self.source, Snapshot):
            if not self.source.has_array(self.name):
                raise ArrayNotFoundError(f"Array '{self.name}' not found in NumPack")
            for b in self.source.stream_load(self.name, self.batch_size):
                yield b if b.ndim == 2 else b.reshape(-1, 1)
            return
        npk = NumPack(self.source)
        npk.open()
        try:
            for b in npk.stream_load(self.name, self.batch_size):
                yield b if b.ndim == 2 else b.reshape(-1, 1)
        finally:
            npk.close()

    def scores(self, q: npt.NDArray[Any], metric: str) -> npt.NDArray[np.float64]:
        engine = VectorEngine()
        parts = [engine.batch_compute(q, b, metric) for b in self.batches()]
        if not parts:
            return np.empty((q.shape[0], 0), np.float64)
        return np.concatenate(parts, axis=1)

    def top_k(self, q: npt.NDArray[Any], metric: str, k: int) -> Any:
        engine, similarity = VectorEngine(), metric in _SIMILARITY
        best = [(np.empty(0, np.uint64), np.empty(0, np.float64))] * q.shape[0]
        offset = 0
        for b in self.batches() if k else ():
            s = engine.batch_compute(q, b, metric)
            ids = np.arange(offset, offset + b.shape[0], dtype=np.uint64)
            best = [
                _rank(np.concatenate([i, ids]), np.concatenate([v, s[j]]), k, similarity)
                for j, (i, v) in enumerate(best)
            ]
            offset += b.shape[0]
        n = min((i.shape[0] for i, _ in best), default=0)
        return np.stack([i[:n] for i, _ in best]), np.stack([v[:n] for _, v in best])


def _on_store(src: str | Snapshot, call: Any) -> Any:
    """``call(path)`` as a thunk for a store path; ``None`` for a snapshot (searched by the
    fallback, through the snapshot's own stream)."""
    if isinstance(src, Snapshot):
        return None
    return lambda: call(src)


def _native(call: Any, fallback: Any, array_name: str, q: npt.NDArray[Any], metric: str) -> Any:
    """Runs the native streamed search (float queries and arrays), or ``fallback`` for bit
    metrics, other query dtypes, an array whose dtype the native path does not search in
    place, or a snapshot (``call`` is then ``None``); a missing array is reported in the
    published wording."""
    try:
        if call is None or q.dtype.kind not in "iuf" or metric in _BINARY:
            return fallback()
        return call()
    except ArrayNotFoundError:
        raise ArrayNotFoundError(f"Array '{array_name}' not found in NumPack") from None
    except TypeError as e:
        if not str(e).startswith("Array dtype mismatch"):
            raise
    return fallback()


class StreamingVectorEngine:
    """Exact search over an array of a store, read batch by batch from its mapping (deleted
    rows skipped; indices are logical rows). Sees every committed array, also ones written
    by another open handle."""

    def capabilities(self) -> str:
        """The SIMD level in use."""
        return _core.simd_capabilities()

    @staticmethod
    def _queries(q: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if q.dtype.kind not in "iuf":
            raise TypeError(f"Unsupported dtype: {q.dtype}")
        target = np.float64 if q.dtype == np.float64 else np.float32
        return _ready(q, target)

    @staticmethod
    def _source(
        npk_dir: str | os.PathLike[str] | Snapshot, array_name: str, batch_size: int
    ) -> str | Snapshot:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError("batch_size must be an int")
        if batch_size <= 0:
            raise ValueError("batch_size must be greater than 0")
        if isinstance(npk_dir, Snapshot):
            # Searched at its version, batch by batch (the snapshot's own stream).
            return npk_dir
        path = os.fspath(npk_dir)
        if not os.path.isfile(os.path.join(path, "metadata.npkm")):
            raise ArrayNotFoundError(f"Array '{array_name}' not found in NumPack")
        return path

    def streaming_top_k_from_file(
        self,
        query: Any,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        metric: MetricType | str,
        k: int,
        batch_size: int = 10000,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The ``min(k, rows)`` best logical rows of ``array_name`` for a 1-d query."""
        q, m, k = _array(query), _metric(metric), _check_k(k)
        if q.ndim != 1:
            raise TypeError("Query must be a 1D array")
        src = self._source(npk_dir, array_name, batch_size)
        idx, scores = _native(
            _on_store(
                src,
                lambda path: _core.vector_stream_top_k(
                    path, array_name, self._queries(q[None, :]), m, k, int(batch_size)
                ),
            ),
            lambda: _Fallback(src, array_name, int(batch_size)).top_k(q[None, :], m, k),
            array_name,
            q,
            m,
        )
        return idx[0], scores[0]

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
        src = self._source(npk_dir, array_name, batch_size)
        q2 = q[None, :] if q.ndim == 1 else q
        out = _native(
            _on_store(
                src,
                lambda path: _core.vector_stream_scores(
                    path, array_name, self._queries(q2), m, int(batch_size)
                ),
            ),
            lambda: _Fallback(src, array_name, int(batch_size)).scores(q2, m),
            array_name,
            q,
            m,
        )
        return out[0] if q.ndim == 1 else out

    def streaming_multi_query_top_k(
        self,
        queries: Any,
        npk_dir: str | os.PathLike[str] | Snapshot,
        array_name: str,
        metric: MetricType | str,
        k: int,
        batch_size: int = 10000,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """Top-k of every query, flattened row-major: ``(n_queries * min(k, rows),)``."""
        q, m, k = _array(queries), _metric(metric), _check_k(k)
        if q.ndim != 2:
            raise ValueError("Queries must be a 2D array")
        src = self._source(npk_dir, array_name, batch_size)
        idx, scores = _native(
            _on_store(
                src,
                lambda path: _core.vector_stream_top_k(
                    path, array_name, self._queries(q), m, k, int(batch_size)
                ),
            ),
            lambda: _Fallback(src, array_name, int(batch_size)).top_k(q, m, k),
            array_name,
            q,
            m,
        )
        return idx.reshape(-1), scores.reshape(-1)
