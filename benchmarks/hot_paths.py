"""Hot paths of the storage engine, for A/B runs of two builds side by side.

Run it with each build importable in turn, interleaved, e.g. after installing an older
wheel into ``/tmp/old`` (``pip install --target /tmp/old numpack-*.whl``)::

    for i in 1 2 3; do PYTHONPATH=/tmp/old python benchmarks/hot_paths.py; \\
                       python benchmarks/hot_paths.py; done

Prints the median time of an append of 100 rows, a replace of 100 scattered rows (1,000 x 10
float32 store) and the ratio of a streaming pass (1,000,000 x 10 float32, batches of 100,000
rows) to a batched ``np.memmap`` pass, each over 5 blocks of repeats.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

import numpack
from numpack import NumPack


def block_medians(fn, blocks: int = 5, reps: int = 300) -> list[float]:
    """Median microseconds of ``fn`` in each of ``blocks`` blocks of ``reps`` calls."""
    out = []
    for _ in range(blocks):
        ts = []
        for _ in range(reps):
            t = time.perf_counter_ns()
            fn()
            ts.append(time.perf_counter_ns() - t)
        out.append(statistics.median(ts) / 1e3)
    return out


def main() -> None:
    d = tempfile.mkdtemp(prefix="npk-hot-")
    rows = np.random.default_rng(0).random((100, 10), dtype=np.float32)
    idx = np.arange(0, 1000, 10)
    with NumPack(d + "/s.npk") as npk:
        npk.save({"a": np.zeros((1000, 10), np.float32)})
        for _ in range(200):
            npk.append({"a": rows})
        append = block_medians(lambda: npk.append({"a": rows}))
        replace = block_medians(lambda: npk.replace({"a": rows}, idx))
        data = np.random.default_rng(0).random((1_000_000, 10), dtype=np.float32)
        np.save(d + "/a.npy", data)
        npk.save({"s": data})
        batch = 100_000

        def ours() -> float:
            return sum(float(b.sum(dtype=np.float64)) for b in npk.stream_load("s", batch))

        def base() -> float:
            m = np.load(d + "/a.npy", mmap_mode="r")
            return sum(
                float(np.array(m[i : i + batch]).sum(dtype=np.float64))
                for i in range(0, len(m), batch)
            )

        ratios = []
        for _ in range(5):
            a = block_medians(ours, 1, 7)[0]
            b = block_medians(base, 1, 7)[0]
            ratios.append(a / b)
    print(numpack.__file__)
    print("append 100 rows, us:", [round(x, 1) for x in append])
    print("replace 100 rows, us:", [round(x, 1) for x in replace])
    print("streaming / mmap pass:", [round(x, 2) for x in ratios])


if __name__ == "__main__":
    main()
