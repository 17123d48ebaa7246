"""numpack.io NPY/NPZ: round trips of every dtype and shape, files written by NumPy itself
(big-endian, Fortran order, header versions 1-3), all-or-nothing failures, bounded memory."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import numpack
import numpack.io as nio


@pytest.mark.parametrize("shape", [(7,), (7, 3), (5, 2, 3), (4, 2, 3, 2), (0,), (0, 3), (6, 0)])
def test_npy_round_trip_every_dtype(tmp_path, h, load, shape):
    for dt in h.ALL_DTYPES:
        a = h.sample(shape, dt)
        src = tmp_path / f"{dt.name}.npy"
        np.save(src, a)
        out = tmp_path / "s.npk"
        nio.from_npy(src, out, chunk_size=16)  # many chunks
        h.assert_same(load(out)[dt.name], a)
        back = tmp_path / f"back_{dt.name}.npy"
        nio.to_npy(out, back, array_names=[dt.name], chunk_size=16)
        h.assert_same(np.load(back), a)


def test_zero_d_both_ways(tmp_path, h, load):
    for dt in h.ALL_DTYPES:
        a = np.array(h.sample((1,), dt)[0])
        np.save(tmp_path / "z.npy", a)
        nio.from_npy(tmp_path / "z.npy", tmp_path / "s.npk", array_name="z")
        got = load(tmp_path / "s.npk")["z"]
        h.assert_same(got, a)
        nio.to_npy(tmp_path / "s.npk", tmp_path / "o.npy", array_names="z")
        h.assert_same(np.load(tmp_path / "o.npy"), a)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("layout", ["C", "F", "big", "bigF"])
def test_numpy_written_layouts(tmp_path, h, load, version, layout):
    a = h.sample((9, 4, 3), np.float64)
    w = a.astype(">f8") if layout.startswith("big") else a
    w = np.asfortranarray(w) if layout.endswith("F") else w
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array(f, w, version=version)
    nio.from_npy(path, tmp_path / "s.npk", chunk_size=40)
    got = load(tmp_path / "s.npk")["x"]
    assert got.dtype == np.dtype("<f8")
    h.assert_same(got, a)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_every_dtype_both_ways(tmp_path, h, load, compressed):
    arrays = {f"a_{dt.name}": h.sample((6, 2, 2), dt) for dt in h.ALL_DTYPES}
    arrays["empty"] = np.zeros((0, 5), np.float32)
    arrays["scalar"] = np.array(-0.0)
    arrays["fortran"] = np.asfortranarray(h.sample((5, 3), np.int16))
    arrays["big"] = h.sample((4, 3), np.float32).astype(">f4")
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "in.npz", **arrays)
    nio.from_npy(tmp_path / "in.npz", tmp_path / "s.npk", chunk_size=24)
    got = load(tmp_path / "s.npk")
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        h.assert_same(got[k], np.asarray(v, order="C").astype(v.dtype.newbyteorder("<")))
    nio.to_npy(tmp_path / "s.npk", tmp_path / "out.npz", compressed=compressed, chunk_size=24)
    with zipfile.ZipFile(tmp_path / "out.npz") as zf:
        kind = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        assert {i.compress_type for i in zf.infolist()} == {kind}
    with np.load(tmp_path / "out.npz") as z:
        assert sorted(z.files) == sorted(arrays)
        for k in arrays:
            h.assert_same(z[k], got[k])


def test_deleted_rows_export_streams_logical_rows(tmp_path, h):
    a = h.sample((50, 3), np.float32)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a})
        npk.drop("a", [0, 7, 49])
    nio.to_npy(tmp_path / "s.npk", tmp_path / "a.npy", chunk_size=36)
    h.assert_same(np.load(tmp_path / "a.npy"), np.delete(a, [0, 7, 49], axis=0))


def test_names_drop_and_return_obj(tmp_path, store, load):
    np.save(tmp_path / "data.npy", np.arange(4))
    nio.from_npy(tmp_path / "data.npy", store)
    assert sorted(load(store)) == ["data", "keep"]
    npk = nio.from_npy(tmp_path / "data.npy", store, array_name="x", drop_if_exists=True,
                       return_npk_obj=True)  # fmt: skip
    try:
        assert isinstance(npk, numpack.NumPack) and npk.is_opened
        assert npk.get_member_list() == ["x"]
    finally:
        npk.close()
    assert nio.from_npy(tmp_path / "data.npy", store) is None


def test_argument_errors(tmp_path, store):
    with pytest.raises(FileNotFoundError, match="File not found"):
        nio.from_npy(tmp_path / "missing.npy", store)
    (tmp_path / "x.dat").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"Unsupported file format: \.dat"):
        nio.from_npy(tmp_path / "x.dat", store)
    with numpack.NumPack(store) as npk:
        npk.save({"other": np.zeros(3)})
    with pytest.raises(ValueError, match="can only store one array, but 2 arrays"):
        nio.to_npy(store, tmp_path / "o.npy")
    with pytest.raises(KeyError, match="nope"):
        nio.to_npy(store, tmp_path / "o.npz", array_names=["nope"])
    with pytest.raises(ValueError, match="Unsupported file format"):
        nio.to_npy(store, tmp_path / "o.txt")
    with pytest.raises(FileNotFoundError, match="store not found"):
        nio.to_npy(tmp_path / "no.npk", tmp_path / "o.npz")
    assert not (tmp_path / "no.npk").exists()
    assert sorted(os.listdir(tmp_path)) == ["store.npk", "x.dat"]


def test_truncated_npy_leaves_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    np.save(tmp_path / "t.npy", np.arange(1000, dtype=np.float64))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"t\.npy.*truncated"):
        nio.from_npy(tmp_path / "t.npy", store, chunk_size=800)
    (tmp_path / "t.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"t\.npy.*not an NPY file"):
        nio.from_npy(tmp_path / "t.npy", store)
    np.save(tmp_path / "t.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"t\.npy.*cannot be stored"):
        nio.from_npy(tmp_path / "t.npy", store)
    assert h.store_state(store) == before


def test_npz_unstorable_member_imports_nothing(tmp_path, store, h):
    before = h.store_state(store)
    np.savez(tmp_path / "m.npz", good=np.arange(3), words=np.array(["x"]), when=np.array(
        ["2020-01-01"], dtype="datetime64[D]"))  # fmt: skip
    with pytest.raises(ValueError, match=r"m\.npz.*'words'.*'when'.*nothing was imported"):
        nio.from_npy(tmp_path / "m.npz", store)
    assert h.store_state(store) == before


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_corrupt_second_member_fails_midway(tmp_path, store, h, compressed):
    """The first member is already streamed into the store's temporaries when the second
    fails its CRC or ends early: nothing may appear."""
    before = h.store_state(store)
    big = np.arange(20_000, dtype=np.float64)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "c.npz", a=big, b=big * 2)
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        info = zf.getinfo("b.npy")
    start = info.header_offset + 30 + len("b.npy") + 200
    raw[start : start + 64] = bytes(64)  # damage the payload of member 'b'
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    with pytest.raises(Exception, match=r"c\.npz \[b\]"):
        nio.from_npy(tmp_path / "c.npz", store, chunk_size=4096)
    assert h.store_state(store) == before


def test_progress_bar(tmp_path, capsys, load):
    np.save(tmp_path / "p.npy", np.zeros((100, 4)))
    nio.from_npy(tmp_path / "p.npy", tmp_path / "s.npk", chunk_size=800, progress=True)
    nio.to_npy(tmp_path / "s.npk", tmp_path / "q.npy", progress=True)
    assert "p.npy" in capsys.readouterr().err
    assert load(tmp_path / "s.npk")["p"].shape == (100, 4)


def test_deprecated_aliases(tmp_path, load):
    np.save(tmp_path / "d.npy", np.arange(3))
    with pytest.warns(DeprecationWarning, match=r"from_numpy\(\) is deprecated .* from_npy"):
        nio.from_numpy(tmp_path / "d.npy", tmp_path / "s.npk")
    with pytest.warns(DeprecationWarning, match=r"to_numpy\(\) is deprecated .* to_npy"):
        nio.to_numpy(tmp_path / "s.npk", tmp_path / "e.npy")
    assert np.load(tmp_path / "e.npy").tolist() == [0, 1, 2]
