"""Vector search benchmark: numpack.vector_engine against NumPy (and faiss-cpu if installed).

Run after a release build (``make dev-release``)::

    python benchmarks/vector_bench.py            # 1,000,000 x 128 float32, k = 10, cosine
    python benchmarks/vector_bench.py --quick    # 100,000 rows

Median of several repeats after a warm-up. Every numpack and faiss result is checked against
an exact float64 reference (indices equal, so recall@10 = 1.0; ties aside). numpack gets the
raw candidates (it computes their norms); NumPy and faiss get pre-normalised candidates.

"Read bandwidth" is the best of passes that only read memory: NumPy's sum and BLAS sgemv over
the candidates, and glibc ``memchr`` over a buffer of the same size on one and two threads (the
machine's sustained read rate as far as this script can measure it). The single-query goal is
85% of it.
Results also go to ``benchmarks/results/vector-<rows>x<dim>.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from numpack import NumPack
from numpack.vector_engine import StreamingVectorEngine, VectorEngine


def median_s(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def exact_topk(cands: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """float64 cosine top-k, ties by lower index (in slabs to bound memory)."""
    out = []
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores = np.empty((len(q), len(cands)))
    for s in range(0, len(cands), 100_000):
        c = cands[s : s + 100_000].astype(np.float64)
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        scores[:, s : s + len(c)] = q @ c.T
    for row in scores:
        out.append(np.lexsort((np.arange(len(row)), -row))[:k])
    return np.array(out)


def check(got: np.ndarray, want: np.ndarray) -> str:
    got = np.asarray(got, dtype=np.int64).reshape(want.shape)
    rec = float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))
    same = bool((got == want).all())
    return f"recall {rec:.2f}" + ("" if same else " (order differs)")


def read_bandwidth(a: np.ndarray, repeats: int) -> dict[str, float]:
    """GB/s of passes that only read memory: NumPy's sum, its BLAS sgemv (OpenBLAS threads),
    and glibc ``memchr`` over a buffer of the same size in one and two threads (ctypes
    releases the GIL)."""
    v = np.ones(a.shape[1], np.float32)
    time.sleep(0.5)
    out = {
        "numpy_sum": a.nbytes / median_s(lambda: a.sum(axis=0, dtype=np.float32), repeats),
        "blas_sgemv": a.nbytes / median_s(lambda: a @ v, repeats),
    }
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        libc.memchr.restype = ctypes.c_void_p
        libc.memchr.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
        buf = np.ones(a.nbytes, np.uint8)  # no zero byte: memchr reads all of it
        base, half = buf.ctypes.data, a.nbytes // 2
        with ThreadPoolExecutor(2) as pool:

            def two() -> None:
                list(pool.map(lambda i: libc.memchr(base + i * half, 0, half), range(2)))

            time.sleep(0.5)  # let OpenBLAS's workers stop spinning after the sgemv
            one_t = median_s(lambda: libc.memchr(base, 0, a.nbytes), repeats)
            out["memchr_1_thread"] = a.nbytes / one_t
            out["memchr_2_threads"] = a.nbytes / median_s(two, repeats)
    return {k: x / 1e9 for k, x in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rows, a.repeats = 100_000, 3
    rng = np.random.default_rng(0)
    cands = rng.standard_normal((a.rows, a.dim)).astype(np.float32)
    queries = rng.standard_normal((a.queries, a.dim)).astype(np.float32)
    want = exact_topk(cands, queries, a.k)
    q0 = queries[0]
    eng = VectorEngine()
    rows: list[dict[str, Any]] = []

    def add(name: str, t: float, note: str = "") -> None:
        rows.append({"case": name, "seconds": t, "note": note})

    normed = cands / np.linalg.norm(cands, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def numpy_one() -> np.ndarray:
        s = normed @ qn[0]
        top = np.argpartition(-s, a.k)[: a.k]
        return top[np.argsort(-s[top])]

    tmp = tempfile.TemporaryDirectory()
    store = Path(tmp.name) / "v.npk"
    with NumPack(store) as npk:
        npk.save({"emb": cands})
    stream = StreamingVectorEngine()

    # Each search returns its indices (checked against the float64 reference).
    one: dict[str, Callable[[], Any]] = {
        "numpack top_k_search, 1 query": lambda: eng.top_k_search(q0, cands, "cosine", a.k)[0],
        "NumPy normalised @ q + argpartition, 1 query": numpy_one,
        "numpack streaming from a store, 1 query": lambda: stream.streaming_top_k_from_file(
            q0, store, "emb", "cosine", a.k, 100_000
        )[0],
    }
    many: dict[str, Callable[[], Any]] = {
        f"numpack multi_query_top_k, {a.queries} queries": lambda: eng.multi_query_top_k(
            queries, cands, "cosine", a.k
        )[0],
    }
    faiss_version = None
    try:
        import faiss  # type: ignore[import-not-found]

        faiss_version = faiss.__version__
        index = faiss.IndexFlatIP(a.dim)
        index.add(normed)
        default_threads = faiss.omp_get_max_threads()

        def faiss_search(x: np.ndarray, threads: int) -> Callable[[], Any]:
            def run() -> Any:
                faiss.omp_set_num_threads(threads)
                out = index.search(x, a.k)[1]
                faiss.omp_set_num_threads(default_threads)
                return out

            return run

        for threads in sorted({1, default_threads}):
            label = f"faiss {faiss_version} IndexFlatIP, {threads} thread{'s' * (threads > 1)}"
            one[f"{label}, 1 query"] = faiss_search(qn[:1], threads)
            many[f"{label}, {a.queries} queries"] = faiss_search(qn, threads)
    except ImportError:
        add("faiss", float("nan"), "not installed")

    # One case at a time, after a pause: OpenBLAS and OpenMP workers keep spinning for a while
    # after a call, and on 2 cores a spinning pool would slow whatever runs next.
    for cases, n_q, reps in ((one, 1, a.repeats), (many, a.queries, max(3, a.repeats // 2))):
        for name, fn in cases.items():
            note = check(fn(), want[:n_q])
            time.sleep(0.5)
            add(name, median_s(fn, reps), note)
            time.sleep(0.5)
    tmp.cleanup()
    t1 = next(r["seconds"] for r in rows if r["case"].startswith("numpack top_k_search"))
    ts = next(r["seconds"] for r in rows if r["case"].startswith("numpack streaming"))
    tm = next(r["seconds"] for r in rows if r["case"].startswith("numpack multi_query"))

    bw = read_bandwidth(cands, a.repeats)
    best_bw = max(bw.values())
    gbs = cands.nbytes / t1 / 1e9
    print(
        f"{a.rows} x {a.dim} float32, k = {a.k}, cosine;",
        f"{eng.capabilities()}; {os.cpu_count()} cores",
    )
    print("| case | time | check |\n|---|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['seconds'] * 1e3:.1f} ms | {r['note']} |")
    print("\nread bandwidth (GB/s): " + ", ".join(f"{k} {v:.1f}" for k, v in bw.items()))
    print(
        f"single query reads {gbs:.1f} GB/s = {gbs / best_bw:.0%} of {best_bw:.1f} GB/s",
        "(goal >= 85%)",
    )
    faiss_m = [
        r["seconds"] for r in rows if r["case"].startswith("faiss") and "queries" in r["case"]
    ]
    if faiss_m:
        print(f"{a.queries} queries: {tm / min(faiss_m):.2f}x the faster faiss (goal <= 0.5x)")
    print(f"streaming / in-memory single query: {ts / t1:.2f}x (goal <= 1.3x)")
    out = Path(__file__).parent / "results" / f"vector-{a.rows}x{a.dim}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": a.rows,
                "dim": a.dim,
                "k": a.k,
                "queries": a.queries,
                "capabilities": eng.capabilities(),
                "machine": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "faiss": faiss_version,
                "read_bandwidth_gbs": bw,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
