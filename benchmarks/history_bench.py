"""History benchmark: the cost of versions, against the same store without history and NumPy.

Run from the repository root after a release build (``make dev-release``)::

    python benchmarks/storage_bench.py --history        # or: python benchmarks/history_bench.py
    python benchmarks/history_bench.py --quick          # 100,000 rows, 3 repeats
    python benchmarks/history_bench.py --scale          # also 10,000,000 x 32
    python benchmarks/history_bench.py --sustained      # also 3,000 replaces in a row

Each case is timed in this one process (warm page cache), median of ``--repeats`` runs after
a warm-up. "off" is the store with history off and no snapshot open (every commit only bumps
the version word); "on" keeps the last 100 versions.
"""

from __future__ import annotations

import argparse
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


def med(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None) -> float:
    """Median microseconds of ``fn`` (one warm-up)."""
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        if i:
            times.append((t1 - t0) / 1e3)
    return statistics.median(times)


def run(rows: int, cols: int, repeats: int) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="npk-hist-"))
    rng = np.random.default_rng(0)
    data = rng.random((rows, cols), dtype=np.float32)
    out: list[dict[str, Any]] = []
    size = f"{rows:,} x {cols}"

    def row(op: str, ours: float, base_name: str, base: float, goal: str) -> None:
        ratio = ours / base if base else float("nan")
        out.append(
            {"size": size, "op": op, "ours_us": ours, "baseline": base_name,
             "baseline_us": base, "ratio": ratio, "goal": goal}
        )  # fmt: skip
        print(f"{size:>16}  {op:44} {ours:11.1f} us  {base_name:28} {base:11.1f} us  "
              f"{ratio:7.3f}x  goal {goal}", flush=True)  # fmt: skip

    stores = {}
    for mode in ("off", "on"):
        npk = NumPack(tmp / f"{mode}.npk")
        npk.open()
        npk.save({"x": data})
        if mode == "on":
            npk.set_history(100)
        stores[mode] = npk
    new = rng.random((100, cols), dtype=np.float32)
    idx = rng.choice(rows, 100, replace=False)

    def rounds(fn: Callable[[NumPack], Any]) -> dict[str, float]:
        """Medians of interleaved rounds over both stores."""
        got: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(5):
            for m in ("off", "on"):
                got[m].append(med(lambda m=m: fn(stores[m]), repeats))
        return {m: statistics.median(v) for m, v in got.items()}

    t = rounds(lambda s: s.replace({"x": new}, idx))
    npy = tmp / "a.npy"
    np.save(npy, data)

    def npy_rewrite() -> None:
        a = np.load(npy)
        a[idx] = new
        np.save(npy, a)

    rewrite = med(npy_rewrite, max(3, repeats // 2))
    row("replace 100 rows, history on", t["on"], "history off", t["off"], "<= 2x")
    row("replace 100 rows, history on", t["on"], "NPY load+rewrite", rewrite, "<= 0.01x")
    add = rng.random((100, cols), dtype=np.float32)
    t = rounds(lambda s: s.append({"x": add}))
    row("append 100 rows, history on", t["on"], "history off", t["off"], "<= 1.2x")

    on, off = stores["on"], stores["off"]
    pin = med(lambda: on.snapshot().close(), repeats * 5)
    row("open + close a snapshot (pin a version)", pin, "(absolute)", 10.0, "<= 10 us")
    pick = rng.integers(0, rows, 1000)
    for name, fn in (
        ("load", lambda s: s.load("x")),
        ("getitem 1,000 random rows", lambda s: s.getitem("x", pick)),
        ("lazy[idx] 1,000 random rows", lambda s: s.load("x", lazy=True)[pick]),
    ):
        # Interleaved rounds: the two stores are read turn about, so drift hits both.
        t_on, t_off = [], []
        for _ in range(5):
            t_off.append(med(lambda f=fn: f(off), repeats))
            t_on.append(med(lambda f=fn: f(on), repeats))
        row(f"{name}, current version, history on", statistics.median(t_on),
            "history off", statistics.median(t_off), "<= 1.05x")  # fmt: skip

    # 100 replaces of 100 rows after a version, then read that version.
    with on.snapshot() as snap:
        v = snap.version
        for _ in range(100):
            on.replace({"x": rng.random((100, cols), dtype=np.float32)},
                       rng.choice(rows, 100, replace=False))  # fmt: skip
        old = med(lambda: snap.getitem("x", pick), repeats)
        cur = med(lambda: on.getitem("x", pick), repeats)
        row("getitem 1,000 rows at a version 100 replaces back", old, "current version", cur,
            "<= 2x")  # fmt: skip
        kept = sum(e["bytes_kept"] for e in on.versions()[-100:])
        changed = 100 * 100 * cols * 4
        out.append({"size": size, "op": "bytes kept per version", "kept": kept / 100,
                    "changed": changed / 100})  # fmt: skip
        print(f"{size:>16}  bytes kept per version: {kept / 100:,.0f} for {changed / 100:,.0f} "
              f"changed ({kept / changed:.3f}x; goal <= 1.1x + 4 KiB)")  # fmt: skip
        assert on.versions()[0]["version"] <= v
    t0 = time.perf_counter()
    on.gc(keep_last=0)
    gc_us = (time.perf_counter() - t0) * 1e6
    row("gc of ~100 versions", gc_us, "(absolute)", 10_000.0, "<= 10 ms + unlink")
    for npk in stores.values():
        npk.close()
    shutil.rmtree(tmp)
    return out


def drops(rows: int, cols: int, repeats: int) -> list[dict[str, Any]]:
    """Append to an array with deleted rows, and drop rows, against a plain append."""
    tmp = Path(tempfile.mkdtemp(prefix="npk-hist-"))
    rng = np.random.default_rng(1)
    data = rng.random((rows, cols), dtype=np.float32)
    out = []
    with NumPack(tmp / "a.npk") as a, NumPack(tmp / "b.npk") as b:
        a.save({"x": data})
        b.save({"x": data})
        b.drop("x", [0])
        add = rng.random((100, cols), dtype=np.float32)
        plain = med(lambda: a.append({"x": add}), repeats)
        deleted = med(lambda: b.append({"x": add}), repeats)
        drop = med(lambda: a.drop("x", rng.choice(rows, 100, replace=False)), repeats)
    shutil.rmtree(tmp)
    size = f"{rows:,} x {cols}"
    for op, ours, goal in (
        ("append 100 rows to an array with deleted rows", deleted, "<= 2x"),
        ("drop 100 rows", drop, "<= 10x"),
    ):
        out.append({"size": size, "op": op, "ours_us": ours, "baseline": "append 100 rows",
                    "baseline_us": plain, "ratio": ours / plain, "goal": goal})  # fmt: skip
        print(f"{size:>16}  {op:44} {ours:11.1f} us  {'append 100 rows':28} {plain:11.1f} us  "
              f"{ours / plain:7.3f}x  goal {goal}", flush=True)  # fmt: skip
    return out


def sustained(rows: int, cols: int, ops: int) -> list[dict[str, Any]]:
    """Many replaces of 100 rows in a row, history off / keeping 100 versions (collected
    every 32 commits) / keeping all: mean, median and p99 per replace, as a long ingest sees
    them (the table's rows time a few calls on a fresh log)."""
    rng = np.random.default_rng(2)
    idxs = [rng.choice(rows, 100, replace=False) for _ in range(200)]
    v = rng.random((100, cols), dtype=np.float32)
    out = []
    for keep in (0, 100, 1_000_000):
        tmp = Path(tempfile.mkdtemp(prefix="npk-hist-"))
        with NumPack(tmp / "s.npk") as npk:
            npk.save({"x": np.ones((rows, cols), np.float32)})
            npk.set_history(keep_last=keep)
            ts = np.empty(ops)
            for k in range(ops):
                t0 = time.perf_counter_ns()
                npk.replace({"x": v}, idxs[k % len(idxs)])
                ts[k] = (time.perf_counter_ns() - t0) / 1e3
        shutil.rmtree(tmp)
        row = {"size": f"{rows:,} x {cols}", "op": f"{ops} replaces of 100 rows, keep_last={keep}",
               "mean_us": float(ts.mean()), "median_us": float(np.median(ts)),
               "p99_us": float(np.percentile(ts, 99))}  # fmt: skip
        print(f"{row['size']:>16}  {row['op']:44} mean {row['mean_us']:9.1f} us  median "
              f"{row['median_us']:9.1f} us  p99 {row['p99_us']:9.1f} us", flush=True)  # fmt: skip
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--scale", action="store_true", help="also 10,000,000 x 32")
    p.add_argument("--sustained", action="store_true", help="also 3,000 replaces in a row")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    rows = 100_000 if args.quick else 1_000_000
    results = run(rows, 10, repeats)
    if args.scale:
        results += run(10_000_000, 32, repeats)
    results += drops(rows, 128, repeats)
    if args.sustained:
        results += sustained(2_000_000, 32, 3000)
    dest = args.json or Path(__file__).parent / "results" / "history_bench.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
