"""numpack.io S3 and fsspec URLs, against a real S3 server (moto) on 127.0.0.1 started by
the tests: every format both ways, names from the object key, multipart objects, s3:// and
memory:// paths given to the file converters."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
from helpers import BUCKET

import numpack
import numpack.io as nio

FORMATS = [("a.npy", "a"), ("a.npz", None), ("a.csv", "a"), ("a.txt", "a"),
           ("a.parquet", "a"), ("a.feather", "a"), ("a.h5", None), ("a.zarr", None),
           ("a.safetensors", None), ("a.pt", None)]  # fmt: skip


@pytest.mark.parametrize(("key", "stem"), FORMATS, ids=[k for k, _ in FORMATS])
def test_every_format_both_ways(tmp_path, s3, h, load, key, stem):
    opts, fs = s3
    a = h.sample((40, 3), np.float64)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"emb": a})
    url = f"s3://{BUCKET}/dir/{key}"
    nio.to_s3(tmp_path / "s.npk", url, array_name="emb", chunk_size=256, **opts)
    assert fs.exists(url)
    nio.from_s3(url, tmp_path / "t.npk", chunk_size=256, **opts)
    got = load(tmp_path / "t.npk")
    name = stem or "emb"  # single-array formats are named after the object's stem
    assert list(got) == [name]
    h.assert_same(got[name], a)


def test_multipart_objects_and_s3_urls(tmp_path, s3, h, load):
    """A 12 MB array is uploaded in several parts and read back, also through plain
    s3:// paths given to from_npy / to_parquet."""
    opts, fs = s3
    a = np.arange(1_500_000, dtype=np.float64).reshape(-1, 4)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"big": a})
    nio.to_s3(tmp_path / "s.npk", f"{BUCKET}/big.npy", **opts)
    assert fs.info(f"{BUCKET}/big.npy")["size"] > 2 * (5 << 20)
    etag = fs.info(f"{BUCKET}/big.npy")["ETag"].strip('"')
    assert etag.endswith("-2")  # the multipart ETag: 2 parts
    nio.from_s3(f"{BUCKET}/big.npy", tmp_path / "t.npk", **opts)
    h.assert_same(load(tmp_path / "t.npk")["big"], a)
    nio.to_parquet(tmp_path / "s.npk", f"s3://{BUCKET}/p/big.parquet")
    nio.from_parquet(f"s3://{BUCKET}/p/big.parquet", tmp_path / "u.npk")
    h.assert_same(load(tmp_path / "u.npk")["big"], a)


def test_s3_errors(tmp_path, s3, store, h):
    opts, _fs = s3
    before = h.store_state(store)
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        nio.from_s3(f"s3://{BUCKET}/missing.npy", store, **opts)
    with pytest.raises(ValueError, match="Unsupported format: xls"):
        nio.from_s3(f"s3://{BUCKET}/x.xls", store, format="xls", **opts)
    assert h.store_state(store) == before


@pytest.mark.parametrize("key", ["m.npy", "m.parquet", "m.h5", "m.zarr", "m.safetensors"])
def test_memory_urls(tmp_path, h, load, key):
    a = h.sample((9, 2), np.float32)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"m": a})
    url = f"memory://numpack-test/{tmp_path.name}/{key}"
    fmt = {"npy": "npy", "parquet": "parquet", "h5": "hdf5", "zarr": "zarr"}
    fmt = fmt.get(key[2:], "safetensors_file")
    exporter, importer = getattr(nio, f"to_{fmt}"), getattr(nio, f"from_{fmt}")
    exporter(tmp_path / "s.npk", url)
    exporter(tmp_path / "s.npk", url)  # replacing an existing object / directory
    importer(url, tmp_path / "t.npk")
    h.assert_same(load(tmp_path / "t.npk")["m"], a)
    fsspec.filesystem("memory").rm(f"/numpack-test/{tmp_path.name}", recursive=True)
    nio.to_npy(tmp_path / "s.npk", f"file://{tmp_path}/f.npy")
    assert np.load(tmp_path / "f.npy").shape == (9, 2)


def test_progress_of_transfers_and_conversions(tmp_path, s3, bars, h, load):
    """``progress=True``: a bar for the conversion and one for the transfer (bytes for an
    object, files for a Zarr prefix), each ending at its total."""
    opts, fs = s3
    a = h.sample((5000, 4), np.float64)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a})
    url = f"s3://{BUCKET}/progress/a.npy"
    nio.to_s3(tmp_path / "s.npk", url, progress=True, **opts)
    nio.from_s3(url, tmp_path / "t.npk", progress=True, **opts)
    h.assert_same(load(tmp_path / "t.npk")["a"], a)
    size = fs.info(url)["size"]
    assert [(b.desc, b.unit, b.total) for b in bars] == [
        ("a.npy", "B", a.nbytes), ("upload a.npy", "B", size),
        ("download a.npy", "B", size), ("a.npy", "B", size),
    ]  # fmt: skip
    bars.check(several=False)
    bars[:] = [bars[0], bars[3]]  # the conversions move slice by slice
    bars.check()
    bars.clear()
    nio.to_s3(tmp_path / "s.npk", f"s3://{BUCKET}/progress/a.zarr", progress=True, **opts)
    nio.from_s3(f"s3://{BUCKET}/progress/a.zarr", tmp_path / "z.npk", progress=True, **opts)
    assert [b.unit for b in bars] == ["B", "files", "files", "B"]
    bars.check(several=False)


def test_progress_through_fsspec_urls(tmp_path, bars, h, load):
    """A converter given a URL passes its ``progress`` to the transfer."""
    a = h.sample((3000, 2), np.float32)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"m": a})
    url = f"memory://numpack-test/{tmp_path.name}/m.npy"
    nio.to_npy(tmp_path / "s.npk", url, progress=True)
    nio.from_npy(url, tmp_path / "t.npk", progress=True)
    h.assert_same(load(tmp_path / "t.npk")["m"], a)
    assert [b.desc for b in bars] == ["m.npy", "upload m.npy", "download m.npy", "m.npy"]
    bars.check(several=False)
    fsspec.filesystem("memory").rm(f"/numpack-test/{tmp_path.name}", recursive=True)
