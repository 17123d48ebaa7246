"""numpack.vector_engine against NumPy references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numpack import NumPack
from numpack.exceptions import ArrayNotFoundError
from numpack.vector_engine import StreamingVectorEngine, VectorEngine

EPS = 1e-7
FLOAT_METRICS = ["dot", "cosine", "l2", "l2sq", "kl", "js"]


def ref(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "dot":
        return float(a @ b)
    if metric == "cosine":
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 and nb == 0:
            return 1.0
        return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))
    if metric == "l2":
        return float(np.sqrt(((a - b) ** 2).sum()))
    if metric == "l2sq":
        return float(((a - b) ** 2).sum())
    if metric == "kl":
        return float((a * np.log((a + EPS) / (b + EPS))).sum())
    if metric == "js":
        m = 0.5 * (a + b)
        d = 0.5 * (a * np.log((a + EPS) / (m + EPS))).sum()
        d += 0.5 * (b * np.log((b + EPS) / (m + EPS))).sum()
        return float(np.sqrt(max(d, 0.0)))
    raise AssertionError(metric)


def bits_ref(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    ua, ub = np.unpackbits(a), np.unpackbits(b)
    if metric == "hamming":
        return float((ua != ub).sum())
    union = (ua | ub).sum()
    return 1.0 if union == 0 else 1.0 - (ua & ub).sum() / union


@pytest.fixture
def engine() -> VectorEngine:
    return VectorEngine()


@pytest.mark.parametrize("metric", FLOAT_METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_metrics_match_numpy(engine: VectorEngine, metric: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    cands = rng.random((300, 37)).astype(dtype)
    q = rng.random(37).astype(dtype)
    got = engine.batch_compute(q, cands, metric)
    want = np.array([ref(q, c, metric) for c in cands])
    assert got.dtype == np.float64 and got.shape == (300,)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    assert engine.compute_metric(q, cands[3], metric) == pytest.approx(want[3], rel=2e-4, abs=2e-4)
    idx, scores = engine.top_k_search(q, cands, metric, 10)
    order = np.argsort(-want if metric in ("dot", "cosine") else want, kind="stable")[:10]
    assert idx.dtype == np.uint64 and scores.dtype == np.float64
    np.testing.assert_allclose(scores, want[order], rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("metric", ["dot", "cosine", "l2", "l2sq"])
def test_int8_and_mixed_dtypes(engine: VectorEngine, metric: str) -> None:
    rng = np.random.default_rng(2)
    c8 = rng.integers(-100, 100, (50, 16)).astype(np.int8)
    q8 = rng.integers(-100, 100, 16).astype(np.int8)
    want = np.array([ref(q8, c, metric) for c in c8])
    np.testing.assert_allclose(engine.batch_compute(q8, c8, metric), want, rtol=1e-5)
    mixed = engine.batch_compute(q8.astype(np.float64), c8.astype(np.float32), metric)
    np.testing.assert_allclose(mixed, want, rtol=1e-9)


@pytest.mark.parametrize("metric", ["hamming", "jaccard"])
def test_binary_metrics(engine: VectorEngine, metric: str) -> None:
    rng = np.random.default_rng(3)
    cands = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    q = rng.integers(0, 256, 8, dtype=np.uint8)
    want = np.array([bits_ref(q, c, metric) for c in cands])
    np.testing.assert_allclose(engine.batch_compute(q, cands, metric), want)
    bq, bc = np.unpackbits(q).astype(bool), np.unpackbits(cands, axis=1).astype(bool)
    np.testing.assert_allclose(engine.batch_compute(bq, bc, metric), want)
    assert engine.compute_metric(np.zeros(8, np.uint8), np.zeros(8, np.uint8), "jaccard") == 1.0


def test_aliases_and_directions(engine: VectorEngine) -> None:
    c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    q = np.array([1.0, 0.0], np.float32)
    for alias in ("DOT", "dot_product", "dotproduct", "inner", "inner_product"):
        assert list(engine.top_k_search(q, c, alias, 3)[0]) == [0, 2, 1]
    for alias in ("euclidean", "l2_distance", "L2", "l2_squared", "squared_euclidean"):
        assert list(engine.top_k_search(q, c, alias, 3)[0]) == [0, 2, 1]
    assert list(engine.top_k_search(q, c, "cos", 1)[0]) == [0]
    # Ties keep the lower index first.
    tie = np.ones((5, 2), np.float32)
    assert list(engine.top_k_search(q, tie, "dot", 3)[0]) == [0, 1, 2]
    # A zero vector in cosine: 0.0 against non-zero, 1.0 against zero.
    assert engine.compute_metric(np.zeros(2), np.ones(2), "cosine") == 0.0
    assert engine.compute_metric(np.zeros(2), np.zeros(2), "cosine") == 1.0


def test_k_edges_and_errors(engine: VectorEngine) -> None:
    rng = np.random.default_rng(4)
    c = rng.random((20, 4)).astype(np.float32)
    q = c[0]
    idx, sc = engine.top_k_search(q, c, "l2", 0)
    assert idx.shape == (0,) and sc.shape == (0,)
    idx, sc = engine.top_k_search(q, c[:0], "l2", 5)
    assert idx.shape == (0,)
    idx, _ = engine.top_k_search(q, c, "l2", 100)
    assert sorted(idx.tolist()) == list(range(20)) and idx[0] == 0
    mi, ms = engine.multi_query_top_k(c[:3], c, "l2", 2)
    assert mi.shape == (6,) and ms.shape == (6,) and list(mi[::2]) == [0, 1, 2]
    assert engine.multi_query_top_k(c[:3], c, "l2", 50)[0].shape == (60,)
    with pytest.raises(ValueError):
        engine.top_k_search(q, c, "l2", -1)
    with pytest.raises(ValueError, match="Unknown metric"):
        engine.batch_compute(q, c, "manhattan")
    with pytest.raises(ValueError, match="dimension"):
        engine.batch_compute(q[:3], c, "dot")
    with pytest.raises(ValueError):
        engine.compute_metric(q, q[:2], "dot")
    with pytest.raises(TypeError):
        engine.top_k_search(c, c, "dot", 2)
    with pytest.raises(TypeError):
        engine.batch_compute(q, q, "dot")
    with pytest.raises(TypeError):
        engine.multi_query_top_k(q, c, "dot", 2)
    with pytest.raises(ValueError, match="uint8"):
        engine.batch_compute(np.zeros(4, np.uint8), np.zeros((2, 4), np.uint8), "cosine")
    with pytest.raises(ValueError):
        engine.batch_compute(q, c, "hamming")


def test_segmented_top_k_matches_a_single_search(engine: VectorEngine) -> None:
    rng = np.random.default_rng(5)
    c = rng.random((1000, 8))
    q = rng.random(8)
    idx = np.empty(0, np.uint64)
    sc = np.empty(0, np.float64)
    for start in range(0, 1000, 128):
        idx, sc = engine.segmented_top_k_search(
            q, c[start : start + 128], "cosine", start, idx, sc, 7, True
        )
    want_i, want_s = engine.top_k_search(q, c, "cosine", 7)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_allclose(sc, want_s)
    with pytest.raises(TypeError):
        engine.segmented_top_k_search(q, c, "dot", 0, np.empty(0), sc, 3, True)


def test_large_k_many_queries_recall(engine: VectorEngine) -> None:
    rng = np.random.default_rng(6)
    c = rng.standard_normal((20_000, 32)).astype(np.float32)
    qs = rng.standard_normal((5, 32)).astype(np.float32)
    idx, _ = engine.multi_query_top_k(qs, c, "cosine", 10)
    cn = c.astype(np.float64) / np.linalg.norm(c.astype(np.float64), axis=1, keepdims=True)
    for i, qv in enumerate(qs.astype(np.float64)):
        want = np.argsort(-(cn @ (qv / np.linalg.norm(qv))))[:10]
        assert list(idx[i * 10 : (i + 1) * 10]) == list(want)


def test_streaming_skips_deleted_rows_and_sees_other_handles(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = rng.random((5000, 16)).astype(np.float32)
    store = tmp_path / "v.npk"
    eng, mem = StreamingVectorEngine(), VectorEngine()
    assert isinstance(eng, StreamingVectorEngine)
    with NumPack(store) as npk:
        npk.save({"emb": data})
        npk.drop("emb", list(range(0, 5000, 7)))
        logical = npk.load("emb")
        q = logical[123]
        # Still open: a streaming search sees the committed rows.
        idx, sc = eng.streaming_top_k_from_file(q, store, "emb", "l2", 5, batch_size=333)
        want_i, want_s = mem.top_k_search(q, logical, "l2", 5)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_allclose(sc, want_s, rtol=1e-6)
        assert idx[0] == 123
        full = eng.streaming_batch_compute(q, store, "emb", "dot", batch_size=1000)
        np.testing.assert_allclose(full, mem.batch_compute(q, logical, "dot"), rtol=1e-5)
        two = eng.streaming_batch_compute(logical[:2], store, "emb", "dot")
        assert two.shape == (2, logical.shape[0])
        mi, _ = eng.streaming_multi_query_top_k(logical[:3], store, "emb", "cosine", 4, 500)
        assert mi.shape == (12,) and list(mi[::4]) == [0, 1, 2]
        assert eng.streaming_top_k_from_file(q, store, "emb", "l2", 0)[0].shape == (0,)
        with pytest.raises(ArrayNotFoundError):
            eng.streaming_top_k_from_file(q, store, "nope", "l2", 3)
        with pytest.raises(ValueError, match="not found"):
            eng.streaming_top_k_from_file(q, tmp_path / "missing.npk", "emb", "l2", 3)
        with pytest.raises(TypeError, match="dtype mismatch"):
            eng.streaming_top_k_from_file(q.astype(np.float64), store, "emb", "l2", 3)
        with pytest.raises(ValueError, match="Dimension mismatch"):
            eng.streaming_top_k_from_file(q[:4], store, "emb", "l2", 3)
        with pytest.raises(ValueError):
            eng.streaming_multi_query_top_k(q, store, "emb", "l2", 3)
        with pytest.raises(ValueError):
            eng.streaming_top_k_from_file(q, store, "emb", "l2", 3, batch_size=0)
