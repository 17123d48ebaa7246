"""numpack.io HDF5: round trips of every dtype, files written by h5py (gzip + shuffle
chunks, big-endian, scalars, groups), failures mid-file, bounded memory."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import numpack
import numpack.io as nio


@pytest.mark.parametrize("compression", ["gzip", None])
def test_round_trip_every_dtype_and_shape(tmp_path, h, load, compression):
    arrays = h.cases()
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save(arrays)
    nio.to_hdf5(tmp_path / "s.npk", tmp_path / "a.h5", compression=compression, chunk_size=48)
    with h5py.File(tmp_path / "a.h5") as f:
        assert sorted(f) == sorted(arrays)
        for k, v in arrays.items():  # h5py reads what we wrote (raw copies included)
            h.assert_same(f[k][()], v)
        if compression is None:
            assert f["float64_5x2x3"].chunks is None  # contiguous, filled by a kernel copy
    nio.from_hdf5(tmp_path / "a.h5", tmp_path / "t.npk", chunk_size=48)
    got = load(tmp_path / "t.npk")
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        h.assert_same(got[k], v)


def test_file_written_by_h5py(tmp_path, h, load):
    g = h.sample((203, 7), np.float32)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("gz", data=g, chunks=(16, 3), compression="gzip", compression_opts=6,
                         shuffle=True)  # fmt: skip
        f.create_dataset("lzf", data=g[:, 0], chunks=(50,), compression="lzf")
        f.create_dataset("big", data=np.arange(12, dtype=">i8").reshape(3, 4))
        f.create_dataset("scalar", data=np.float64(-0.0))
        sub = f.create_group("sub/deeper")
        sub.create_dataset("m", data=np.eye(3, dtype=np.complex64))
        f["sub"].create_dataset("top", data=np.ones(2, np.uint16))
    nio.from_hdf5(tmp_path / "w.h5", tmp_path / "s.npk", chunk_size=1000)
    got = load(tmp_path / "s.npk")
    assert sorted(got) == ["big", "gz", "lzf", "scalar"]  # datasets directly under "/"
    h.assert_same(got["gz"], g)
    h.assert_same(got["lzf"], g[:, 0])
    h.assert_same(got["big"], np.arange(12, dtype="<i8").reshape(3, 4))
    h.assert_same(got["scalar"], np.array(-0.0))
    nio.from_hdf5(tmp_path / "w.h5", tmp_path / "s.npk", group="sub/deeper")
    h.assert_same(load(tmp_path / "s.npk")["m"], np.eye(3, dtype=np.complex64))
    with pytest.warns(UserWarning, match="'deeper' is not a dataset"):
        nio.from_hdf5(tmp_path / "w.h5", tmp_path / "n.npk", dataset_names=["top", "deeper"],
                      group="/sub")  # fmt: skip
    assert sorted(load(tmp_path / "n.npk")) == ["top"]


def test_unstorable_and_missing_names_import_nothing(tmp_path, store, h):
    before = h.store_state(store)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f.create_dataset("ok", data=np.arange(3))
        f.create_dataset("text", data=np.array([b"a", b"b"]))
        f.create_dataset("rec", data=np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]))
    with pytest.raises(ValueError, match=r"u\.h5.*'rec'.*'text'.*nothing was imported"):
        nio.from_hdf5(tmp_path / "u.h5", store)
    with pytest.raises(KeyError, match=r"u\.h5.*'nope' not found"):
        nio.from_hdf5(tmp_path / "u.h5", store, dataset_names=["ok", "nope"])
    with pytest.raises(KeyError, match="group 'missing'"):
        nio.from_hdf5(tmp_path / "u.h5", store, group="missing")
    assert h.store_state(store) == before


def test_corrupt_chunk_midway_leaves_store_unchanged(tmp_path, store, h):
    """Chunks 0-4 of 'a' import, chunk 5 fails to decompress: nothing may appear."""
    before = h.store_state(store)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        ds = f.create_dataset("a", data=np.arange(8000.0).reshape(1000, 8), chunks=(100, 8),
                              compression="gzip")  # fmt: skip
        info = ds.id.get_chunk_info(5)
    raw = bytearray((tmp_path / "c.h5").read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = bytes(info.size)
    (tmp_path / "c.h5").write_bytes(bytes(raw))
    with pytest.raises(OSError, match=r"c\.h5"):
        nio.from_hdf5(tmp_path / "c.h5", store, chunk_size=6400)
    assert h.store_state(store) == before


def test_export_options(tmp_path, h):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": h.sample((3000, 4), np.float64), "b": np.arange(5)})
    nio.to_hdf5(tmp_path / "s.npk", tmp_path / "o.h5", array_names="a", compression="lzf")
    with h5py.File(tmp_path / "o.h5") as f:
        assert list(f) == ["a"] and f["a"].compression == "lzf" and f["a"].chunks[1] == 4
        assert f["a"].chunks[0] * 4 * 8 <= 1 << 20
    nio.to_hdf5(tmp_path / "s.npk", tmp_path / "o.h5", compression=None)  # replaces the file
    with h5py.File(tmp_path / "o.h5") as f:
        assert sorted(f) == ["a", "b"] and f["a"].compression is None


def test_plain_layouts_copied_raw(tmp_path, h, load):
    """Unfiltered contiguous and whole-row-chunked datasets are byte copies; partly written
    (fill-value) chunks and chunks splitting rows go through HDF5."""
    a = h.sample((37, 5), np.complex64)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("contig", data=a)
        f.create_dataset("rows", data=a, chunks=(8, 5))
        f.create_dataset("split", data=a, chunks=(8, 2))
        f.create_dataset("flags", data=a.real > 0)
        part = f.create_dataset("part", shape=(37, 5), dtype=np.float32, chunks=(8, 5),
                                fillvalue=-1.5)  # fmt: skip
        part[:8] = 2.0  # chunks 1..4 stay unallocated
    nio.from_hdf5(tmp_path / "p.h5", tmp_path / "s.npk", chunk_size=50)
    got = load(tmp_path / "s.npk")
    for k in ("contig", "rows", "split"):
        h.assert_same(got[k], a)
    h.assert_same(got["flags"], a.real > 0)
    want = np.full((37, 5), -1.5, np.float32)
    want[:8] = 2.0
    h.assert_same(got["part"], want)
