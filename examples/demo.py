"""A one-minute tour of numpack: save, append, replace, drop, lazy reads."""

import tempfile
from pathlib import Path

import numpy as np

from numpack import NumPack

path = Path(tempfile.mkdtemp()) / "demo.npk"
rng = np.random.default_rng(0)
emb = rng.standard_normal((100_000, 128)).astype(np.float32)

with NumPack(path, drop_if_exists=True) as npk:
    npk.save({"embeddings": emb})
    npk.append({"embeddings": emb[:10]})  # in place: only the new rows are written
    npk.replace({"embeddings": np.zeros((2, 128), np.float32)}, [0, 1])
    npk.drop("embeddings", [5, 6, 7])  # logical delete through a bitmap
    print("shape after append/drop:", npk.get_shape("embeddings"))

    lazy = npk.load("embeddings", lazy=True)  # mmap-backed, nothing read yet
    batch = lazy[[10, 20, -1]]
    print("random rows:", batch.shape, batch.dtype)
    assert np.array_equal(batch[0], emb[13])

    npk.update("embeddings")  # compaction: physically drop deleted rows
    print("arrays:", npk.get_member_list(), "bytes:", npk.get_metadata()["total_size"])
print("ok:", path)
