"""Training loaders and distributed engines over a store, against the same work over NumPy
memory maps (issue "Beyond one process and one machine").

    make dev-release && python benchmarks/loader_bench.py            # 2,000,000 x 128
    python benchmarks/loader_bench.py --rows 200000 --repeats 1      # a quick look

Data: ``rows`` x 128 float32 plus ``rows`` int64 labels, in a store and as ``.npy`` files
(warm page cache: a training set that fits in memory). Every ratio is against a baseline
measured in the same run, median of ``--repeats`` (interleaved).

- DataLoader epoch (median of at least 5: an epoch is bound by the loader's inter-process
  transfers, which vary by ±10% here): shuffled batches of 512, 2 workers (fork),
  ``NumPackDataset`` with
  ``collate_fn=numpack.torch.collate``, against a dataset over ``np.load(mmap_mode="r")``
  arrays that gathers each batch with one fancy index per array and the same collate.
- Reported beside it: the same loader over batches that cost nothing (the loader's own
  cost, which bounds both), and ``NumPackDataset`` with ``num_workers=0`` (the gathers run
  in the training process, GIL released, without the loader's inter-process transfers).
- The per-row ``__getitem__`` dataset a user writes by hand over a ``LazyArray``: reported
  for comparison (timed over the first 200 batches, scaled to an epoch).
- Dask: ``from_numpack(...).sum()`` against ``da.from_array(np.load(mmap_mode="r"))``
  (same chunks); ``to_numpack`` of 8 chunks (a new array; it returns with the rows
  committed and on disk) against ``da.to_npy_stack`` followed by an fsync of its files (and
  without), each started with no dirty pages (``os.sync()`` untimed before each run).
- Ray (when installed, ``ray.init(num_cpus=2)``): ``read_numpack`` → ``to_numpy_refs``
  against ``ray.data.from_numpy`` of the loaded array → ``to_numpy_refs``.
- Lance (when ``pylance`` is installed; benchmark only), reported side by side: the same
  shuffled loader over a map-style dataset gathering each batch with ``LanceDataset.take``
  (workers started by ``spawn``: Lance's runtime does not survive a fork, and a forked
  loader deadlocks), and Lance's own ``lance.torch.data.LanceDataset`` (an iterable that
  reads batches of 512 in storage order on Lance's threads; ``num_workers=0``, as its workers
  would each read the whole dataset).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
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


class LanceTakeDataset:
    """A map-style dataset over a Lance dataset: one ``take`` per batch, opened lazily in
    each worker."""

    def __init__(self, uri: str, rows: int) -> None:
        self.uri, self.rows = uri, rows
        self._ds: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "rows": self.rows, "_ds": None}

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> Any:
        return self.__getitems__([i])

    def __getitems__(self, idx: list[int]) -> Any:
        import lance

        import numpack.torch as nt

        if self._ds is None:
            self._ds = lance.dataset(self.uri)
        t = self._ds.take(idx, columns=["x", "y"])
        x = t.column("x").combine_chunks()
        xs = x.values.to_numpy().reshape(len(x), -1)
        return nt.Batch((xs, t.column("y").to_numpy()), False)


def write_lance(uri: str, xp: str, yp: str) -> None:
    """In a child process, so the benchmark's own process never starts Lance's runtime
    (its forked loaders would deadlock)."""
    import subprocess

    code = (
        "import sys, numpy as np, pyarrow as pa, lance\n"
        "x = np.load(sys.argv[2], mmap_mode='r'); y = np.load(sys.argv[3])\n"
        "def batches():\n"
        "    for s in range(0, len(y), 262144):\n"
        "        xs = np.ascontiguousarray(x[s:s + 262144])\n"
        "        v = pa.FixedSizeListArray.from_arrays(pa.array(xs.reshape(-1)), xs.shape[1])\n"
        "        yield pa.record_batch([v, pa.array(y[s:s + 262144])], names=['x', 'y'])\n"
        "first = next(batches())\n"
        "lance.write_dataset(pa.RecordBatchReader.from_batches(first.schema, batches()),\n"
        "                    sys.argv[1], mode='overwrite')\n"
    )
    subprocess.run([sys.executable, "-c", code, uri, xp, yp], check=True)


def lance_scan_epoch(uri: str) -> int:
    import lance.torch.data as ltd
    import torch

    ds = ltd.LanceDataset(uri, batch_size=BATCH, columns=["x", "y"], auto_detect_rank=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
    return sum(len(b["y"]) for b in loader)


class ConstantDataset:
    """Batches that cost nothing to make (a copy of a fixed batch): what is left of an epoch
    is the loader's own cost (index queues, moving tensors to shared memory, fd passing)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.x = np.zeros((BATCH, DIM), np.float32)
        self.y = np.zeros(BATCH, np.int64)

    def __len__(self) -> int:
        return self.rows

    def __getitems__(self, idx: list[int]) -> Any:
        import numpack.torch as nt

        n = len(np.asarray(idx))
        return nt.Batch((self.x[:n].copy(), self.y[:n].copy()), False)


def epoch(
    ds: Any, collate: Any, limit: int | None = None, context: str = "fork", workers: int = 2
) -> int:
    import torch

    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        multiprocessing_context=context if workers else None,
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
    # Lance's columns are read-only Arrow buffers: torch warns when it wraps them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
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
        lambda: epoch(ds, nt.collate), lambda: epoch(base, nt.collate), max(5, args.repeats)
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
    floor = statistics.median(
        timed(lambda: epoch(ConstantDataset(args.rows), nt.collate)) for _ in range(3)
    )
    results.append(
        row(
            "DataLoader epoch, constant batches (loader's own cost)",
            floor,
            "np.load(mmap_mode='r') dataset",
            theirs,
            "reported",
        )
    )
    inline = statistics.median(
        timed(lambda: epoch(ds, nt.collate, workers=0)) for _ in range(args.repeats)
    )
    results.append(
        row(
            "DataLoader epoch, NumPackDataset, num_workers=0",
            inline,
            "np.load(mmap_mode='r') dataset, 2 workers",
            theirs,
            "reported",
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
    try:
        import lance
    except ImportError:
        lance = None
    if lance is not None:
        uri = str(root / "train.lance")
        write_lance(uri, str(root / "x.npy"), str(root / "y.npy"))
        take = LanceTakeDataset(uri, args.rows)
        ours, theirs = median_pair(
            lambda: epoch(ds, nt.collate, context="spawn"),
            lambda: epoch(take, nt.collate, context="spawn"),
            args.repeats,
        )
        results.append(
            row(
                "DataLoader epoch, NumPackDataset (spawn)",
                ours,
                "same loader, Lance take() dataset",
                theirs,
                "reported",
            )
        )
        scan = statistics.median(timed(lambda: lance_scan_epoch(uri)) for _ in range(args.repeats))
        results.append(
            row(
                "DataLoader epoch, NumPackDataset (fork)",
                results[0]["numpack_s"],
                "LanceDataset (unshuffled scan)",
                scan,
                "reported",
            )
        )
    ds.close()
    out = Path(__file__).parent / "results" / "loader_bench.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(str(r) for r in results) + "\n")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
