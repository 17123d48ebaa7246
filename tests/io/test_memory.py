"""Bounded memory of every streamed conversion.

Each format's 96 MB input (750,000 x 32 float32, written by the format's own library) is
imported and exported with ``chunk_size`` = 2 MiB in one fresh interpreter, sampled from
outside; every step must stay below ``2 x chunk_size + 64 MB`` of anonymous memory above
what the process held when the step began, where loading the array whole would need more
than 96 MB.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import safetensors.numpy as stn
import torch
import zarr

ROWS, COLS = 750_000, 32
CHUNK = 2 << 20
BOUND_MB = 2 * CHUNK / 2**20 + 64

SCRIPT = """
import json, sys
import h5py, pyarrow, pyarrow.parquet, torch, zarr
import numpack.io as nio
steps = json.loads({steps!r})
for name, fn, args, kwargs in steps:
    print("phase", name, flush=True)
    getattr(nio, fn)(*args, chunk_size={chunk}, **kwargs)
    print("done", flush=True)
"""


def _inputs(d):
    ones = np.ones((ROWS, COLS), np.float32)
    np.save(d / "m.npy", ones)
    np.save(d / "b.npy", ones.astype(">f4"))
    table = pa.table({f"c{j}": ones[:, j] for j in range(COLS)})
    pq.write_table(table, d / "m.parquet", row_group_size=65_536, compression=None)
    feather.write_feather(table, d / "m.feather", chunksize=16_384)
    del table
    with h5py.File(d / "m.h5", "w") as f:
        f.create_dataset("m", data=ones, chunks=(8192, COLS), compression="lzf")
    zarr.create_array(d / "m.zarr", data=ones, chunks=(16_384, COLS), compressors=None)
    stn.save_file({"m": ones}, d / "m.safetensors")
    torch.save({"m": torch.from_numpy(ones)}, d / "m.pt")


def test_every_conversion_is_bounded(tmp_path, h):
    _inputs(tmp_path)
    st = str(tmp_path / "s.npk")
    steps = []
    # (compression is off where it only costs time: the streaming path is the same)
    for fmt, src, exporter, out, kw in [
        ("npy", "m.npy", "to_npy", "o.npy", {}),
        ("npy-bigendian", "b.npy", "to_npy", "o.npz", {"compressed": False}),
        ("parquet", "m.parquet", "to_parquet", "o.parquet", {}),
        ("feather", "m.feather", "to_feather", "o.feather", {}),
        ("hdf5", "m.h5", "to_hdf5", "o.h5", {"compression": None}),
        ("zarr", "m.zarr", "to_zarr", "o.zarr", {"compressor": None}),
        ("safetensors_file", "m.safetensors", "to_safetensors_file", "o.safetensors", {}),
        ("pt", "m.pt", "to_pt", "o.pt", {}),
    ]:
        importer = "from_" + fmt.split("-")[0]
        steps.append((f"{importer} {src}", importer, [str(tmp_path / src), st],
                      {"drop_if_exists": True}))  # fmt: skip
        steps.append((f"{exporter} {out}", exporter, [st, str(tmp_path / out)], kw))
    peaks = h.phase_peaks(SCRIPT.format(steps=json.dumps(steps), chunk=CHUNK))
    assert len(peaks) == len(steps)
    over = {k: round(v, 1) for k, v in peaks.items() if v >= BOUND_MB}
    assert not over, f"above {BOUND_MB} MB: {over} (all: {peaks})"
    assert np.load(tmp_path / "o.npy", mmap_mode="r").shape == (ROWS, COLS)
    assert pq.ParquetFile(tmp_path / "o.parquet").metadata.num_rows == ROWS
    assert torch.load(tmp_path / "o.pt", mmap=True)["m"].shape == (ROWS, COLS)
