"""Training loaders and distributed engines over a store, against the same work over NumPy
memory maps (issue "Beyond one process and one machine").

    make dev-release && python benchmarks/loader_bench.py            # 2,000,000 x 128
    python benchmarks/loader_bench.py --rows 200000 --repeats 1      # a quick look

Data: ``rows`` x 128 float32 plus ``rows`` int64 labels, in a store and as ``.npy`` files
(warm page cache: a training set that fits in memory). Every ratio is against a baseline
measured in the same run, median of ``--repeats`` (interleaved).

- DataLoader epoch: shuffled batches of 512, 2 workers (fork), ``NumPackDataset`` with
  ``collate_fn=numpack.torch.collate``, against a dataset over ``np.load(mmap_mode="r")``
  arrays that gathers each batch with one fancy index per array and the same collate.
- The per-row ``__getitem__`` dataset a user writes by hand over a ``LazyArray``: reported
  for comparison (timed over the first 200 batches, scaled to an epoch).
- Dask: ``from_numpack(...).sum()`` against ``da.from_array(np.load(mmap_mode="r"))``
  (same chunks); ``to_numpack`` of 8 chunks (a new array; it returns with the rows
  committed and on disk) against ``da.to_npy_stack`` followed by an fsync of its files (and
  without), each started with no dirty pages (``os.sync()`` untimed before each run).
- Ray (when installed, ``ray.init(num_cpus=2)``): ``read_numpack`` → ``to_numpy_refs``
  against ``ray.data.from_numpy`` of the loaded array → ``to_numpy_refs``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

DIM = 128
BATCH = 512


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_pair(
    a: Callable[[], Any],
    b: Callable[[], Any],
    repeats: int,
    before: Callable[[], Any] | None = None,
) -> tuple[float, float]:
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            if before is not None:
                before()
            out.append(timed(fn))
    return statistics.median(ta), statistics.median(tb)


def settle(*paths: Path) -> None:
    """Untimed, before each write: remove what the last one wrote and write back every
    dirty page, so no run pays for the writeback of another."""
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
    os.sync()


class MmapDataset:
    """The baseline: the same batched gathers over NumPy memory maps."""

    def __init__(self, xp: str, yp: str) -> None:
        self.xp, self.yp = xp, yp
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        if self._x is None:
            self._x = np.load(self.xp, mmap_mode="r")
            self._y = np.load(self.yp, mmap_mode="r")
        assert self._y is not None
        return self._x, self._y

    def __getstate__(self) -> dict[str, Any]:
        return {"xp": self.xp, "yp": self.yp, "_x": None, "_y": None}

    def __len__(self) -> int:
        return len(self._open()[1])

    def __getitem__(self, i: int) -> Any:
        x, y = self._open()
        return x[i], y[i]

    def __getitems__(self, idx: list[int]) -> Any:
        import numpack.torch as nt

        x, y = self._open()
        rows = np.asarray(idx)
        return nt.Batch((x[rows], y[rows]), False)


class LazyRowDataset:
    """What users write by hand today: one ``LazyArray`` read per row."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._arrays: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_arrays": None}

    def _open(self) -> Any:
        if self._arrays is None:
            from numpack import NumPack

            npk = NumPack(self.path, warn_no_context=False)
            npk.open()
            self._arrays = (npk, npk.load("x", lazy=True), npk.load("y", lazy=True))
        return self._arrays

    def __len__(self) -> int:
        return len(self._open()[2])

    def __getitem__(self, i: int) -> Any:
        _, x, y = self._open()
        return np.asarray(x[i]), np.asarray(y[i])


def epoch(ds: Any, collate: Any, limit: int | None = None) -> int:
    import torch

    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=2,
        multiprocessing_context="fork",
        collate_fn=collate,
        persistent_workers=False,
    )
    n = 0
    for k, (_xb, yb) in enumerate(loader):
        n += len(yb)
        if limit is not None and k + 1 >= limit:
            break
    return n


def row(label: str, ours: float, base_label: str, base: float, goal: str) -> dict[str, Any]:
    ratio = ours / base if base else float("nan")
    print(
        f"{label:<52} {ours * 1e3:10.1f} ms   {base_label:<40} {base * 1e3:10.1f} ms"
        f"   {ratio:6.3f}x   {goal}",
        flush=True,
    )
    return {
        "measure": label,
        "numpack_s": ours,
        "baseline": base_label,
        "baseline_s": base,
        "ratio": ratio,
        "goal": goal,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write the data (default: a temp dir)")
    args = p.parse_args()

    import dask
    import dask.array as da
    import torch

    import numpack.dask as nd
    import numpack.torch as nt
    from numpack import NumPack

    torch.set_num_threads(1)
    root = Path(args.dir or tempfile.mkdtemp(prefix="loader-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, DIM), dtype=np.float32)
    y = rng.integers(0, 1000, args.rows).astype(np.int64)
    store = root / "train.npk"
    with NumPack(store, drop_if_exists=True) as npk:
        npk.save({"x": x, "y": y})
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    del x, y
    results = []
    print(
        f"{args.rows:,} x {DIM} float32 + int64 labels, batches of {BATCH}, 2 workers, "
        f"median of {args.repeats}",
        flush=True,
    )

    ds = nt.NumPackDataset(store, arrays=("x", "y"))
    base = MmapDataset(str(root / "x.npy"), str(root / "y.npy"))
    ours, theirs = median_pair(
        lambda: epoch(ds, nt.collate), lambda: epoch(base, nt.collate), args.repeats
    )
    results.append(
        row(
            "DataLoader epoch, NumPackDataset",
            ours,
            "np.load(mmap_mode='r') dataset",
            theirs,
            "<= 1.0x",
        )
    )
    batches = min(200, args.rows // BATCH)
    lazy = LazyRowDataset(str(store))
    t = timed(lambda: epoch(lazy, None, limit=batches)) * (args.rows / BATCH) / batches
    results.append(
        row(
            "DataLoader epoch, per-row LazyArray dataset (scaled)",
            t,
            "np.load(mmap_mode='r') dataset",
            theirs,
            "reported",
        )
    )

    chunk = (max(1, args.rows // 16), DIM)
    with dask.config.set(scheduler="threads", num_workers=2):
        ours, theirs = median_pair(
            lambda: nd.from_numpack(store, "x", chunks=chunk[0]).sum().compute(),
            lambda: (
                da.from_array(np.load(root / "x.npy", mmap_mode="r"), chunks=chunk).sum().compute()
            ),
            args.repeats,
        )
        results.append(
            row(
                "Dask from_numpack(...).sum()",
                ours,
                "da.from_array(np.load(mmap)).sum()",
                theirs,
                "<= 1.0x",
            )
        )
        src = da.from_array(np.load(root / "x.npy", mmap_mode="r"), chunks=(args.rows // 8, DIM))

        def ours_write() -> None:
            nd.to_numpack(src, root / "out.npk", "x", mode="create")

        def theirs_write() -> None:
            da.to_npy_stack(str(root / "stack"), src)

        def theirs_durable() -> None:
            # The durability to_numpack returns with: every file written is on disk.
            theirs_write()
            for f in (root / "stack").iterdir():
                fd = os.open(f, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

        def fresh() -> None:
            settle(root / "out.npk", root / "stack")

        ours, theirs = median_pair(ours_write, theirs_durable, args.repeats, fresh)
        results.append(
            row(
                "Dask to_numpack, 8 chunks (returns durable)",
                ours,
                "da.to_npy_stack + fsync of its files",
                theirs,
                "<= 1.2x",
            )
        )
        ours, raw = median_pair(ours_write, theirs_write, args.repeats, fresh)
        results.append(
            row("Dask to_numpack, 8 chunks", ours, "da.to_npy_stack (no fsync)", raw, "reported")
        )
    try:
        import ray
    except ImportError:
        ray = None
    if ray is not None:
        import numpack.ray as nr

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        loaded = np.load(root / "x.npy")

        def ours_ray() -> None:
            refs = nr.read_numpack(store, arrays="x", parallelism=8).to_numpy_refs(column="x")
            assert sum(len(a) for a in ray.get(refs)) == args.rows

        def theirs_ray() -> None:
            refs = ray.data.from_numpy(loaded).to_numpy_refs(column="data")
            assert sum(len(a) for a in ray.get(refs)) == args.rows

        ours, theirs = median_pair(ours_ray, theirs_ray, args.repeats)
        results.append(
            row(
                "Ray read_numpack -> to_numpy",
                ours,
                "ray.data.from_numpy(loaded) -> to_numpy",
                theirs,
                "<= 1.0x",
            )
        )
        del loaded
        ray.shutdown()
    ds.close()
    out = Path(__file__).parent / "results" / "loader_bench.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(str(r) for r in results) + "\n")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
