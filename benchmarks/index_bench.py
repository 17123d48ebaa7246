"""Vector index benchmark: numpack's IVF index against faiss (IVF-Flat, IVF-PQ, HNSW-Flat),
hnswlib and Lance IVF_PQ, on one machine in one run (issue 15's goals).

Run after a release build (``make dev-release``), with the peers installed for the benchmark
only (``uv pip install faiss-cpu hnswlib pylance matplotlib``)::

    python benchmarks/index_bench.py            # 1,000,000 x 128 float32, 1,000 clusters
    python benchmarks/index_bench.py --quick    # 100,000 x 128, 100 clusters (a smoke run)

Data: a seeded Gaussian mixture (centres N(0, 1), noise N(0, 1) per coordinate, so clusters
overlap as real embeddings do), 1,000 queries drawn from the same mixture, k = 10, cosine;
the same with uniform random vectors is reported too (``--uniform``). Recall@10 is against
numpack's exact engine (itself checked against float64 NumPy on the first queries).
Throughput is queries per second for all queries searched at once (every library on both
cores), median of 3 repeats. Each library is swept over its search parameter (nprobe, ef),
and the curve goes to ``docs/index-recall-qps.png``; the table reports, per library, the
fastest setting at recall@10 >= 0.95. Everything is written to
``benchmarks/results/index-<rows>x<dim>.json``.

Maintenance: append 10,000 rows, replace and drop 100 rows of the indexed array against the
same on an array without index (median of 5, fresh rows each time); then 20% of the rows
replaced by new mixture samples and 10% dropped, without reindexing, and recall measured
again, with every returned row checked: live, unique, and scored as the array holds it now.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from numpack import NumPack

K = 10
ROOT = Path(__file__).resolve().parent.parent


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    which = rng.integers(0, len(centres), n)
    out = centres[which]
    out += rng.standard_normal(out.shape, dtype=np.float32)
    return out


def timed(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def once(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.int64)
    return float(np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth, strict=True)]))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []
        self.curves: dict[str, list[tuple[float, float, str]]] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="index_bench."))

    def curve(self, lib: str, recall_: float, qps: float, setting: str) -> None:
        self.curves.setdefault(lib, []).append((recall_, qps, setting))
        print(f"  {lib:<22} {setting:<14} recall@10 {recall_:.3f}  {qps:10.0f} q/s", flush=True)

    def row(self, measure: str, value: float, unit_: str, note: str = "") -> None:
        self.rows.append({"measure": measure, "value": value, "unit": unit_, "note": note})
        print(f"{measure:<52} {value:12.4g} {unit_:<6} {note}", flush=True)

    def best(self, lib: str, target: float = 0.95) -> tuple[float, str] | None:
        ok = [(q, s) for r, q, s in self.curves.get(lib, []) if r >= target]
        return max(ok) if ok else None


def replot(files: list[str]) -> None:
    """One plot of the curves of several result files (a later file's library replaces an
    earlier one's; the exact engine's line is the last file's)."""
    curves: dict[str, list[tuple[float, float, str]]] = {}
    for f in files:
        data = json.loads(Path(f).read_text())
        curves.update(data["curves"])
    exact = next(r["value"] for r in data["measures"] if r["measure"].startswith("exact engine"))
    plot(curves, exact, data["rows"], data["dim"], data["uniform"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--plot", nargs="+", metavar="JSON", help="only plot these result files")
    p.add_argument("--label", default="", help="suffix of the results file's name")
    p.add_argument("--quick", action="store_true", help="100,000 rows, 100 clusters")
    p.add_argument("--rows", type=int)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--uniform", action="store_true", help="uniform random vectors instead")
    p.add_argument(
        "--skip",
        default="",
        help="comma list of what to leave out: faiss, faiss_hnsw, hnswlib, lance",
    )
    args = p.parse_args()
    if args.plot:
        replot(args.plot)
        return
    n = args.rows or (100_000 if args.quick else 1_000_000)
    clusters = 100 if args.quick else 1000
    nlist = 256 if args.quick else 1024
    dim = args.dim
    skip = set(filter(None, args.skip.split(",")))
    run = Run(args)
    rng = np.random.default_rng(42)
    if args.uniform:
        x = rng.random((n, dim), dtype=np.float32) * 2 - 1
        queries = rng.random((1000, dim), dtype=np.float32) * 2 - 1
    else:
        centres = rng.standard_normal((clusters, dim), dtype=np.float32)
        x = mixture(rng, centres, n)
        queries = mixture(rng, centres, 1000)
    train_rows = min(n, 256 * nlist)
    iters = 10
    print(
        f"{n} x {dim} float32, {'uniform' if args.uniform else f'{clusters} clusters'}, "
        f"nlist {nlist}, train {train_rows} rows x {iters} iterations, "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    store = run.tmp / "s.npk"
    npk = NumPack(store)
    npk.open()
    npk.save({"emb": x, "plain": x, "pq": x})

    # --- exact engine: the ground truth and the baseline -------------------------------
    t_exact, (truth, _) = timed(lambda: npk.search("emb", queries, k=K, exact=True), 3)
    run.row("exact engine, 1,000 queries", 1000 / t_exact, "q/s")
    ref = unit(x.astype(np.float64)) @ unit(queries[:20].astype(np.float64)).T
    ref_top = np.argsort(-ref, axis=0, kind="stable")[:K].T
    assert recall(truth[:20], ref_top) >= 0.99, "exact engine disagrees with NumPy"

    # --- numpack IVF -------------------------------------------------------------------
    t_build, _ = once(
        lambda: npk.create_index("emb", "cosine", nlist=nlist, train_rows=train_rows, iters=iters)
    )
    run.row("numpack IVF-Flat build", t_build, "s")
    info = npk.index_info("emb")
    assert info is not None
    run.row("numpack IVF-Flat size", info["base_bytes"] + info["log_bytes"], "bytes")
    npk.search("emb", queries[:1], k=K)  # loads the index
    for nprobe in (1, 2, 4, 8, 16, 32, 64):
        t, (got, _) = timed(lambda nprobe=nprobe: npk.search("emb", queries, k=K, nprobe=nprobe))
        run.curve("numpack IVF-Flat", recall(got, truth), 1000 / t, f"nprobe {nprobe}")

    # --- numpack IVF-PQ (16 bytes per row), candidates rescored from the array ---------------
    t_build, _ = once(
        lambda: npk.create_index(
            "pq", "cosine", kind="ivf_pq", nlist=nlist, m=16, train_rows=train_rows, iters=iters
        )
    )
    run.row("numpack IVF-PQ16 build", t_build, "s")
    info = npk.index_info("pq")
    assert info is not None
    run.row("numpack IVF-PQ16 size", info["base_bytes"] + info["log_bytes"], "bytes")
    npk.search("pq", queries[:1], k=K)
    for nprobe, refine in ((8, 10), (8, 25), (16, 25), (16, 50), (32, 50), (64, 50)):
        t, (got, _) = timed(
            lambda a=nprobe, b=refine: npk.search("pq", queries, k=K, nprobe=a, refine=b)
        )
        run.curve("numpack IVF-PQ16", recall(got, truth), 1000 / t, f"np {nprobe} rf {refine}")
    npk.drop_index("pq")

    # --- faiss -------------------------------------------------------------------------
    xs = unit(x)
    qs = unit(queries)
    sample = xs[np.random.default_rng(7).choice(n, train_rows, replace=False)]
    if "faiss" not in skip:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)

        def faiss_ivf(index: Any, label: str, probes: tuple[int, ...]) -> None:
            index.cp.niter = iters
            t, _ = once(lambda: (index.train(sample), index.add(xs)))
            run.row(f"faiss {label} build", t, "s")
            path = run.tmp / f"{label}.faiss"
            tw, _ = once(lambda: faiss.write_index(index, str(path)))
            run.row(f"faiss {label} build + write_index", t + tw, "s")
            run.row(f"faiss {label} size", path.stat().st_size, "bytes")
            for nprobe in probes:
                index.nprobe = nprobe
                t, (_, got) = timed(lambda: index.search(qs, K))
                run.curve(f"faiss {label}", recall(got, truth), 1000 / t, f"nprobe {nprobe}")

        quant = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        faiss_ivf(ivf, "IVF-Flat", (1, 2, 4, 8, 16, 32, 64))
        extra = (
            unit(mixture(np.random.default_rng(9), centres, 10_000))
            if not args.uniform
            else xs[:10_000]
        )
        t, _ = timed(lambda: ivf.add(extra), 3)
        run.row("faiss IVF-Flat add 10,000 rows (context)", t * 1e3, "ms")
        del ivf
        quant2 = faiss.IndexFlatIP(dim)
        ivfpq = faiss.IndexIVFPQ(quant2, dim, nlist, 16, 8, faiss.METRIC_INNER_PRODUCT)
        faiss_ivf(ivfpq, "IVF-PQ16", (4, 16, 64))
        del ivfpq
        if "faiss_hnsw" not in skip:
            hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            t, _ = once(lambda: hnsw.add(xs))
            run.row("faiss HNSW-Flat (M 32) build", t, "s")
            for ef in (16, 32, 64, 128, 256):
                hnsw.hnsw.efSearch = ef
                t, (_, got) = timed(lambda: hnsw.search(qs, K))
                run.curve("faiss HNSW-Flat", recall(got, truth), 1000 / t, f"ef {ef}")
            del hnsw

    # --- hnswlib -----------------------------------------------------------------------
    if "hnswlib" not in skip:
        import hnswlib

        h = hnswlib.Index(space="cosine", dim=dim)
        h.init_index(max_elements=n, M=16, ef_construction=100, random_seed=1)
        h.set_num_threads(os.cpu_count() or 1)
        t, _ = once(lambda: h.add_items(x, np.arange(n)))
        run.row("hnswlib (M 16, efC 100) build", t, "s")
        for ef in (16, 32, 64, 128, 256):
            h.set_ef(ef)
            t, (got, _) = timed(lambda: h.knn_query(queries, k=K))
            run.curve("hnswlib", recall(got, truth), 1000 / t, f"ef {ef}")
        del h

    # --- Lance IVF_PQ --------------------------------------------------------------------
    if "lance" not in skip:
        # Lance warns once per query about a future default; quiet it.
        os.environ.setdefault("LANCE_LOG", "error")
        os.environ.setdefault("RUST_LOG", "error")
        import lance
        import pyarrow as pa

        flat = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
        ds_path = run.tmp / "lance"
        ds = lance.write_dataset(pa.table({"v": flat}), ds_path)
        t, ds = once(
            lambda: ds.create_index(
                "v", index_type="IVF_PQ", metric="cosine", num_partitions=nlist, num_sub_vectors=16
            )
        )
        run.row("Lance IVF_PQ16 build", t, "s")
        run.row("Lance dataset + index size", size_of(ds_path), "bytes")

        def lance_search(nprobes: int, refine: int | None) -> np.ndarray:
            out = []
            for q in queries:
                tbl = ds.to_table(
                    nearest={
                        "column": "v",
                        "q": q,
                        "k": K,
                        "nprobes": nprobes,
                        "refine_factor": refine,
                    },
                    columns=[],
                    with_row_id=True,
                )
                out.append(tbl["_rowid"].to_numpy())
            return np.array(out)

        for nprobes, refine in ((8, None), (32, None), (32, 10), (64, 10)):
            t, got = timed(lambda a=nprobes, b=refine: lance_search(a, b), 1)
            run.curve(
                "Lance IVF_PQ16",
                recall(got, truth),
                1000 / t,
                f"nprobes {nprobes}" + (f" rf {refine}" if refine else ""),
            )

    # --- maintenance ---------------------------------------------------------------------
    best = run.best("numpack IVF-Flat")
    nprobe = int(best[1].split()[1]) if best else 16
    maint = mixture(rng, centres, 60_000) if not args.uniform else x[:60_000] + 0.01

    def pair(label: str, fn: Callable[[str, int], None], reps: int = 5) -> None:
        with_i, without = [], []
        for r in range(reps):
            for name, dst in (("emb", with_i), ("plain", without)):
                os.sync()  # both start from clean page cache
                t = time.perf_counter()
                fn(name, r)
                dst.append(time.perf_counter() - t)
        a, b = statistics.median(with_i), statistics.median(without)
        run.row(
            f"{label}: indexed / not indexed", a / b, "x", f"{a * 1e3:.2f} ms vs {b * 1e3:.2f} ms"
        )

    pair(
        "append 10,000 rows",
        lambda name, r: npk.append({name: maint[r * 10_000 : (r + 1) * 10_000]}),
    )
    rrng = np.random.default_rng(3)
    pair(
        "replace 100 rows",
        lambda name, r: npk.replace(
            {name: maint[50_000 + r * 100 : 50_100 + r * 100]},
            rrng.choice(n, 100, replace=False).tolist(),
        ),
    )
    pair(
        "drop 100 rows",
        lambda name, r: npk.drop(name, rrng.choice(n // 2, 100, replace=False).tolist()),
    )

    # 20% replaced, 10% dropped, no reindex.
    rows_now = npk.get_shape("emb")[0]
    pick = np.random.default_rng(5).permutation(rows_now)
    repl = np.sort(pick[: rows_now // 5])
    new = (
        mixture(rng, centres, len(repl))
        if not args.uniform
        else rng.random((len(repl), dim), dtype=np.float32) * 2 - 1
    )
    for s in range(0, len(repl), 50_000):
        npk.replace({"emb": new[s : s + 50_000]}, repl[s : s + 50_000].tolist())
    npk.drop("emb", np.sort(pick[rows_now // 5 : rows_now // 5 + rows_now // 10]).tolist())
    now = npk.load("emb")
    truth2, _ = npk.search("emb", queries, k=K, exact=True)
    t, (got, scores) = timed(lambda: npk.search("emb", queries, k=K, nprobe=nprobe))
    live = len(now)
    bad = 0
    for g, s, q in zip(got, scores, queries, strict=True):
        gi = g.astype(np.int64)
        want = unit(now[gi].astype(np.float64)) @ unit(q[None].astype(np.float64))[0]
        bad += int(
            len(set(gi.tolist())) != len(gi)
            or (gi >= live).any()
            or not np.allclose(s, want, rtol=1e-5, atol=1e-6)
        )
    run.row(
        f"recall after 20% replaced + 10% dropped (nprobe {nprobe})",
        recall(got, truth2),
        "",
        f"{1000 / t:.0f} q/s; stale/duplicate/deleted: {bad}",
    )
    info = npk.index_info("emb")
    run.row("imbalance after (largest list / mean)", info["imbalance"] if info else 0, "")
    npk.close()

    report(run, n, dim, nlist, args)
    shutil.rmtree(run.tmp, ignore_errors=True)


def report(run: Run, n: int, dim: int, nlist: int, args: argparse.Namespace) -> None:
    print("\nAt recall@10 >= 0.95 (fastest setting):")
    for lib in run.curves:
        b = run.best(lib)
        print(f"  {lib:<22} " + (f"{b[0]:10.0f} q/s  ({b[1]})" if b else "never reaches 0.95"))
    out = (
        ROOT
        / "benchmarks"
        / "results"
        / (
            f"index-{n}x{dim}{'-uniform' if args.uniform else ''}"
            f"{'-' + args.label if args.label else ''}.json"
        )
    )
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "rows": n,
                "dim": dim,
                "nlist": nlist,
                "uniform": args.uniform,
                "measures": run.rows,
                "curves": run.curves,
            },
            indent=2,
        )
    )
    exact = next(r["value"] for r in run.rows if r["measure"].startswith("exact engine"))
    plot(run.curves, exact, n, dim, args.uniform)


def plot(
    curves: dict[str, list[tuple[float, float, str]]],
    exact: float,
    n: int,
    dim: int,
    uniform: bool,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for lib, pts in curves.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=lib)
    ax.axhline(exact, color="grey", linestyle=":", label="numpack exact")
    ax.axvline(0.95, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries / s (1,000 at once, 2 cores)")
    kind = "uniform random" if uniform else "Gaussian mixture, 1,000 clusters"
    ax.set_title(f"{n:,} x {dim} float32, {kind}, cosine")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    name = (
        "index-recall-qps"
        + ("-uniform" if uniform else "")
        + ("-quick" if n < 1_000_000 else "")
        + ".png"
    )
    fig.savefig(ROOT / "docs" / name, dpi=110)
    print(f"plot: docs/{name}")


if __name__ == "__main__":
    main()
