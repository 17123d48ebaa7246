"""Conversion benchmark: ``numpack.io`` against what a user writes by hand with the same library.

Run from the repository root after a release build::

    python benchmarks/io_bench.py                      # 2,000,000 x 32 float32, CSV 500,000 x 10
    python benchmarks/io_bench.py --only npy,parquet   # cases whose name contains a filter
    python benchmarks/io_bench.py --quick              # 200,000 rows, CSV 50,000, 1 repeat

Every case runs on a warm page cache; times are the median of ``--repeats`` runs after one
warm-up, both sides measured alternately in the same run, each after an ``os.sync()``.
"By hand" holds the whole array in memory (e.g. ``pq.read_table`` + ``np.column_stack`` +
``NumPack.save``); the NPY baseline is
``shutil.copyfile`` of the same bytes. Peak memory is the anonymous resident memory
(``RssAnon``) above the process's own after imports, sampled every 2 ms from outside in a
fresh interpreter for each side (``--no-memory`` skips it). Results go to
``benchmarks/results/io-<rows>x<cols>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import numpack.io as nio
from numpack import NumPack

# Each case: (name, goal ratio, setup kind, our code, by-hand code). The code strings run with
# `d` (the data directory), `st` (a scratch store) and the libraries imported by IMPORTS.
STACK = "np.column_stack([c.to_numpy() for c in t.columns])"
TABLE = "pa.table({f'col{i}': a[:, i] for i in range(a.shape[1])})"
BLOSC = "zarr.codecs.BloscCodec(cname='zstd', clevel=3, shuffle='bitshuffle')"
CASES: list[tuple[str, float, str, str]] = [
    ("from_npy", 1.5, "nio.from_npy(d/'a.npy', st, drop_if_exists=True)",
     "shutil.copyfile(d/'a.npy', d/'copy.bin')"),
    ("from_npy vs copy+fsync", 1.5, "nio.from_npy(d/'a.npy', st, drop_if_exists=True)",
     "shutil.copyfile(d/'a.npy', d/'copy.bin'); fsync(d/'copy.bin')"),
    ("to_npy", 1.5, "nio.to_npy(d/'src.npk', d/'o.npy')",
     "shutil.copyfile(d/'a.npy', d/'copy.bin')"),
    ("from_parquet", 1.0, "nio.from_parquet(d/'a.parquet', st, drop_if_exists=True)",
     f"t = pq.read_table(d/'a.parquet'); save(st, {STACK})"),
    ("to_parquet", 1.0, "nio.to_parquet(d/'src.npk', d/'o.parquet')",
     f"a = load(); pq.write_table({TABLE}, d/'o.parquet', row_group_size=100_000)"),
    ("from_feather", 1.0, "nio.from_feather(d/'a.feather', st, drop_if_exists=True)",
     f"t = feather.read_table(d/'a.feather'); save(st, {STACK})"),
    ("to_feather", 1.0, "nio.to_feather(d/'src.npk', d/'o.feather')",
     f"a = load(); feather.write_feather({TABLE}, d/'o.feather', compression='zstd')"),
    ("from_hdf5", 1.0, "nio.from_hdf5(d/'a.h5', st, drop_if_exists=True)",
     "f = h5py.File(d/'a.h5'); save(st, f['a'][()]); f.close()"),
    ("to_hdf5", 1.0, "nio.to_hdf5(d/'src.npk', d/'o.h5', compression=None)",
     "a = load(); f = h5py.File(d/'o.h5', 'w'); f.create_dataset('a', data=a); f.close()"),
    ("from_zarr", 1.0, "nio.from_zarr(d/'a.zarr', st, drop_if_exists=True)",
     "save(st, zarr.open_group(d/'a.zarr', mode='r')['a'][:])"),
    ("to_zarr", 1.0, "nio.to_zarr(d/'src.npk', d/'o.zarr')",
     "a = load(); g = zarr.open_group(d/'o.zarr', mode='w'); "
     f"g.create_array('a', data=a, compressors={BLOSC})"),
    ("from_safetensors", 1.0,
     "nio.from_safetensors_file(d/'a.safetensors', st, drop_if_exists=True)",
     "save(st, stn.load_file(d/'a.safetensors')['a'])"),
    ("to_safetensors", 1.0, "nio.to_safetensors_file(d/'src.npk', d/'o.safetensors')",
     "stn.save_file({'a': load()}, d/'o.safetensors')"),
    ("from_pt", 1.0, "nio.from_pt(d/'a.pt', st, drop_if_exists=True)",
     "save(st, torch.load(d/'a.pt', weights_only=True)['a'].numpy())"),
    ("to_pt", 1.0, "nio.to_pt(d/'src.npk', d/'o.pt')",
     "torch.save({'a': torch.from_numpy(load())}, d/'o.pt')"),
    ("from_csv", 0.5, "nio.from_csv(d/'a.csv', st, drop_if_exists=True, dtype=np.float32)",
     "save(st, pd.read_csv(d/'a.csv', header=None, dtype=np.float32).to_numpy())"),
    ("to_csv", 0.15, "nio.to_csv(d/'csv.npk', d/'o.csv')",
     "np.savetxt(d/'o.csv', load('csv.npk'), delimiter=',')"),
]  # fmt: skip

IMPORTS = """
import shutil, numpy as np
from pathlib import Path
import numpack.io as nio
from numpack import NumPack
def fsync(path):
    import os
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())
def save(st, a):
    with NumPack(st, drop_if_exists=True) as npk:
        npk.save({'a': a})
def load(store='src.npk'):
    with NumPack(d / store) as npk:
        return npk.load('a')
"""

LIBS = {"parquet": "import pyarrow as pa, pyarrow.parquet as pq",
        "feather": "import pyarrow as pa, pyarrow.feather as feather",
        "hdf5": "import h5py", "zarr": "import zarr, zarr.codecs",
        "safetensors": "import safetensors.numpy as stn", "pt": "import torch",
        "csv": "import pandas as pd"}  # fmt: skip


def _prelude(case: str) -> str:
    libs = [v for k, v in LIBS.items() if k in case]
    return IMPORTS + "\n".join(libs) + "\n"


def make_inputs(d: Path, rows: int, cols: int, csv_rows: int, only: list[str]) -> None:
    """Every input file, written by the format's own library from one random array."""
    a = np.random.default_rng(0).random((rows, cols), dtype=np.float32)
    np.save(d / "a.npy", a)
    with NumPack(d / "src.npk", drop_if_exists=True) as npk:
        npk.save({"a": a})
    want = lambda k: not only or any(k in o or o in k for o in only)  # noqa: E731
    if want("parquet") or want("feather"):
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.parquet as pq

        t = pa.table({f"col{i}": a[:, i] for i in range(cols)})
        pq.write_table(t, d / "a.parquet")
        feather.write_feather(t, d / "a.feather", compression="zstd")
    if want("hdf5"):
        nio.to_hdf5(d / "src.npk", d / "a.h5", compression=None)
    if want("zarr"):
        nio.to_zarr(d / "src.npk", d / "a.zarr")
    if want("safetensors"):
        nio.to_safetensors_file(d / "src.npk", d / "a.safetensors")
    if want("pt"):
        import torch

        torch.save({"a": torch.from_numpy(a)}, d / "a.pt")
    if want("csv"):
        c = np.random.default_rng(1).random((csv_rows, 10), dtype=np.float32)
        with NumPack(d / "csv.npk", drop_if_exists=True) as npk:
            npk.save({"a": c})
        np.savetxt(d / "a.csv", c, delimiter=",", fmt="%.9g")


def medians(ours: Callable[[], Any], hand: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``hand``, run alternately after one warm-up each; the
    page cache's dirty data is written back (``os.sync``) before every timed run, so one
    side never pays for the other's writes."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(repeats + 1):
        for side, fn in enumerate((ours, hand)):
            gc.collect()
            os.sync()
            t0 = time.perf_counter()
            fn()
            if i:
                times[side].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def peak_mb(code: str, d: Path) -> float:
    """Peak RssAnon (MB) of ``code`` in a fresh interpreter, above its value after imports."""
    script = f"d = Path({str(d)!r}); st = d / 'mem.npk'\n" + code.split("\n#RUN\n")[0]
    script += "\nprint('ready', flush=True)\n" + code.split("\n#RUN\n")[1] + "\n"
    script = "from pathlib import Path\n" + script
    seen = threading.Event()
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as p:
        threading.Thread(target=lambda: [seen.set() for _ in p.stdout], daemon=True).start()
        base, peak = None, 0
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    kb = next((int(x.split()[1]) for x in f if x.startswith("RssAnon:")), 0)
            except OSError:
                kb = 0
            if base is None and seen.is_set():
                base = kb
            if base is not None:
                peak = max(peak, kb - base)
            time.sleep(0.002)
    if p.returncode:
        raise RuntimeError(f"memory run failed: {code.splitlines()[-1]}")
    return peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--csv-rows", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--ours-only", action="store_true",
                    help="skip the by-hand side (for memory checks at large --rows)")  # fmt: skip
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.csv_rows, args.repeats = 200_000, 50_000, 1
    only = [o for o in args.only.split(",") if o]
    cases = [c for c in CASES if not only or any(o in c[0] for o in only)]
    d = Path(tempfile.mkdtemp(prefix="npk-io-bench-", dir=args.dir))
    results = []
    try:
        make_inputs(d, args.rows, args.cols, args.csv_rows, [c[0] for c in cases])
        for name, goal, ours, hand in cases:
            env: dict[str, Any] = {"d": d, "st": d / "bench.npk"}
            exec(_prelude(name), env)
            if args.ours_only:
                hand = "pass"
            t_ours, t_hand = medians(lambda o=ours, e=env: exec(o, e),
                                     lambda h=hand, e=env: exec(h, e), args.repeats)  # fmt: skip
            row: dict[str, Any] = {"case": name, "numpack_s": t_ours, "by_hand_s": t_hand,
                                   "ratio": t_ours / t_hand, "goal": goal}  # fmt: skip
            if not args.no_memory:
                row["numpack_peak_mb"] = peak_mb(_prelude(name) + "\n#RUN\n" + ours, d)
                row["by_hand_peak_mb"] = peak_mb(_prelude(name) + "\n#RUN\n" + hand, d)
            row["status"] = "PASS" if row["ratio"] <= goal else "FAIL"
            results.append(row)
            mem = (f"  mem {row['numpack_peak_mb']:7.1f} / {row['by_hand_peak_mb']:7.1f} MB"
                   if "numpack_peak_mb" in row else "")  # fmt: skip
            print(
                f"{name:18s} ours {t_ours:7.3f}s  by hand {t_hand:7.3f}s  "
                f"ratio {row['ratio']:5.2f} (goal {goal}) {row['status']}{mem}",
                flush=True,
            )
            for leftover in ("o.zarr", "bench.npk", "mem.npk"):
                shutil.rmtree(d / leftover, ignore_errors=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    out = Path(__file__).parent / "results" / f"io-{args.rows}x{args.cols}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"rows": args.rows, "cols": args.cols, "csv_rows": args.csv_rows,
            "repeats": args.repeats, "chunk_size": nio.DEFAULT_CHUNK_SIZE}  # fmt: skip
    if not only and not args.ours_only:
        out.write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    print("\n| conversion | numpack (s) | by hand (s) | ratio | goal | peak MB numpack / by hand |")
    print("|---|---|---|---|---|---|")
    for r in results:
        mem = (f"{r['numpack_peak_mb']:.0f} / {r['by_hand_peak_mb']:.0f}"
               if "numpack_peak_mb" in r else "-")  # fmt: skip
        print(
            f"| `{r['case']}` | {r['numpack_s']:.3f} | {r['by_hand_s']:.3f} | "
            f"{r['ratio']:.2f}x | <= {r['goal']}x | {mem} |"
        )
    print(f"\nrun at {os.cpu_count()} cores, chunk_size {nio.DEFAULT_CHUNK_SIZE >> 20} MiB")


if __name__ == "__main__":
    main()
