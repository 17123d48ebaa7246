"""Storage benchmark: numpack against NumPy's own files (and h5py / zarr / feather if installed).

Run from the repository root after a release build (``pip install .``)::

    python benchmarks/storage_bench.py                 # 1,000,000 x 10 float32, 7 repeats
    python benchmarks/storage_bench.py --quick         # 100,000 rows, 3 repeats (smoke run)
    python benchmarks/storage_bench.py --scale         # also 10,000,000 x 32: cost growth
    python benchmarks/storage_bench.py --history       # the cost of versions (history_bench.py)

Every case runs in this one process on a warm page cache, after a warm-up, and reports the
median of ``--repeats`` timings. Each result is checked against NumPy before it is timed.
Ratios are numpack time / baseline time measured in the same run; the goal column is the
target of the performance issue. Results are also written as JSON to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from numpack import NumPack


def median_us(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``fn`` in microseconds (one untimed warm-up)."""
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        gc.disable()
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        gc.enable()
        if i:
            times.append((t1 - t0) / 1e3)
    return statistics.median(times)


class Bench:
    """Holds the data, the numpack store and the NPY file of one size."""

    def __init__(self, rows: int, cols: int, repeats: int) -> None:
        self.rows, self.cols, self.repeats = rows, cols, repeats
        self.dir = Path(tempfile.mkdtemp(prefix="npk-bench-"))
        self.data = np.random.default_rng(0).random((rows, cols), dtype=np.float32)
        self.npy = self.dir / "a.npy"
        np.save(self.npy, self.data)
        self.npk = NumPack(self.dir / "s.npk")
        self.npk.open()
        self.npk.save({"a": self.data})
        # Warm page cache, but no writeback of the setup's gigabytes during the timings.
        os.sync()
        self.results: list[dict[str, Any]] = []

    def close(self) -> None:
        self.npk.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def t(self, fn: Callable[[], Any], setup: Callable[[], Any] | None = None) -> float:
        return median_us(fn, self.repeats, setup)

    def row(self, op: str, ours: float, base_name: str, base: float, goal: float | None) -> None:
        ratio = ours / base if base else float("inf")
        ok = "" if goal is None else ("PASS" if ratio <= goal else "FAIL")
        self.results.append(
            {"operation": op, "numpack_us": ours, "baseline": base_name, "baseline_us": base,
             "ratio": ratio, "goal": goal, "status": ok}
        )  # fmt: skip

    # --- cases -------------------------------------------------------------------------
    def save_load(self) -> None:
        npk, a = self.npk, self.data
        np.testing.assert_array_equal(npk.load("a"), a)
        self.row("save", self.t(lambda: npk.save({"a": a})), "np.save",
                 self.t(lambda: np.save(self.npy, a)), 1.0)  # fmt: skip
        self.row("eager load", self.t(lambda: npk.load("a")), "np.load",
                 self.t(lambda: np.load(self.npy)), 0.8)  # fmt: skip
        self.lazy_open()

    def lazy_open(self) -> None:
        npk = self.npk
        self.row(
            "lazy open",
            self.t(lambda: npk.load("a", lazy=True)),
            "np.load(mmap_mode='r')",
            self.t(lambda: np.load(self.npy, mmap_mode="r")),
            0.05,
        )

    def random_rows(self) -> None:
        lazy = self.npk.load("a", lazy=True)
        mm = np.load(self.npy, mmap_mode="r")
        for n in (100, 1_000, 10_000):
            idx = np.random.default_rng(n).integers(0, self.rows, n)
            np.testing.assert_array_equal(self.npk.getitem("a", idx), self.data[idx])
            np.testing.assert_array_equal(lazy[idx], self.data[idx])
            base = self.t(lambda idx=idx: mm[idx])
            self.row(f"getitem {n} rows", self.t(lambda idx=idx: self.npk.getitem("a", idx)),
                     "mmap fancy index", base, 1.2)  # fmt: skip
            self.row(f"lazy[idx] {n} rows", self.t(lambda idx=idx: lazy[idx]),
                     "mmap fancy index", base, 1.2)  # fmt: skip

    def streaming(self) -> None:
        batch = max(1, self.rows // 10)
        mm = np.load(self.npy, mmap_mode="r")
        want = float(self.data.sum(dtype=np.float64))

        def ours() -> float:
            return sum(float(b.sum(dtype=np.float64)) for b in self.npk.stream_load("a", batch))

        def base() -> float:
            return sum(float(np.asarray(mm[i : i + batch]).sum(dtype=np.float64))
                       for i in range(0, self.rows, batch))  # fmt: skip

        assert abs(ours() - want) < 1e-6 * abs(want) + 1e-6
        self.row("streaming pass", self.t(ours), "batched mmap pass", self.t(base), 1.0)

    def replace_append(self) -> None:
        idx = np.random.default_rng(1).choice(self.rows, 100, replace=False)
        vals = np.full((100, self.cols), 7.0, np.float32)
        shape = (self.rows, self.cols)

        def memmap_write() -> None:
            m = np.memmap(self.npy, dtype=np.float32, mode="r+", offset=128, shape=shape)
            m[idx] = vals
            m.flush()
            del m

        def npy_rewrite() -> None:
            a = np.load(self.npy)
            a[idx] = vals
            np.save(self.npy, a)

        self.npk.replace({"a": vals}, idx)
        np.testing.assert_array_equal(self.npk.getitem("a", idx), vals)
        ours = self.t(lambda: self.npk.replace({"a": vals}, idx))
        self.row("replace 100 rows", ours, "np.memmap r+ write", self.t(memmap_write), 2.0)
        self.row("replace 100 rows", ours, "NPY load-modify-save", self.t(npy_rewrite), 0.01)
        app = np.ones((100, self.cols), np.float32)
        plain = self.dir / "plain.bin"

        def file_append() -> None:
            with open(plain, "ab") as f:
                f.write(app.tobytes())

        before = self.npk.get_shape("a")[0]
        self.npk.append({"a": app})
        assert self.npk.get_shape("a")[0] == before + 100
        self.row("append 100 rows", self.t(lambda: self.npk.append({"a": app})),
                 "plain file append", self.t(file_append), 2.0)  # fmt: skip
        self.npk.save({"a": self.data})

    def rounds(self) -> None:
        def plain() -> None:
            for _ in range(100):
                a = self.npk.load("a")
                a[:10] += 1
                self.npk.save({"a": a})

        def batch() -> None:
            with self.npk.batch_mode():
                for _ in range(100):
                    a = self.npk.load("a")
                    a[:10] += 1
                    self.npk.save({"a": a})

        def writable() -> None:
            with self.npk.writable_batch_mode() as wb:
                for _ in range(100):
                    a = wb.load("a")
                    a[:10] += 1

        def mem_then_save() -> None:
            a = np.load(self.npy)
            for _ in range(100):
                a[:10] += 1
            np.save(self.npy, a)

        def memmap_rounds() -> None:
            m = np.load(self.npy, mmap_mode="r+")
            for _ in range(100):
                m[:10] += 1
            m.flush()
            del m

        expected = self.npk.load("a")[:10].copy()
        for _ in range(100):
            expected += 1
        batch()
        np.testing.assert_array_equal(self.npk.load("a")[:10], expected)
        reps = max(3, self.repeats // 2)
        self.row("100 rounds plain", median_us(plain, 1), "in-memory + np.save",
                 median_us(mem_then_save, reps), None)  # fmt: skip
        self.row("100 rounds batch_mode", median_us(batch, reps), "in-memory + np.save",
                 median_us(mem_then_save, reps), 1.2)  # fmt: skip
        self.row("100 rounds writable_batch_mode", median_us(writable, reps),
                 "np.memmap r+", median_us(memmap_rounds, reps), 1.2)  # fmt: skip
        self.npk.save({"a": self.data})
        np.save(self.npy, self.data)

    def drop_compact(self) -> None:
        idx = np.random.default_rng(2).choice(self.rows, 100, replace=False)
        self.npk.drop("a", idx)
        np.testing.assert_array_equal(self.npk.load("a"), np.delete(self.data, idx, axis=0))
        self.row("load after dropping 100 rows", self.t(lambda: self.npk.load("a")), "np.load",
                 self.t(lambda: np.load(self.npy)), 1.5)  # fmt: skip

        def compact() -> None:
            self.npk.update("a")

        def setup() -> None:
            self.npk.save({"a": self.data})
            self.npk.drop("a", idx)

        self.row("compaction (update)", self.t(compact, setup), "np.load",
                 self.t(lambda: np.load(self.npy)), None)  # fmt: skip
        self.npk.save({"a": self.data})

    def others(self) -> None:
        """Peers when installed: h5py, zarr and pyarrow feather (save and full load)."""
        a = self.data
        try:
            import h5py  # type: ignore[import-untyped]

            path = self.dir / "a.h5"

            def h5save() -> None:
                with h5py.File(path, "w") as f:
                    f.create_dataset("a", data=a)

            def h5load() -> Any:
                with h5py.File(path, "r") as f:
                    return f["a"][...]

            h5save()
            self.row("save", self.t(lambda: self.npk.save({"a": a})), "h5py", self.t(h5save), None)
            self.row("eager load", self.t(lambda: self.npk.load("a")), "h5py",
                     self.t(h5load), None)  # fmt: skip
        except ImportError:
            pass
        try:
            import pyarrow as pa  # type: ignore[import-untyped]
            import pyarrow.feather as feather  # type: ignore[import-untyped]

            path = self.dir / "a.feather"
            table = pa.table({f"c{i}": a[:, i] for i in range(a.shape[1])})
            self.row("save", self.t(lambda: self.npk.save({"a": a})), "feather",
                     self.t(lambda: feather.write_feather(table, path)), None)  # fmt: skip
        except ImportError:
            pass


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| operation | numpack | baseline | baseline time | ratio | goal | |",
             "|---|---:|---|---:|---:|---:|---|"]  # fmt: skip
    for r in results:
        goal = "" if r["goal"] is None else f"≤ {r['goal']}x"
        lines.append(
            f"| {r['operation']} | {r['numpack_us'] / 1e3:.3f} ms | {r['baseline']} | "
            f"{r['baseline_us'] / 1e3:.3f} ms | {r['ratio']:.2f}x | {goal} | {r['status']} |"
        )
    return "\n".join(lines)


def run(rows: int, cols: int, repeats: int, scale_only: bool = False) -> list[dict[str, Any]]:
    """All cases, or with ``scale_only`` those whose cost must not grow with the array."""
    b = Bench(rows, cols, repeats)
    try:
        if scale_only:
            b.lazy_open()
            b.random_rows()
            b.replace_append()
            return b.results
        b.save_load()
        b.random_rows()
        b.streaming()
        b.replace_append()
        b.rounds()
        b.drop_compact()
        b.others()
        return b.results
    finally:
        b.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cols", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="100,000 rows, 3 repeats")
    p.add_argument("--scale", action="store_true", help="also 10,000,000 x 32: cost growth")
    p.add_argument("--json", type=Path, help="where to write the results")
    p.add_argument("--history", action="store_true", help="the cost of versions (history_bench)")
    args = p.parse_args()
    if args.history:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        import history_bench

        extra = ["--quick"] if args.quick else []
        extra += ["--scale"] if args.scale else []
        history_bench.main([*extra, "--repeats", str(args.repeats)])
        return
    if args.quick:
        args.rows, args.repeats = 100_000, 3
    print(f"numpack storage benchmark: {args.rows} x {args.cols} float32, "
          f"median of {args.repeats}, {os.cpu_count()} CPUs")  # fmt: skip
    results = run(args.rows, args.cols, args.repeats)
    print(table(results))
    out: dict[str, Any] = {"rows": args.rows, "cols": args.cols, "results": results}
    if args.scale:
        big = run(10_000_000, 32, max(3, args.repeats // 2), scale_only=True)
        small = {r["operation"]: r["numpack_us"] for r in results}
        growth = []
        for r in big:
            if r["operation"] in small and r["operation"].split()[0] in (
                "lazy",
                "append",
                "replace",
                "getitem",
            ):
                ratio = r["numpack_us"] / small[r["operation"]]
                growth.append({"operation": r["operation"], "ratio": ratio,
                               "status": "PASS" if ratio <= 1.5 else "FAIL"})  # fmt: skip
        print("\n10,000,000 x 32 float32 (rows are 3.2x wider):")
        print(table(big))
        print("\nscale: cost at 10,000,000 x 32 / cost at the size above (goal ≤ 1.5x)")
        for g in growth:
            print(f"| {g['operation']} | {g['ratio']:.2f}x | {g['status']} |")
        out["scale"] = growth
        out["scale_results"] = big
    path = args.json or Path(__file__).parent / "results" / f"storage-{args.rows}x{args.cols}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
