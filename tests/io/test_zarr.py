"""numpack.io Zarr: round trips of every dtype, v2 and v3 groups written by zarr itself
(sharded, nested, single arrays), unstorable dtypes, a corrupt chunk midway, bounded memory."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
import zarr.codecs

import numpack
import numpack.io as nio


@pytest.mark.parametrize("compressor", ["default", None])
def test_round_trip_every_dtype_and_shape(tmp_path, h, load, compressor):
    arrays = h.cases()
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save(arrays)
    nio.to_zarr(tmp_path / "s.npk", tmp_path / "a.zarr", compressor=compressor, chunk_size=48)
    g = zarr.open_group(tmp_path / "a.zarr", mode="r")
    assert g.metadata.zarr_format == 3 and sorted(g.array_keys()) == sorted(arrays)
    h.assert_same(g["float64_5x2x3"][:], arrays["float64_5x2x3"])
    nio.from_zarr(tmp_path / "a.zarr", tmp_path / "t.npk", chunk_size=48)
    got = load(tmp_path / "t.npk")
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        h.assert_same(got[k], v)


@pytest.mark.parametrize("fmt", [2, 3])
def test_groups_written_by_zarr(tmp_path, h, load, fmt):
    a = h.sample((97, 5), np.float32)
    g = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=fmt)
    g.create_array("a", data=a, chunks=(10, 2))
    g.create_array("big", data=np.arange(6, dtype=">u2"), chunks=(4,))
    g.create_array("s", data=np.array(7, np.int64))
    if fmt == 3:
        g.create_array("sharded", data=a, chunks=(5, 5), shards=(20, 5))
    sub = g.create_group("sub")
    sub.create_array("m", data=np.eye(2, dtype=np.complex128), chunks=(1, 2))
    nio.from_zarr(tmp_path / "g.zarr", tmp_path / "s.npk", chunk_size=400)
    got = load(tmp_path / "s.npk")
    assert sorted(got) == sorted(["a", "big", "s"] + (["sharded"] if fmt == 3 else []))
    h.assert_same(got["a"], a)
    h.assert_same(got["big"], np.arange(6, dtype="<u2"))
    h.assert_same(got["s"], np.array(7, np.int64))
    if fmt == 3:
        h.assert_same(got["sharded"], a)
    nio.from_zarr(tmp_path / "g.zarr", tmp_path / "s.npk", group="sub")
    h.assert_same(load(tmp_path / "s.npk")["m"], np.eye(2, dtype=np.complex128))
    nio.from_zarr(tmp_path / "g.zarr", tmp_path / "n.npk", array_names=["big"])
    assert list(load(tmp_path / "n.npk")) == ["big"]
    zarr.create_array(tmp_path / "single.zarr", data=a[:, 0], chunks=(8,), zarr_format=fmt)
    nio.from_zarr(tmp_path / "single.zarr", tmp_path / "n.npk")
    h.assert_same(load(tmp_path / "n.npk")["single"], a[:, 0])


def test_unstorable_and_missing_import_nothing(tmp_path, store, h):
    before = h.store_state(store)
    g = zarr.open_group(tmp_path / "u.zarr", mode="w", zarr_format=2)
    g.create_array("ok", data=np.arange(3))
    g.create_array("words", data=np.array(["a", "bc"]))
    with pytest.raises(ValueError, match=r"u\.zarr.*'words'.*nothing was imported"):
        nio.from_zarr(tmp_path / "u.zarr", store)
    with pytest.raises(KeyError, match="'nope' not found"):
        nio.from_zarr(tmp_path / "u.zarr", store, array_names=["ok", "nope"])
    with pytest.raises(KeyError, match="group 'zz' not found"):
        nio.from_zarr(tmp_path / "u.zarr", store, group="zz")
    with pytest.raises(FileNotFoundError):
        nio.from_zarr(tmp_path / "none.zarr", store)
    assert h.store_state(store) == before


def test_corrupt_chunk_midway_leaves_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    g = zarr.open_group(tmp_path / "c.zarr", mode="w")
    g.create_array("a", data=np.arange(8000.0).reshape(1000, 8), chunks=(100, 8))
    chunk = tmp_path / "c.zarr" / "a" / "c" / "7" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"garbage" * 10)
    with pytest.raises(Exception, match=r"c\.zarr \[a\]"):
        nio.from_zarr(tmp_path / "c.zarr", store, chunk_size=6400)
    assert h.store_state(store) == before


def test_export_replaces_directory_atomically(tmp_path):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.arange(10)})
    (tmp_path / "o.zarr").mkdir()
    (tmp_path / "o.zarr" / "stale").write_text("x")
    nio.to_zarr(tmp_path / "s.npk", tmp_path / "o.zarr", group="inner",
                compressor=zarr.codecs.ZstdCodec(level=1))  # fmt: skip
    assert "stale" not in os.listdir(tmp_path / "o.zarr")
    arr = zarr.open_group(tmp_path / "o.zarr", mode="r")["inner/a"]
    assert arr[:].tolist() == list(range(10))
    assert sorted(os.listdir(tmp_path)) == ["o.zarr", "s.npk"]
