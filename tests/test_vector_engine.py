"""numpack.vector_engine against NumPy references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpack import NumPack
from numpack.exceptions import ArrayNotFoundError
from numpack.vector_engine import StreamingVectorEngine, VectorEngine

FLOAT_METRICS = ["dot", "cosine", "l2", "l2sq", "kl", "js"]
SIMILARITY = ("dot", "cosine")


def ref(a: np.ndarray, b: np.ndarray, metric: str, eps: float = 1e-7) -> float:
    """float64 definition of each metric (KL/JS with the kernels' epsilon)."""
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
        return float((a * np.log((a + eps) / (b + eps))).sum())
    if metric == "js":
        m = 0.5 * (a + b)
        d = (a * np.log((a + eps) / (m + eps))).sum() + (b * np.log((b + eps) / (m + eps))).sum()
        return float(np.sqrt(max(d / 2, 0.0)))
    raise AssertionError(metric)


def ranking(scores: np.ndarray, metric: str, k: int) -> list[int]:
    """Best-first indices, ties by lower index, NaN last."""
    key = -scores if metric in SIMILARITY else scores
    key = np.where(np.isnan(key), np.inf, key)
    return np.lexsort((np.arange(len(scores)), key))[:k].tolist()


def bits_ref(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    ua, ub = np.unpackbits(a), np.unpackbits(b)
    if metric == "hamming":
        return float((ua != ub).sum())
    union = (ua | ub).sum()
    return 1.0 if union == 0 else 1.0 - (ua & ub).sum() / union


def data(dtype: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.random(shape).astype(dtype)


@pytest.fixture
def engine() -> VectorEngine:
    return VectorEngine()


@pytest.mark.parametrize("metric", FLOAT_METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8])
def test_every_metric_and_dtype_matches_numpy(
    engine: VectorEngine, metric: str, dtype: type
) -> None:
    cands, qs = data(dtype, (2000, 37), 1), data(dtype, (3, 37), 2)
    if dtype == np.int8 and metric in ("kl", "js"):
        with pytest.raises(ValueError, match="Unsupported metric"):
            engine.batch_compute(qs[0], cands, metric)
        return
    eps = 1e-15 if dtype == np.float64 else 1e-7
    want = np.array([[ref(q, c, metric, eps) for c in cands] for q in qs])
    # float16 accumulates in float32, KL/JS use numkong's logarithm; the rest is float64-exact.
    tol = 1e-4 if dtype == np.float16 or metric in ("kl", "js") else 1e-11
    got = engine.batch_compute(qs[0], cands, metric)
    assert got.dtype == np.float64 and got.shape == (2000,)
    np.testing.assert_allclose(got, want[0], rtol=tol, atol=tol)
    many = engine.batch_compute(qs, cands, metric)
    assert many.shape == (3, 2000)
    np.testing.assert_allclose(many, want, rtol=tol, atol=tol)
    assert engine.compute_metric(qs[0], cands[3], metric) == pytest.approx(
        want[0, 3], rel=tol, abs=tol
    )
    exact = tol < 1e-6
    idx, scores = engine.top_k_search(qs[1], cands, metric, 10)
    assert idx.dtype == np.uint64 and scores.dtype == np.float64 and idx.shape == (10,)
    own = engine.batch_compute(qs[1], cands, metric)
    assert idx.tolist() == ranking(want[1] if exact else own, metric, 10)
    np.testing.assert_allclose(scores, own[idx.astype(np.intp)], rtol=1e-12)
    mi, ms = engine.multi_query_top_k(qs, cands, metric, 10)
    assert mi.shape == (30,) and ms.shape == (30,)
    for i in range(3):
        ref_row = want[i] if exact else engine.batch_compute(qs[i], cands, metric)
        assert mi[i * 10 : (i + 1) * 10].tolist() == ranking(ref_row, metric, 10)


@pytest.mark.parametrize("metric", ["dot", "cosine", "l2", "l2sq"])
def test_float32_search_is_exact_against_float64(engine: VectorEngine, metric: str) -> None:
    """The f32 filtering pass must return the float64 top k, also around rows it cannot
    bound (zero, huge, NaN)."""
    rng = np.random.default_rng(3)
    cands = rng.standard_normal((60_000, 64)).astype(np.float32)
    cands[::101] = 0
    cands[7, 0], cands[9, 3] = np.nan, 1e30
    qs = rng.standard_normal((6, 64)).astype(np.float32)
    c64 = cands.astype(np.float64)
    with np.errstate(all="ignore"):
        for k in (1, 10, 200):
            mi, ms = engine.multi_query_top_k(qs, cands, metric, k)
            for i, q in enumerate(qs.astype(np.float64)):
                if metric in ("dot", "cosine"):
                    s = c64 @ q
                    if metric == "cosine":
                        n = np.linalg.norm(c64, axis=1) * np.linalg.norm(q)
                        s = np.where(n == 0, 0.0, s / np.where(n == 0, 1, n))
                else:
                    s = ((c64 - q) ** 2).sum(1)
                    s = np.sqrt(s) if metric == "l2" else s
                want = ranking(s, metric, k)
                assert mi[i * k : (i + 1) * k].tolist() == want
                np.testing.assert_allclose(ms[i * k : (i + 1) * k], s[want], rtol=1e-9)
                if i == 0:
                    one, _ = engine.top_k_search(qs[0], cands, metric, k)
                    assert one.tolist() == want


def test_mixed_and_wider_dtypes_promote_to_float64(engine: VectorEngine) -> None:
    rng = np.random.default_rng(2)
    c8 = rng.integers(-100, 100, (50, 16)).astype(np.int8)
    q8 = rng.integers(-100, 100, 16).astype(np.int8)
    for metric in ("dot", "cosine", "l2", "l2sq"):
        want = np.array([ref(q8, c, metric) for c in c8])
        np.testing.assert_allclose(engine.batch_compute(q8, c8, metric), want, rtol=1e-12)
        mixed = engine.batch_compute(q8.astype(np.float64), c8.astype(np.float16), metric)
        np.testing.assert_allclose(mixed, want, rtol=1e-12)
        wide = engine.batch_compute(q8.astype(np.int64), c8.astype(np.int32), metric)
        np.testing.assert_allclose(wide, want, rtol=1e-12)
    q16, c32 = rng.random(16).astype(np.float16), rng.random((40, 16)).astype(np.float32)
    want = np.array([ref(q16, c, "dot") for c in c32])
    np.testing.assert_allclose(engine.batch_compute(q16, c32, "dot"), want, rtol=1e-12)
    with pytest.raises(TypeError, match="Unsupported dtype"):
        engine.batch_compute(q16.astype(np.complex64), c32, "dot")


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
        with pytest.raises(ArrayNotFoundError, match=r"^Array 'nope' not found in NumPack$"):
            eng.streaming_top_k_from_file(q, store, "nope", "l2", 3)
        with pytest.raises(ValueError, match="not found"):
            eng.streaming_top_k_from_file(q, tmp_path / "missing.npk", "emb", "l2", 3)
        # A float64 query on a float32 array is promoted to float64, as in memory.
        idx64, sc64 = eng.streaming_top_k_from_file(q.astype(np.float64), store, "emb", "l2", 3)
        want_i, want_s = mem.top_k_search(q.astype(np.float64), logical, "l2", 3)
        np.testing.assert_array_equal(idx64, want_i)
        np.testing.assert_allclose(sc64, want_s, rtol=1e-12)
        with pytest.raises(ValueError, match="Dimension mismatch"):
            eng.streaming_top_k_from_file(q[:4], store, "emb", "l2", 3)
        with pytest.raises(ValueError):
            eng.streaming_multi_query_top_k(q, store, "emb", "l2", 3)
        with pytest.raises(ValueError):
            eng.streaming_top_k_from_file(q, store, "emb", "l2", 3, batch_size=0)


def test_capabilities_zero_width_and_bool(engine: VectorEngine) -> None:
    caps = engine.capabilities()
    assert caps.startswith("CPU: ")
    assert any(x in caps for x in ("AVX-512", "AVX2", "NEON", "SVE", "scalar"))
    assert StreamingVectorEngine().capabilities() == caps
    z = np.zeros((4, 0), np.float32)
    assert engine.batch_compute(z[0], z, "cosine").tolist() == [1.0] * 4
    assert engine.batch_compute(z[0], z, "l2").tolist() == [0.0] * 4
    assert engine.top_k_search(z[0], z, "dot", 2)[0].tolist() == [0, 1]
    bits = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], bool)
    assert engine.batch_compute(bits[0], bits, "hamming").tolist() == [0.0, 2.0, 1.0]
    assert engine.top_k_search(bits[2], bits, "jaccard", 3)[0].tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="bool"):
        engine.batch_compute(bits[0], bits, "dot")


def test_streaming_float64_large_k_and_appends(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    store = tmp_path / "s.npk"
    a64 = rng.standard_normal((3000, 12))
    eng, mem = StreamingVectorEngine(), VectorEngine()
    with NumPack(store) as npk:
        npk.save({"e64": a64})
    for metric in ("dot", "cosine", "l2", "l2sq", "kl", "js"):
        q = np.abs(a64[5]) if metric in ("kl", "js") else a64[5]
        src = np.abs(a64) if metric in ("kl", "js") else a64
        if metric in ("kl", "js"):
            with NumPack(store) as npk:
                npk.save({"p64": src})
        name = "p64" if metric in ("kl", "js") else "e64"
        idx, sc = eng.streaming_top_k_from_file(q, store, name, metric, 10_000, 700)
        want_i, want_s = mem.top_k_search(q, src, metric, 10_000)
        assert idx.shape == (3000,)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_allclose(sc, want_s, rtol=1e-12)
    q32 = a64[0].astype(np.float32)
    idx, sc = eng.streaming_top_k_from_file(q32, store, "e64", "l2", 3)
    np.testing.assert_array_equal(idx, mem.top_k_search(q32, a64, "l2", 3)[0])
    # Rows appended through another handle are seen by the next search.
    with NumPack(store) as npk:
        npk.append({"e64": a64[:10] * 100})
    idx, _ = eng.streaming_top_k_from_file(a64[3] * 100, store, "e64", "l2", 1)
    assert idx.tolist() == [3003]
    # float64 queries search float64 arrays here too (the published engine cast them to float32).
    mi, ms = eng.streaming_multi_query_top_k(a64[:2], store, "e64", "dot", 2)
    assert mi.shape == (4,) and ms.dtype == np.float64


@pytest.mark.parametrize(
    ("dtype", "metric"),
    [(np.float16, "cosine"), (np.float16, "l2sq"), (np.int8, "dot"), (np.int8, "l2"),
     (np.uint8, "hamming"), (np.bool_, "jaccard"), (np.bool_, "hamming")],
)  # fmt: skip
def test_streaming_every_stored_dtype_matches_in_memory(
    tmp_path: Path, dtype: type, metric: str
) -> None:
    rng = np.random.default_rng(9)
    raw = rng.integers(-100, 100, (900, 16)) if dtype == np.int8 else rng.random((900, 16)) * 255
    arr = (raw > 127) if dtype == np.bool_ else raw.astype(dtype)
    store = tmp_path / "d.npk"
    with NumPack(store) as npk:
        npk.save({"v": arr})
        npk.drop("v", [0, 10, 899])
        logical = npk.load("v")
    eng, mem = StreamingVectorEngine(), VectorEngine()
    queries = logical[[5, 77]]
    promoted = [queries[0].astype(np.float64)] if dtype in (np.float16, np.int8) else []
    for q in [queries[0], *promoted]:
        idx, sc = eng.streaming_top_k_from_file(q, store, "v", metric, 9, batch_size=100)
        want_i, want_s = mem.top_k_search(q, logical, metric, 9)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_allclose(sc, want_s, rtol=1e-12)
        assert idx.dtype == np.uint64 and sc.dtype == np.float64
    full = eng.streaming_batch_compute(queries, store, "v", metric, batch_size=64)
    np.testing.assert_allclose(full, mem.batch_compute(queries, logical, metric), rtol=1e-12)
    mi, ms = eng.streaming_multi_query_top_k(queries, store, "v", metric, 4, batch_size=50)
    want_i, want_s = mem.multi_query_top_k(queries, logical, metric, 4)
    np.testing.assert_array_equal(mi, want_i)
    assert mi.shape == (8,) and ms.dtype == np.float64
    assert eng.streaming_top_k_from_file(queries[0], store, "v", metric, 0)[0].shape == (0,)
    with pytest.raises(ArrayNotFoundError, match=r"^Array 'w' not found in NumPack$"):
        eng.streaming_top_k_from_file(queries[0], store, "w", metric, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_streaming_search_of_a_snapshot_sees_its_version(tmp_path: Path, dtype: type) -> None:
    """A snapshot given in place of the store path is searched at its version, whatever was
    replaced, dropped or appended since."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 8)).astype(dtype)
    q = rng.standard_normal(8).astype(np.float32)
    eng, mem = StreamingVectorEngine(), VectorEngine()
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"x": x})
        npk.drop("x", [7])
        want = np.delete(x, 7, axis=0)
        with npk.snapshot() as snap:
            npk.replace({"x": (x[:10] * 100).astype(dtype)}, list(range(10)))
            npk.drop("x", [20, 21])
            npk.append({"x": x[:5]})
            idx, scores = eng.streaming_top_k_from_file(q, snap, "x", "cosine", 5, 64)
            wi, ws = mem.top_k_search(q, want, "cosine", 5)
            np.testing.assert_array_equal(idx, wi)
            np.testing.assert_allclose(scores, ws, rtol=1e-5)
            all_scores = eng.streaming_batch_compute(q[None, :], snap, "x", "dot", 50)
            np.testing.assert_allclose(all_scores, mem.batch_compute(q[None, :], want, "dot"),
                                       rtol=1e-4, atol=1e-4)  # fmt: skip
            with pytest.raises(ArrayNotFoundError):
                eng.streaming_top_k_from_file(q, snap, "nope", "cosine", 5)
        # The store itself is searched at its current state.
        idx, _ = eng.streaming_top_k_from_file(q, tmp_path / "s.npk", "x", "l2", 3)
        assert idx.max() < npk.get_shape("x")[0]


def test_streaming_search_of_a_store_is_one_committed_state(tmp_path: Path) -> None:
    """A search from a store never mixes rows of two states: a writer process keeps
    replacing every 100th row with one new value while searches run; in each search, the
    scores of those rows (dot with ones) are all one value. (Without the consistency check
    every search of this test was torn.)"""
    import multiprocessing as mp
    import time

    p = tmp_path / "s.npk"
    rows, dim = 500_000, 16
    with NumPack(p) as npk:
        npk.save({"x": np.zeros((rows, dim), np.float32)})
        start = npk.version

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=_replace_forever, args=(str(p), rows, dim, stop))
    proc.start()
    try:
        eng = StreamingVectorEngine()
        q = np.ones((4, dim), np.float32)
        with NumPack(p) as npk:
            deadline = time.monotonic() + 60
            while npk.version < start + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen = set()
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                s = eng.streaming_batch_compute(q, p, "x", "dot", 1000)[0][::100]
                assert s.min() == s.max(), (s.min(), s.max())
                seen.add(float(s[0]))
            assert len(seen) > 1, "the writer never ran during the searches"
    finally:
        stop.set()
        proc.join(30)
    assert proc.exitcode == 0


def _replace_forever(path: str, rows: int, dim: int, stop: object) -> None:
    with NumPack(path) as npk:
        idx = np.arange(0, rows, 100)
        block = np.empty((len(idx), dim), np.float32)
        v = 0
        while not stop.is_set():  # type: ignore[attr-defined]
            v += 1
            block.fill(v)
            npk.replace({"x": block}, idx)


NUMERIC = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64,
           np.uint16, np.uint32, np.uint64, np.uint8, np.bool_, np.complex64]  # fmt: skip
ALL_METRICS = [*FLOAT_METRICS, "hamming", "jaccard"]


def promoted(qd: np.dtype, cd: np.dtype, metric: str) -> np.dtype | None:
    """The promotion table of numpack::vector::promote, written again from its docs: the
    kernel dtype, or None where the engine refuses the pair."""
    if np.complex64 in (qd, cd):
        return None
    if metric in ("hamming", "jaccard"):
        return np.dtype(np.uint8) if qd == cd and qd in (np.bool_, np.uint8) else None
    if np.bool_ in (qd, cd) or np.uint8 in (qd, cd):
        return None
    if qd == cd and qd in (np.float32, np.float64, np.float16):
        return qd
    if qd == cd == np.int8:
        return qd if metric in ("dot", "cosine", "l2", "l2sq") else None
    return np.dtype(np.float64)


def sample(dtype: type, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -50), min(info.max, 50), shape).astype(dtype)
    return (rng.random(shape) + 0.01).astype(dtype)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    qd=st.sampled_from(NUMERIC),
    cd=st.sampled_from(NUMERIC),
    metric=st.sampled_from(ALL_METRICS),
    dim=st.integers(0, 11),
    seed=st.integers(0, 2**16),
)
def test_one_promotion_table_in_memory_streamed_and_on_snapshots(
    tmp_path_factory, qd, cd, metric, dim, seed
):
    from numpack import DtypeMismatchError

    rng = np.random.default_rng(seed)
    q = sample(qd, (2, dim), rng)
    c = sample(cd, (40, dim), rng)
    kernel = promoted(np.dtype(qd), np.dtype(cd), metric)
    mem, eng = VectorEngine(), StreamingVectorEngine()
    if kernel is None:
        with pytest.raises(DtypeMismatchError):
            mem.batch_compute(q, c, metric)
        return
    got = mem.batch_compute(q, c, metric)
    if metric in ("hamming", "jaccard"):
        pq = np.packbits(q, axis=-1) if qd == np.bool_ else q
        pc = np.packbits(c, axis=-1) if cd == np.bool_ else c
        want = np.array([[bits_ref(a, b, metric) for b in pc] for a in pq])
        if dim == 0:
            want = np.full(
                (len(q), len(c)), bits_ref(np.zeros(1, np.uint8), np.zeros(1, np.uint8), metric)
            )
        np.testing.assert_array_equal(got, want)
    elif dim == 0:
        want = np.array([[ref(np.zeros(1), np.zeros(1), metric)] * len(c)] * len(q))
        np.testing.assert_allclose(got, want)
    else:
        # The promoted pair scores exactly as the kernel dtype's own search ...
        qk, ck = q.astype(kernel), c.astype(kernel)
        np.testing.assert_array_equal(got, mem.batch_compute(qk, ck, metric))
        if metric not in ("kl", "js"):  # (kl / js: epsilon-guarded, checked elsewhere)
            # ... which is the float64 definition of the metric.
            want = np.array([[ref(a, b, metric) for b in ck] for a in qk])
            rtol = 1e-3 if kernel == np.float16 else 1e-6
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9)
    # Streamed from a store (deleted rows skipped) and from a snapshot: the same answer.
    # (A stored array of width 0 is refused: its row count is backed by no data.)
    store = tmp_path_factory.mktemp("p") / "s.npk"
    with NumPack(store) as npk:
        npk.save({"v": np.concatenate([c[:1], c])})
        npk.drop("v", [0])
        snap = npk.snapshot()
        npk.replace({"v": c[:1]}, [1])  # after the snapshot: not seen by it
    try:
        for src in (snap, store):
            if dim == 0:
                with pytest.raises(ValueError, match="dimension 0"):
                    eng.streaming_batch_compute(q, src, "v", metric)
                continue
            cur = c if src is snap else np.concatenate([c[:1], c[:1], c[2:]])
            s = eng.streaming_batch_compute(q, src, "v", metric, batch_size=7)
            np.testing.assert_array_equal(s, mem.batch_compute(q, cur, metric))
            i, v = eng.streaming_multi_query_top_k(q, src, "v", metric, 5, batch_size=9)
            wi, wv = mem.multi_query_top_k(q, cur, metric, 5)
            np.testing.assert_array_equal(i, wi)
            np.testing.assert_array_equal(v, wv)
    finally:
        snap.close()
