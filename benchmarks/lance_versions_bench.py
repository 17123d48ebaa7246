"""Versions side by side with Lance: the same 1,000,000 x 128 float32 embeddings in a numpack
store with history on (keep_last=200) and in a Lance dataset (``pylance``, installed for the
benchmark only: ``uv pip install pylance``).

Run from the repository root after a release build (``make dev-release``)::

    python benchmarks/lance_versions_bench.py             # 1,000,000 x 128, 100 updates
    python benchmarks/lance_versions_bench.py --quick     # 100,000 x 128, 20 updates

Measured, in this one process (warm page cache), median over the updates:

- update 100 random rows: numpack ``replace`` (in place, the old rows kept in the history log)
  against Lance ``merge_insert("id").when_matched_update_all()`` (a new fragment and a deletion
  file per update, each commit a new version);
- read a version back: 1,000 random rows of the version before the updates, through a numpack
  snapshot of that version against ``lance.dataset(uri, version=...)`` + ``take``;
- storage after the updates: bytes on disk of the whole store / dataset directory, against the
  data's own size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from numpack import NumPack


def du(path: Path) -> int:
    """Bytes on disk (allocated blocks) under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


def timed(fn: Any) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e3


def run(rows: int, dim: int, updates: int) -> list[dict[str, Any]]:
    import lance
    import pyarrow as pa

    tmp = Path(tempfile.mkdtemp(prefix="npk-lance-"))
    rng = np.random.default_rng(0)
    data = rng.random((rows, dim), dtype=np.float32)
    batches = [
        (rng.choice(rows, 100, replace=False), rng.random((100, dim), dtype=np.float32))
        for _ in range(updates)
    ]
    probe = np.sort(rng.choice(rows, 1000, replace=False))

    def table(ids: np.ndarray, vecs: np.ndarray) -> pa.Table:
        flat = pa.array(vecs.reshape(-1), type=pa.float32())
        return pa.table(
            {"id": pa.array(ids, type=pa.int64()),
             "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}
        )  # fmt: skip

    # numpack
    npk_path = tmp / "emb.npk"
    npk = NumPack(npk_path)
    npk.open()
    npk.save({"emb": data})
    npk.set_history(keep_last=max(200, updates + 10))
    v0 = npk.version
    ours_update = [timed(lambda i=i, v=v: npk.replace({"emb": v}, i)) for i, v in batches]
    with npk.snapshot(version=v0) as snap:
        snap.getitem("emb", probe)  # warm
        ours_read = statistics.median(timed(lambda: snap.getitem("emb", probe)) for _ in range(7))
        np.testing.assert_array_equal(snap.getitem("emb", probe), data[probe])
    npk.close()
    ours_bytes = du(npk_path)

    # Lance
    uri = str(tmp / "emb.lance")
    ds = lance.write_dataset(table(np.arange(rows), data), uri)
    lv0 = ds.version
    lance_update = []
    for i, v in batches:
        src = table(i.astype(np.int64), v)
        lance_update.append(
            timed(lambda src=src: ds.merge_insert("id").when_matched_update_all().execute(src))
        )
    old = lance.dataset(uri, version=lv0)
    old.take(probe, columns=["vector"])  # warm
    lance_read = statistics.median(
        timed(lambda: old.take(probe, columns=["vector"])) for _ in range(7)
    )
    got = old.take(probe, columns=["vector"]).column("vector").combine_chunks()
    np.testing.assert_array_equal(got.values.to_numpy().reshape(-1, dim), data[probe])
    lance_bytes = du(Path(uri))
    shutil.rmtree(tmp)

    size = f"{rows:,} x {dim}"
    rows_out = [
        ("update 100 random rows", statistics.median(ours_update), statistics.median(lance_update),
         "µs"),
        ("read 1,000 rows of the version before the updates", ours_read, lance_read, "µs"),
        (f"bytes on disk after {updates} updates", ours_bytes, lance_bytes, "B"),
    ]  # fmt: skip
    out = []
    print(f"data: {data.nbytes:,} B; numpack history keeps every version")
    for op, ours, theirs, unit in rows_out:
        print(f"{size:>16}  {op:52} numpack {ours:14,.1f} {unit}  lance {theirs:14,.1f} {unit}"
              f"  ratio {ours / theirs:.3f}x", flush=True)  # fmt: skip
        out.append({"size": size, "op": op, "numpack": ours, "lance": theirs, "unit": unit,
                    "ratio": ours / theirs, "data_bytes": int(data.nbytes)})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows, updates = (100_000, 20) if args.quick else (1_000_000, 100)
    results = run(rows, 128, updates)
    dest = args.json or Path(__file__).parent / "results" / "lance_versions_bench.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
