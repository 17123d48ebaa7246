"""Tests of ``numpack.NumPack``: every method, every error of API.md, dtypes x shapes, memory
layouts, lifecycle, hostile names, the on-disk format of FORMAT.md and corrupt files."""

from __future__ import annotations

import gc
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from helpers import DTYPES, random_array

import numpack
from numpack import NumPack
from numpack.exceptions import ArrayNotFoundError, CorruptStoreError, IndexOutOfRangeError

SHAPES = [(7,), (5, 3), (4, 3, 2), (3, 2, 3, 2), (2, 3, 1, 2, 2)]
DTYPE_STRINGS = {
    "bool": "Bool",
    "uint8": "Uint8",
    "uint16": "Uint16",
    "uint32": "Uint32",
    "uint64": "Uint64",
    "int8": "Int8",
    "int16": "Int16",
    "int32": "Int32",
    "int64": "Int64",
    "float16": "Float16",
    "float32": "Float32",
    "float64": "Float64",
    "complex64": "Complex64",
    "complex128": "Complex128",
}
NOT_OPEN = "not opened or has been closed"


def assert_same(actual, expected):
    """Exact equality of values, dtype and shape; ``actual`` must be an ndarray."""
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


def le_bytes(arr):
    """The bytes FORMAT.md prescribes for ``arr``: C order, little-endian."""
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


# --------------------------------------------------------------------------------------------
# FORMAT.md helpers: a reader and a writer of metadata.npkm / deleted_<name>.npkb
# --------------------------------------------------------------------------------------------
MAGIC = 0x424B504E


def read_metadata(store):
    raw = (pathlib.Path(store) / "metadata.npkm").read_bytes()
    magic, version, total, count = struct.unpack_from("<IIQI", raw, 0)
    off = 20
    records = {}
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        name = raw[off : off + n].decode("utf-8")
        off += n
        (ndim,) = struct.unpack_from("<I", raw, off)
        off += 4
        shape = list(struct.unpack_from(f"<{ndim}Q", raw, off))
        off += 8 * ndim
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        data_file = raw[off : off + n].decode("utf-8")
        off += n
        modified, size_bytes, code, comp, _level, _orig, _csize, flag = struct.unpack_from(
            "<QQBBIQQB", raw, off
        )
        off += 39
        if flag == 1:
            _enabled, _bsize, _nblocks, cnt = struct.unpack_from("<BQQI", raw, off)
            off += 21 + 24 * cnt
        records[name] = {
            "shape": shape,
            "data_file": data_file,
            "last_modified": modified,
            "size_bytes": size_bytes,
            "dtype_code": code,
            "compression": comp,
            "block_flag": flag,
        }
    assert off == len(raw), "trailing bytes after the last metadata record"
    return {"magic": magic, "version": version, "total_size": total, "arrays": records}


def encode_record(name, shape, data_file, size_bytes, code, block_section=b""):
    def s(text):
        b = text.encode("utf-8")
        return struct.pack("<I", len(b)) + b

    out = s(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
    out += s(data_file)
    out += struct.pack(
        "<QQBBIQQ", 1_700_000_000_000_000, size_bytes, code, 0, 0, size_bytes, size_bytes
    )
    out += struct.pack("<B", 1 if block_section else 0) + block_section
    return out


def write_metadata(store, records, total):
    body = b"".join(records)
    header = struct.pack("<IIQI", MAGIC, 1, total, len(records))
    (pathlib.Path(store) / "metadata.npkm").write_bytes(header + body)


def encode_bitmap(active):
    active = np.asarray(active, dtype=bool)
    rows = len(active)
    words = np.zeros((rows + 63) // 64, dtype="<u8")
    for i in np.flatnonzero(active):
        words[i // 64] |= np.uint64(1) << np.uint64(i % 64)
    return struct.pack("<QQ", rows, int((~active).sum())) + words.tobytes()


def decode_bitmap(raw):
    rows, deleted = struct.unpack_from("<QQ", raw, 0)
    words = np.frombuffer(raw, dtype="<u8", offset=16)
    assert len(words) == (rows + 63) // 64
    active = np.array([(int(words[i // 64]) >> (i % 64)) & 1 for i in range(rows)], dtype=bool)
    return rows, deleted, active


# --------------------------------------------------------------------------------------------
# Module surface and exceptions
# --------------------------------------------------------------------------------------------
def test_module_exports():
    for name in ("NumPack", "LazyArray", "force_cleanup_windows_handles"):
        assert hasattr(numpack, name), name
        assert name in numpack.__all__, name
    assert isinstance(numpack.__version__, str) and numpack.__version__
    assert numpack.force_cleanup_windows_handles() is True  # harmless no-op on POSIX


@pytest.mark.skipif(
    not hasattr(numpack, "pack"), reason=".npkg packages (pack/unpack) are not built yet (issue 8)"
)
def test_package_exports():
    for name in ("pack", "unpack", "get_package_info"):
        assert callable(getattr(numpack, name)), name
        assert name in numpack.__all__, name


def test_exception_hierarchy():
    assert issubclass(ArrayNotFoundError, KeyError) and issubclass(ArrayNotFoundError, ValueError)
    assert issubclass(IndexOutOfRangeError, IndexError) and issubclass(
        IndexOutOfRangeError, ValueError
    )
    assert issubclass(CorruptStoreError, ValueError)
    assert numpack.ArrayNotFoundError is ArrayNotFoundError
    assert numpack.IndexOutOfRangeError is IndexOutOfRangeError
    assert numpack.CorruptStoreError is CorruptStoreError


def test_import_does_not_patch_numpy():
    code = "import numpy; f = numpy.issubdtype; import numpack; assert numpy.issubdtype is f"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# save / load round trips
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
def test_roundtrip_dtype_shape(store_path, dtype, shape):
    arr = random_array(shape, dtype, seed=len(shape))
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        loaded = npk.load("x")
        assert_same(loaded, arr)
        assert loaded.flags.writeable and loaded.flags.c_contiguous
        assert npk.get_shape("x") == shape
        lazy = npk.load("x", lazy=True)
        assert isinstance(lazy, numpack.LazyArray)
        assert lazy.shape == shape and lazy.dtype == dtype
        assert_same(np.asarray(lazy), arr)
        assert_same(npk.getitem("x", [0, -1]), arr[[0, -1]])
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), arr)
        assert_same(npk["x"], arr)


def test_data_file_bytes_follow_format(store_path, dtype):
    arr = random_array((4, 3), dtype, seed=3)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
    assert (store_path / "data_x.npkd").read_bytes() == le_bytes(arr)


def test_zero_dim_arrays(store_path, dtype):
    arr = random_array((), dtype, seed=5)
    with NumPack(store_path) as npk:
        npk.save({"s": arr})
        assert npk.get_shape("s") == ()
        assert_same(npk.load("s"), arr)
        assert_same(np.asarray(npk.load("s", lazy=True)), arr)
    with NumPack(store_path) as npk:
        assert_same(npk.load("s"), arr)
        assert npk.get_metadata()["arrays"]["s"]["shape"] == []


def test_append_to_zero_dim_is_value_error(npk):
    npk.save({"s": np.array(1.5)})
    with pytest.raises(ValueError):
        npk.append({"s": np.array([2.5])})
    assert_same(npk.load("s"), np.array(1.5))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (0, 2, 2)], ids=str)
@pytest.mark.parametrize("dt", ["float32", "int64", "bool", "complex128"])
def test_empty_arrays(store_path, shape, dt):
    arr = np.zeros(shape, dtype=dt)
    with NumPack(store_path) as npk:
        npk.save({"e": arr})
        assert npk.get_shape("e") == shape
        assert_same(npk.load("e"), arr)
        lazy = npk.load("e", lazy=True)
        assert lazy.shape == shape
        assert_same(np.asarray(lazy), arr)
    with NumPack(store_path) as npk:
        assert_same(npk.load("e"), arr)


def test_append_to_empty_array(npk, make_array):
    npk.save({"e": np.zeros((0, 3), dtype=np.int16)})
    rows = make_array((4, 3), np.int16)
    npk.append({"e": rows})
    assert_same(npk.load("e"), rows)
    npk.save({"f": np.zeros((0,), dtype=np.float32)})
    npk.append({"f": np.arange(3, dtype=np.float32)})
    assert_same(npk.load("f"), np.arange(3, dtype=np.float32))


def test_fortran_order_input_is_stored_as_values(store_path, dtype):
    arr = random_array((4, 3, 2), dtype, seed=11)
    fortran = np.asfortranarray(arr)
    assert not fortran.flags.c_contiguous
    with NumPack(store_path) as npk:
        npk.save({"f": fortran})
        assert_same(npk.load("f"), arr)
    assert (store_path / "data_f.npkd").read_bytes() == le_bytes(arr)


def test_non_contiguous_input_is_stored_as_values(store_path, dtype):
    big = random_array((8, 6, 3), dtype, seed=12)
    views = {
        "step": big[::2, 1::2],
        "rev": big[::-1, :, ::-1],
        "trans": big.transpose(2, 0, 1),
        "col": big[:, 2, 1],
    }
    with NumPack(store_path) as npk:
        npk.save(views)
        for name, view in views.items():
            assert_same(npk.load(name), np.ascontiguousarray(view))
    with NumPack(store_path) as npk:
        for name, view in views.items():
            assert_same(npk.load(name), np.ascontiguousarray(view))


def test_big_endian_input_is_stored_as_values(store_path, dtype):
    arr = random_array((5, 2), dtype, seed=13)
    swapped = arr.astype(dtype.newbyteorder(">"))
    with NumPack(store_path) as npk:
        npk.save({"b": swapped})
        loaded = npk.load("b")
        assert loaded.dtype.isnative
        assert_same(loaded, arr)
        assert npk.load("b", lazy=True).dtype == arr.dtype
    assert (store_path / "data_b.npkd").read_bytes() == le_bytes(arr)


def test_memmap_input(npk, tmp_path, make_array):
    arr = make_array((6, 4), np.float32)
    mm = np.lib.format.open_memmap(
        tmp_path / "src.npy", mode="w+", dtype=arr.dtype, shape=arr.shape
    )
    mm[:] = arr
    npk.save({"m": mm})
    loaded = npk.load("m")
    assert type(loaded) is np.ndarray
    assert_same(loaded, arr)
    del mm


def test_save_several_and_overwrite_with_new_shape_and_dtype(npk, make_array):
    a, b = make_array((5, 2), np.int32), make_array((3,), np.float64)
    npk.save({"a": a, "b": b})
    assert_same(npk.load("a"), a)
    assert_same(npk.load("b"), b)
    a2 = make_array((2, 7, 2), np.complex64)
    npk.save({"a": a2})
    assert_same(npk.load("a"), a2)
    assert npk.get_shape("a") == (2, 7, 2)
    assert npk.get_metadata()["arrays"]["a"]["dtype"] == "Complex64"
    a3 = make_array((2, 7, 2), np.complex64)
    npk.save({"a": a3})  # same shape and dtype: rewritten in place
    assert_same(npk.load("a"), a3)
    assert_same(npk.load("b"), b)


@pytest.mark.parametrize("new_rows", [10, 6, 12])
def test_overwrite_after_row_drop_is_a_fresh_array(store_path, new_rows):
    with NumPack(store_path) as npk:
        npk.save({"x": np.arange(10, dtype=np.int64)})
        npk.drop("x", [1, 4])
        fresh = np.arange(100, 100 + new_rows, dtype=np.int64)
        npk.save({"x": fresh})
        assert npk.get_shape("x") == (new_rows,)
        assert_same(npk.load("x"), fresh)
        assert_same(np.asarray(npk.load("x", lazy=True)), fresh)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), fresh)
    assert not (store_path / "deleted_x.npkb").exists()


def test_loaded_array_is_independent_of_disk(npk):
    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    npk.save({"x": arr})
    loaded = npk.load("x")
    loaded[:] = -1
    assert_same(npk.load("x"), arr)
    arr[0, 0] = 99  # mutating the saved source afterwards does not reach the store
    assert npk.load("x")[0, 0] == 0


def test_loaded_array_does_not_follow_later_disk_changes(npk):
    arr = np.arange(4000, dtype=np.int64).reshape(1000, 4)
    npk.save({"x": arr})
    loaded = npk.load("x")
    npk.replace({"x": np.full((1, 4), -1, dtype=np.int64)}, [0, 999])
    npk.append({"x": arr[:5]})
    assert_same(loaded, arr)


def test_loaded_array_outlives_store_changes_and_close(store_path):
    code = textwrap.dedent(
        f"""
        import gc, numpy as np
        from numpack import NumPack
        arr = np.arange(300000, dtype=np.float64).reshape(100000, 3)
        npk = NumPack({str(store_path)!r})
        npk.open()
        npk.save({{"x": arr}})
        npk.drop("x", [0])
        loaded = npk.load("x")
        npk.save({{"x": np.zeros(2)}})
        npk.drop("x")
        npk.close()
        gc.collect()
        assert loaded.shape == (99999, 3)
        assert float(loaded.sum()) == float(arr[1:].sum())
        loaded[:] = 1.0
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"


def test_load_lazy_positional_and_getitem_dunder(npk):
    arr = np.arange(6, dtype=np.uint16)
    npk.save({"x": arr})
    assert isinstance(npk.load("x", True), numpack.LazyArray)
    assert isinstance(npk.load("x", False), np.ndarray)
    assert_same(npk["x"], arr)
    with pytest.raises(KeyError, match="missing"):
        npk["missing"]
    with pytest.raises(ArrayNotFoundError, match="missing"):
        npk.load("missing")


def test_save_empty_dict_is_noop(npk):
    npk.save({})
    assert npk.get_member_list() == []


@pytest.mark.parametrize("bad", [[("a", np.zeros(2))], np.zeros(2), "a", None])
def test_save_requires_dict(npk, bad):
    with pytest.raises(ValueError, match="arrays must be a dictionary"):
        npk.save(bad)


@pytest.mark.parametrize(
    "bad",
    [
        np.array(["ab", "c"]),
        np.array([1, "x", None], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        np.zeros(3, dtype=np.longdouble)
        if np.dtype(np.longdouble).itemsize > 8
        else np.zeros(3, dtype="S3"),
    ],
    ids=["str", "object", "datetime", "timedelta", "structured", "longdouble_or_bytes"],
)
def test_save_unsupported_dtype(npk, bad):
    good = np.arange(3)
    with pytest.raises(ValueError) as info:
        npk.save({"good": good, "bad": bad})
    message = str(info.value)
    assert "Unsupported dtype" in message
    assert any(s in message for s in (bad.dtype.name, str(bad.dtype), bad.dtype.str)), message
    # validation happens before any write
    assert not npk.has_array("good") and not npk.has_array("bad")


def test_save_non_str_key_is_type_error(npk):
    with pytest.raises(TypeError):
        npk.save({1: np.zeros(3)})
    assert npk.get_member_list() == []


@pytest.mark.parametrize("name", ["", "a\x00b", "\x00"], ids=["empty", "nul", "only_nul"])
def test_invalid_names_are_value_errors(npk, name):
    with pytest.raises(ValueError):
        npk.save({name: np.zeros(3)})
    assert npk.get_member_list() == []


@pytest.mark.parametrize("bad_name", [1, None, 2.5, b"x"])
def test_non_str_array_name_is_type_error(npk, bad_name):
    npk.save({"x": np.zeros(3)})
    with pytest.raises(TypeError):
        npk.load(bad_name)
    with pytest.raises(TypeError):
        npk.get_shape(bad_name)


# --------------------------------------------------------------------------------------------
# append
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (3, 2), (2, 3, 2)], ids=lambda s: f"{len(s)}d")
def test_append_dtype_shape(store_path, dtype, shape):
    first = random_array(shape, dtype, seed=21)
    more = random_array((5, *shape[1:]), dtype, seed=22)
    with NumPack(store_path) as npk:
        npk.save({"x": first})
        npk.append({"x": more})
        expected = np.concatenate([first, more])
        assert npk.get_shape("x") == expected.shape
        assert_same(npk.load("x"), expected)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)
        npk.append({"x": more[:1]})
        assert_same(npk.load("x"), np.concatenate([expected, more[:1]]))
    assert (store_path / "data_x.npkd").read_bytes() == le_bytes(
        np.concatenate([expected, more[:1]])
    )


def test_append_several_arrays_and_non_contiguous(npk, make_array):
    a, b = make_array((3, 4), np.float32), make_array((2,), np.int8)
    npk.save({"a": a, "b": b})
    big = make_array((6, 8), np.float32)
    extra_a = big[::2, ::2]
    extra_b = np.arange(10, dtype=np.int8)[::-3]
    npk.append({"a": extra_a, "b": extra_b})
    assert_same(npk.load("a"), np.concatenate([a, extra_a]))
    assert_same(npk.load("b"), np.concatenate([b, extra_b]))
    fortran = np.asfortranarray(make_array((3, 4), np.float32))
    npk.append({"a": fortran})
    assert_same(npk.load("a"), np.concatenate([a, extra_a, fortran]))


def test_append_zero_rows_is_noop(npk):
    arr = np.arange(6, dtype=np.int32).reshape(3, 2)
    npk.save({"x": arr})
    npk.append({"x": np.zeros((0, 2), dtype=np.int32)})
    assert npk.get_shape("x") == (3, 2)
    assert_same(npk.load("x"), arr)


def test_append_missing_array(npk):
    npk.save({"a": np.zeros(3)})
    with pytest.raises(ArrayNotFoundError, match="missing") as info:
        npk.append({"a": np.ones(2), "missing": np.zeros(3)})
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert not npk.has_array("missing")
    assert_same(npk.load("a"), np.zeros(3))


@pytest.mark.parametrize(
    "rows",
    [np.zeros((2, 4), np.float64), np.zeros((2, 3, 1), np.float64), np.zeros(3, np.float64)],
    ids=["width", "ndim_more", "ndim_less"],
)
def test_append_shape_mismatch(npk, rows):
    arr = np.ones((3, 3))
    npk.save({"x": arr})
    with pytest.raises(ValueError):
        npk.append({"x": rows})
    assert_same(npk.load("x"), arr)


@pytest.mark.parametrize(
    "stored, given",
    [
        ("int32", "int64"),
        ("int64", "int32"),
        ("float32", "float64"),
        ("int32", "float32"),
        ("uint8", "bool"),
        ("float16", "int16"),
        ("complex64", "float64"),
        ("uint32", "int32"),
    ],
)
def test_append_dtype_mismatch_is_type_error(npk, stored, given):
    arr = np.arange(6).astype(stored).reshape(3, 2)
    npk.save({"x": arr})
    with pytest.raises(TypeError):
        npk.append({"x": np.ones((2, 2), dtype=given)})
    assert_same(npk.load("x"), arr)
    assert (npk.get_shape("x")) == (3, 2)


def test_append_and_replace_write_in_place(store_path):
    """API.md: append and replace work in place (the data file is not rewritten)."""
    arr = np.arange(3000, dtype=np.float64).reshape(1000, 3)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        data = store_path / "data_x.npkd"
        inode = os.stat(data).st_ino
        npk.append({"x": np.ones((2, 3))})
        assert os.stat(data).st_ino == inode
        npk.replace({"x": np.zeros((1, 3))}, 500)
        assert os.stat(data).st_ino == inode
    expected = np.concatenate([arr, np.ones((2, 3))])
    expected[500] = 0
    assert data.read_bytes() == le_bytes(expected)


def test_append_refreshes_modify_time(npk):
    npk.save({"x": np.zeros(3)})
    before = npk.get_modify_time("x")
    time.sleep(0.002)
    npk.append({"x": np.ones(2)})
    assert npk.get_modify_time("x") > before


def test_append_after_row_drop_keeps_deleted_rows_deleted(store_path):
    base = np.arange(10, dtype=np.float64)
    with NumPack(store_path) as npk:
        npk.save({"x": base})
        npk.drop("x", [3])
        npk.append({"x": np.arange(100, 105, dtype=np.float64)})
        expected = np.concatenate([np.delete(base, 3), np.arange(100, 105, dtype=np.float64)])
        assert npk.get_shape("x") == (14,)
        assert_same(npk.load("x"), expected)
        assert_same(np.asarray(npk.load("x", lazy=True)), expected)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)
        # a second drop + append crossing a 64-row word boundary
        npk.append({"x": np.arange(200, 260, dtype=np.float64)})
        npk.drop("x", [0, -1])
        expected = np.concatenate([expected, np.arange(200, 260, dtype=np.float64)])[1:-1]
        npk.append({"x": np.array([7.0])})
        expected = np.concatenate([expected, [7.0]])
        assert npk.get_shape("x") == expected.shape
        assert_same(npk.load("x"), expected)


# --------------------------------------------------------------------------------------------
# replace
# --------------------------------------------------------------------------------------------
REPLACE_KEYS = [
    2,
    -1,
    -10,
    [0],
    [0, 5],
    [5, 1],
    [9, 0, 4, 7],
    np.array([3, 8, 1]),
    np.array([-2, 0], dtype=np.int32),
    slice(2, 5),
    slice(0, None),
    slice(-1, None),
    slice(-4, -1),
    slice(None, None, 2),
    slice(1, 9, 3),
    slice(None, None, -1),
    slice(8, 2, -2),
    slice(0, 100),
]


@pytest.mark.parametrize("key", REPLACE_KEYS, ids=repr)
def test_replace_matches_numpy(npk, key):
    arr = random_array((10, 3), np.float64, seed=31)
    npk.save({"x": arr})
    n = len(np.arange(10)[key]) if not isinstance(key, int) else 1
    values = random_array((n, 3), np.float64, seed=32)
    npk.replace({"x": values}, key)
    expected = arr.copy()
    expected[key] = values[0] if isinstance(key, int) else values
    assert_same(npk.load("x"), expected)


def test_replace_dtype(store_path, dtype):
    arr = random_array((8, 2, 2), dtype, seed=33)
    values = random_array((3, 2, 2), dtype, seed=34)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        npk.replace({"x": values}, [6, 0, 3])
        expected = arr.copy()
        expected[[6, 0, 3]] = values
        assert_same(npk.load("x"), expected)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)
    assert (store_path / "data_x.npkd").read_bytes() == le_bytes(expected)


def test_replace_1d(npk):
    arr = np.arange(10, dtype=np.int64)
    npk.save({"x": arr})
    npk.replace({"x": np.array([100, 200], dtype=np.int64)}, [7, 2])
    npk.replace({"x": np.array([-5], dtype=np.int64)}, -1)
    expected = arr.copy()
    expected[[7, 2]] = [100, 200]
    expected[-1] = -5
    assert_same(npk.load("x"), expected)


def test_replace_single_row_broadcasts(npk):
    arr = np.zeros((6, 2), dtype=np.int32)
    npk.save({"x": arr})
    npk.replace({"x": np.array([[1, 2]], dtype=np.int32)}, [0, 3, 5])
    npk.replace({"x": np.array([[7, 8]], dtype=np.int32)}, slice(1, 3))
    expected = arr.copy()
    expected[[0, 3, 5]] = [1, 2]
    expected[1:3] = [7, 8]
    assert_same(npk.load("x"), expected)


def test_replace_non_contiguous_fortran_values(npk, make_array):
    arr = make_array((6, 4), np.float32)
    npk.save({"x": arr})
    values = np.asfortranarray(make_array((2, 4), np.float32))
    npk.replace({"x": values}, [4, 1])
    big = make_array((4, 8), np.float32)
    npk.replace({"x": big[::2, ::2]}, [0, 5])
    expected = arr.copy()
    expected[[4, 1]] = values
    expected[[0, 5]] = big[::2, ::2]
    assert_same(npk.load("x"), expected)


@pytest.mark.parametrize("key, rows", [([0, 1], 3), ([0, 1, 2], 2), (slice(0, 4), 3), (1, 2)])
def test_replace_row_count_mismatch(npk, key, rows):
    arr = np.zeros((6, 2))
    npk.save({"x": arr})
    with pytest.raises(ValueError):
        npk.replace({"x": np.ones((rows, 2))}, key)
    assert_same(npk.load("x"), arr)


@pytest.mark.parametrize("key", [6, -7, [0, 6], [-7], np.array([100])], ids=repr)
def test_replace_out_of_range(npk, key):
    arr = np.zeros((6, 2))
    npk.save({"x": arr})
    n = 1 if isinstance(key, int) else len(key)
    with pytest.raises(IndexError) as info:
        npk.replace({"x": np.ones((n, 2))}, key)
    assert isinstance(info.value, IndexOutOfRangeError)
    assert_same(npk.load("x"), arr)


@pytest.mark.parametrize("key", [(0, 1), "0", 1.0, {0, 1}, None], ids=repr)
def test_replace_bad_index_type(npk, key):
    npk.save({"x": np.zeros((4, 2))})
    with pytest.raises(
        ValueError, match=r"The indexes must be int or list or numpy\.ndarray or slice\."
    ):
        npk.replace({"x": np.ones((2, 2))}, key)


def test_replace_errors(npk):
    arr = np.zeros((4, 3), dtype=np.float32)
    npk.save({"x": arr})
    with pytest.raises(ValueError, match="arrays must be a dictionary"):
        npk.replace([np.ones((1, 3))], 0)
    with pytest.raises(ArrayNotFoundError, match="nope"):
        npk.replace({"nope": np.ones((1, 3), dtype=np.float32)}, 0)
    with pytest.raises(ValueError):
        npk.replace({"x": np.ones((1, 4), dtype=np.float32)}, 0)
    with pytest.raises(TypeError):
        npk.replace({"x": np.ones((1, 3), dtype=np.float64)}, 0)
    with pytest.raises(TypeError):
        npk.replace({"x": np.ones((1, 3), dtype=np.int32)}, 0)
    assert_same(npk.load("x"), arr)


@pytest.mark.parametrize(
    "key", [0, -1, [0, -1], [2, 1], slice(1, None), slice(None, None, -2)], ids=repr
)
def test_replace_after_drop_uses_logical_rows(store_path, key):
    arr = np.arange(20, dtype=np.int64).reshape(10, 2)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        npk.drop("x", [0, 4, 9])
        logical = np.delete(arr, [0, 4, 9], axis=0)
        n = 1 if isinstance(key, int) else len(np.arange(len(logical))[key])
        values = -np.arange(1, 2 * n + 1, dtype=np.int64).reshape(n, 2)
        npk.replace({"x": values}, key)
        logical[key] = values[0] if isinstance(key, int) else values
        assert_same(npk.load("x"), logical)
        with pytest.raises(IndexError):
            npk.replace({"x": values[:1]}, 7)  # 7 logical rows: index 7 is out of range
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), logical)


# --------------------------------------------------------------------------------------------
# drop
# --------------------------------------------------------------------------------------------
def test_drop_whole_arrays(store_path):
    with NumPack(store_path) as npk:
        npk.save({"a": np.zeros(3), "b": np.ones(2), "c": np.arange(4), "d": np.arange(2)})
        npk.drop("a")
        assert npk.get_member_list() == ["b", "c", "d"]
        npk.drop(["b", "missing", "c"])  # missing names are skipped silently
        assert npk.get_member_list() == ["d"]
        npk.drop("never-existed")
        npk.drop([])
        assert npk.get_member_list() == ["d"]
        with pytest.raises(KeyError):
            npk.load("a")
    names = sorted(p.name for p in store_path.iterdir())
    assert "data_a.npkd" not in names and "data_b.npkd" not in names and "data_c.npkd" not in names
    assert "data_d.npkd" in names
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["d"]


def test_drop_whole_array_removes_bitmap(store_path):
    with NumPack(store_path) as npk:
        npk.save({"a": np.arange(10)})
        npk.drop("a", [1, 2])
        assert (store_path / "deleted_a.npkb").exists()
        npk.drop("a")
        assert not npk.has_array("a")
        npk.save({"a": np.arange(5)})  # a new array of that name has no deleted rows
        assert_same(npk.load("a"), np.arange(5))
    assert not (store_path / "deleted_a.npkb").exists()


DROP_KEYS = [
    0,
    -1,
    5,
    [1, 3, 5],
    [5, 1, 1, -1],
    (2, 4),
    np.array([0, 9]),
    np.array([-3, 2], dtype=np.int32),
    [np.int64(4), np.int32(6)],
    slice(2, 5),
    slice(-3, None),
    slice(None, None, 2),
    slice(None, None, -3),
    slice(8, 1, -2),
    slice(5, 100),
    [],
]


@pytest.mark.parametrize("key", DROP_KEYS, ids=repr)
def test_drop_rows_matches_numpy_delete(store_path, key):
    arr = random_array((10, 2), np.float32, seed=41)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        npk.drop("x", key)
        expected = np.delete(
            arr, np.arange(10)[list(key) if isinstance(key, tuple) else key], axis=0
        )
        assert npk.get_shape("x") == expected.shape
        assert_same(npk.load("x"), expected)
        assert_same(np.asarray(npk.load("x", lazy=True)), expected)
        assert npk.get_metadata()["arrays"]["x"]["shape"] == list(expected.shape)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)


def test_drop_rows_bool_mask(npk):
    arr = np.arange(16, dtype=np.int16).reshape(8, 2)
    npk.save({"x": arr})
    mask = np.array([True, False, False, True, True, False, False, True])
    npk.drop("x", mask)
    assert_same(npk.load("x"), arr[~mask])
    # second mask is over the logical rows
    mask2 = np.array([False, True, False, False])
    npk.drop("x", mask2)
    assert_same(npk.load("x"), arr[~mask][~mask2])
    with pytest.raises(ValueError):
        npk.drop("x", np.array([True, False]))
    assert_same(npk.load("x"), arr[~mask][~mask2])


def test_drop_rows_several_arrays(npk):
    npk.save({"a": np.arange(5), "b": np.arange(10, 16)})
    npk.drop(["a", "b"], [0, -1])
    assert_same(npk.load("a"), np.arange(1, 4))
    assert_same(npk.load("b"), np.arange(11, 15))


def test_successive_drops_use_logical_indices(store_path):
    arr = np.arange(10, dtype=np.int64)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        logical = arr
        for key in (-1, [-1, -2], 0, slice(-2, None), [1], np.array([0, -1])):
            npk.drop("x", key)
            logical = np.delete(logical, np.arange(len(logical))[key])
            assert_same(npk.load("x"), logical)
            assert npk.get_shape("x") == logical.shape
        assert_same(logical, np.array([3], dtype=np.int64))
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), logical)


@pytest.mark.parametrize("key", [10, -11, [0, 10], np.array([3, -11])], ids=repr)
def test_drop_rows_out_of_range(npk, key):
    arr = np.arange(10)
    npk.save({"x": arr})
    with pytest.raises(IndexError) as info:
        npk.drop("x", key)
    assert isinstance(info.value, IndexOutOfRangeError)
    assert_same(npk.load("x"), arr)


def test_drop_rows_of_missing_array(npk):
    npk.save({"x": np.arange(3)})
    with pytest.raises(ArrayNotFoundError, match="missing"):
        npk.drop("missing", [0])
    assert_same(npk.load("x"), np.arange(3))


@pytest.mark.parametrize("key", ["0", 1.5, {1, 2}, object()], ids=["str", "float", "set", "object"])
def test_drop_rows_bad_index_type(npk, key):
    npk.save({"x": np.arange(3)})
    with pytest.raises(ValueError, match="The indexes must be int"):
        npk.drop("x", key)
    assert_same(npk.load("x"), np.arange(3))


def test_drop_rows_bitmap_follows_format(store_path):
    arr = np.arange(70, dtype=np.int32)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        npk.drop("x", [0, 5, 64, 69])
    rows, deleted, active = decode_bitmap((store_path / "deleted_x.npkb").read_bytes())
    assert rows == 70 and deleted == 4
    expected = np.ones(70, dtype=bool)
    expected[[0, 5, 64, 69]] = False
    np.testing.assert_array_equal(active, expected)
    meta = read_metadata(store_path)
    assert meta["arrays"]["x"]["shape"] == [70]  # physical shape on disk
    assert (store_path / "data_x.npkd").read_bytes() == le_bytes(arr)  # data untouched


# --------------------------------------------------------------------------------------------
# update (compaction), clone, reset
# --------------------------------------------------------------------------------------------
def test_update_compacts(store_path, dtype):
    arr = random_array((9, 2), dtype, seed=51)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        lazy_before = npk.load("x", lazy=True)
        npk.drop("x", [0, 4, 8])
        expected = np.delete(arr, [0, 4, 8], axis=0)
        _ = npk.load("x", lazy=True)[:]  # a read between drop and update must not go stale
        npk.update("x")
        assert_same(npk.load("x"), expected)
        assert_same(np.asarray(npk.load("x", lazy=True)), expected)
        assert npk.get_shape("x") == expected.shape
        assert lazy_before.shape == arr.shape
    assert not (store_path / "deleted_x.npkb").exists()
    assert (store_path / "data_x.npkd").read_bytes() == le_bytes(expected)
    meta = read_metadata(store_path)
    assert meta["arrays"]["x"]["shape"] == list(expected.shape)
    assert meta["arrays"]["x"]["size_bytes"] == expected.nbytes
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)


def test_update_without_deletions_is_noop(npk):
    arr = np.arange(5.0)
    npk.save({"x": arr})
    npk.update("x")
    assert_same(npk.load("x"), arr)


def test_update_missing(npk):
    with pytest.raises(KeyError) as info:
        npk.update("missing")
    assert isinstance(info.value, ArrayNotFoundError)


def test_clone_is_independent_deep_copy(store_path, make_array):
    arr = make_array((6, 3), np.float32)
    with NumPack(store_path) as npk:
        npk.save({"src": arr})
        npk.drop("src", [1])
        npk.clone("src", "dst")
        expected = np.delete(arr, 1, axis=0)
        assert_same(npk.load("dst"), expected)
        npk.replace({"src": np.zeros((1, 3), np.float32)}, 0)
        npk.append({"src": np.ones((2, 3), np.float32)})
        npk.drop("src", [2])
        assert_same(npk.load("dst"), expected)
        npk.replace({"dst": np.full((1, 3), 5, np.float32)}, -1)
        expected[-1] = 5
        npk.drop("src")
        assert_same(npk.load("dst"), expected)
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["dst"]
        assert_same(npk.load("dst"), expected)


def test_clone_errors(npk):
    npk.save({"a": np.arange(3), "b": np.arange(4)})
    with pytest.raises(KeyError) as info:
        npk.clone("missing", "c")
    assert isinstance(info.value, ArrayNotFoundError)
    assert not npk.has_array("c")
    with pytest.raises(ValueError):
        npk.clone("a", "b")
    assert_same(npk.load("b"), np.arange(4))


def test_reset(store_path):
    with NumPack(store_path) as npk:
        npk.save({"a": np.arange(10), "b": np.ones((2, 2))})
        npk.drop("a", [0, 1])
        npk.reset()
        assert npk.get_member_list() == []
        assert len(npk) == 0
        assert not npk.has_array("a")
        assert [p.name for p in store_path.iterdir() if p.suffix in (".npkd", ".npkb")] == []
        npk.save({"a": np.arange(4)})
        assert_same(npk.load("a"), np.arange(4))
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["a"]
        assert_same(npk.load("a"), np.arange(4))


# --------------------------------------------------------------------------------------------
# getitem
# --------------------------------------------------------------------------------------------
GETITEM_KEYS = [
    0,
    5,
    -1,
    -9,
    [0],
    [3, 1, 3, -1],
    np.array([8, 0, 2]),
    np.array([-1, -2], dtype=np.int32),
    [],
    slice(None),
    slice(2, 6),
    slice(-3, None),
    slice(None, None, 3),
    slice(None, None, -1),
    slice(7, 1, -2),
    slice(5, 100),
    slice(100, 200),
    slice(6, 2),
]


def getitem_expected(arr, key):
    if isinstance(key, int):
        return arr[[key]]
    if isinstance(key, list):
        return arr[np.array(key, dtype=np.intp)]
    return arr[key]


@pytest.mark.parametrize("key", GETITEM_KEYS, ids=repr)
def test_getitem_matches_numpy(npk, key):
    arr = random_array((9, 2, 2), np.int32, seed=61)
    npk.save({"x": arr})
    assert_same(npk.getitem("x", key), getitem_expected(arr, key))


@pytest.mark.parametrize("key", GETITEM_KEYS, ids=repr)
def test_getitem_after_drop_uses_logical_rows(npk, key):
    arr = random_array((13,), np.float16, seed=62)
    npk.save({"x": arr})
    npk.drop("x", [0, 6, 12, 3])
    logical = np.delete(arr, [0, 6, 12, 3])
    assert_same(npk.getitem("x", key), getitem_expected(logical, key))


def test_getitem_dtype(npk, dtype):
    arr = random_array((6, 3), dtype, seed=63)
    npk.save({"x": arr})
    assert_same(npk.getitem("x", 2), arr[2:3])
    assert_same(npk.getitem("x", [5, 0]), arr[[5, 0]])
    assert_same(npk.getitem("x", slice(1, 4)), arr[1:4])


@pytest.mark.parametrize("key", [9, -10, [0, 9], np.array([-10])], ids=repr)
def test_getitem_out_of_range(npk, key):
    npk.save({"x": np.arange(9)})
    with pytest.raises(IndexError) as info:
        npk.getitem("x", key)
    assert isinstance(info.value, IndexOutOfRangeError)


def test_getitem_missing(npk):
    with pytest.raises(KeyError) as info:
        npk.getitem("missing", [0])
    assert isinstance(info.value, ArrayNotFoundError)


# --------------------------------------------------------------------------------------------
# stream_load
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("buffer_size", [None, 1, 3, 4, 100])
def test_stream_load_batches(npk, buffer_size):
    arr = random_array((10, 2), np.float16, seed=71)
    npk.save({"x": arr})
    batches = list(npk.stream_load("x", buffer_size))
    size = 1 if buffer_size is None else buffer_size
    assert len(batches) == -(-10 // size)
    for i, batch in enumerate(batches):
        assert_same(batch, arr[i * size : (i + 1) * size])


def test_stream_load_default_and_1d(npk, dtype):
    arr = random_array((5,), dtype, seed=72)
    npk.save({"x": arr})
    batches = list(npk.stream_load("x"))
    assert len(batches) == 5
    for i, batch in enumerate(batches):
        assert_same(batch, arr[i : i + 1])


def test_stream_load_after_drop(npk):
    arr = np.arange(30, dtype=np.uint32).reshape(10, 3)
    npk.save({"x": arr})
    npk.drop("x", [0, 3, 4, 9])
    logical = np.delete(arr, [0, 3, 4, 9], axis=0)
    batches = list(npk.stream_load("x", buffer_size=4))
    assert [b.shape for b in batches] == [(4, 3), (2, 3)]
    assert_same(np.concatenate(batches), logical)


def test_stream_load_keeps_working_after_close(store_path):
    arr = np.arange(40, dtype=np.int32).reshape(10, 4)
    npk = NumPack(store_path)
    npk.open()
    npk.save({"x": arr})
    npk.drop("x", [2])
    stream = npk.stream_load("x", 3)
    first = next(stream)
    npk.close()
    rest = list(stream)
    assert_same(np.concatenate([first, *rest]), np.delete(arr, 2, axis=0))


@pytest.mark.parametrize("buffer_size", [0, -1, -100])
def test_stream_load_non_positive_buffer(npk, buffer_size):
    npk.save({"x": np.arange(3)})
    with pytest.raises(ValueError):
        list(npk.stream_load("x", buffer_size))


def test_stream_load_missing_raises_at_call(npk):
    with pytest.raises(ArrayNotFoundError):
        npk.stream_load("missing")  # no iteration needed


# --------------------------------------------------------------------------------------------
# queries: shape, members, time, metadata, io stats, len/in/iter
# --------------------------------------------------------------------------------------------
def test_queries(npk):
    npk.save({"zeta": np.zeros((3, 2)), "alpha": np.arange(4), "mid": np.array(True)})
    assert npk.get_member_list() == ["alpha", "mid", "zeta"]
    assert len(npk) == 3
    assert "alpha" in npk and "nope" not in npk
    assert sorted(iter(npk)) == ["alpha", "mid", "zeta"]
    assert npk.has_array("zeta") is True and npk.has_array("nope") is False
    assert npk.get_shape("zeta") == (3, 2) and isinstance(npk.get_shape("zeta"), tuple)
    assert npk.get_shape("mid") == ()
    with pytest.raises(KeyError) as info:
        npk.get_shape("nope")
    assert isinstance(info.value, ArrayNotFoundError)


def test_get_modify_time(npk):
    before = time.time() * 1e6
    npk.save({"x": np.zeros(3)})
    after = time.time() * 1e6
    t = npk.get_modify_time("x")
    assert isinstance(t, int)
    assert before - 2e6 <= t <= after + 2e6
    assert npk.get_modify_time("missing") is None
    time.sleep(0.002)
    npk.save({"x": np.ones(3)})
    assert npk.get_modify_time("x") > t


def test_get_metadata(npk, dtypes):
    arrays = {f"a{i}": random_array((3, i + 1), dt, seed=i) for i, dt in enumerate(dtypes)}
    npk.save(arrays)
    npk.drop("a0", [1])
    meta = npk.get_metadata()
    assert set(meta["arrays"]) == set(arrays)
    for name, arr in arrays.items():
        info = meta["arrays"][name]
        expected_shape = [2, 1] if name == "a0" else list(arr.shape)
        assert info["shape"] == expected_shape
        assert info["dtype"] == DTYPE_STRINGS[arr.dtype.name]
        assert isinstance(info["data_file"], str) and info["data_file"].endswith(
            f"data_{name}.npkd"
        )
        assert isinstance(info["last_modified"], int) and info["last_modified"] > 0
        assert isinstance(info["size_bytes"], int)
        if name != "a0":
            assert info["size_bytes"] == arr.nbytes
    assert meta["total_size"] == sum(info["size_bytes"] for info in meta["arrays"].values())


def test_get_metadata_of_empty_store(npk):
    meta = npk.get_metadata()
    assert meta["arrays"] == {} and meta["total_size"] == 0
    assert npk.get_member_list() == [] and len(npk) == 0 and list(npk) == []


def test_many_arrays(store_path):
    arrays = {f"arr_{i:03d}": np.full((i % 5 + 1, 2), i, dtype=np.int16) for i in range(300)}
    with NumPack(store_path) as npk:
        npk.save(arrays)
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == sorted(arrays)
        for name in ("arr_000", "arr_123", "arr_299"):
            assert_same(npk.load(name), arrays[name])


def test_large_array(store_path):
    arr = np.arange(6_000_000, dtype=np.float32).reshape(1_500_000, 4)
    with NumPack(store_path) as npk:
        npk.save({"big": arr})
        idx = np.random.default_rng(0).integers(-len(arr), len(arr), 1000)
        assert_same(npk.getitem("big", idx), arr[idx])
        npk.drop("big", np.arange(0, len(arr), 3))
        logical = np.delete(arr, np.arange(0, len(arr), 3), axis=0)
        lazy = npk.load("big", lazy=True)
        assert lazy.shape == logical.shape
        assert_same(lazy[idx // 2], logical[idx // 2])
        assert_same(npk.load("big"), logical)
        npk.append({"big": arr[:10]})
        npk.update("big")
    with NumPack(store_path) as npk:
        assert_same(npk.load("big"), np.concatenate([logical, arr[:10]]))


def test_stream_load_float_buffer_is_type_error(npk):
    npk.save({"x": np.arange(6)})
    with pytest.raises(TypeError):
        list(npk.stream_load("x", 2.5))


def test_get_io_stats(store_path):
    npk = NumPack(store_path)
    assert isinstance(npk.get_io_stats(), dict)
    with npk:
        npk.save({"x": np.zeros(2)})
        assert isinstance(npk.get_io_stats(), dict)


# --------------------------------------------------------------------------------------------
# lifecycle: open/close, context manager, strict mode, drop_if_exists, repr, warnings
# --------------------------------------------------------------------------------------------
def test_constructor_touches_nothing(store_path):
    npk = NumPack(store_path)
    assert not store_path.exists()
    assert npk.is_closed and not npk.is_opened
    npk.open()
    assert store_path.is_dir()
    assert npk.is_opened and not npk.is_closed
    npk.open()  # idempotent
    npk.save({"x": np.arange(3)})
    npk.close()
    npk.close()  # idempotent
    assert npk.is_closed and not npk.is_opened
    npk.open()  # reopen after close
    assert_same(npk.load("x"), np.arange(3))
    npk.close()


def test_nested_parent_directories_created(tmp_path):
    path = tmp_path / "a" / "b" / "c.npk"
    with NumPack(path) as npk:
        npk.save({"x": np.arange(2)})
    assert path.is_dir()


def test_is_opened_is_read_only(store_path):
    npk = NumPack(store_path)
    with pytest.raises(AttributeError):
        npk.is_opened = True
    with pytest.raises(AttributeError):
        npk.is_closed = False


@pytest.mark.parametrize(
    "call",
    [
        lambda n: n.save({"x": np.zeros(2)}),
        lambda n: n.load("x"),
        lambda n: n.load("x", lazy=True),
        lambda n: n["x"],
        lambda n: n.append({"x": np.zeros(2)}),
        lambda n: n.replace({"x": np.zeros(1)}, 0),
        lambda n: n.drop("x"),
        lambda n: n.drop("x", [0]),
        lambda n: n.getitem("x", [0]),
        lambda n: n.stream_load("x"),
        lambda n: n.get_shape("x"),
        lambda n: n.get_member_list(),
        lambda n: n.get_modify_time("x"),
        lambda n: n.get_metadata(),
        lambda n: n.has_array("x"),
        lambda n: n.update("x"),
        lambda n: n.clone("x", "y"),
        lambda n: n.reset(),
    ],
    ids=[
        "save",
        "load",
        "load_lazy",
        "getitem_dunder",
        "append",
        "replace",
        "drop",
        "drop_rows",
        "getitem",
        "stream_load",
        "get_shape",
        "get_member_list",
        "get_modify_time",
        "get_metadata",
        "has_array",
        "update",
        "clone",
        "reset",
    ],
)
def test_methods_need_open_store(store_path, call):
    npk = NumPack(store_path)
    with pytest.raises(RuntimeError, match=NOT_OPEN):
        call(npk)
    with npk:
        npk.save({"x": np.arange(3.0)})
    with pytest.raises(RuntimeError, match=NOT_OPEN):
        call(npk)
    with NumPack(store_path) as other:  # the failed calls changed nothing
        assert other.get_member_list() == ["x"]
        assert_same(other.load("x"), np.arange(3.0))


def test_context_manager_closes_on_exception(store_path):
    npk = NumPack(store_path)
    with pytest.raises(ZeroDivisionError):
        with npk as entered:
            assert entered is npk
            npk.save({"x": np.arange(4)})
            raise ZeroDivisionError
    assert npk.is_closed
    with npk:  # a closed instance can be entered again
        assert_same(npk.load("x"), np.arange(4))
    assert npk.is_closed


def test_strict_context_mode(store_path):
    npk = NumPack(store_path, strict_context_mode=True)
    npk.open()
    with pytest.raises(RuntimeError, match="strict context mode"):
        npk.save({"x": np.zeros(2)})
    npk.close()
    with npk:
        npk.save({"x": np.zeros(2)})
        assert_same(npk.load("x"), np.zeros(2))
    npk.open()
    with pytest.raises(RuntimeError, match="strict context mode"):
        npk.load("x")
    npk.close()


def test_drop_if_exists_only_on_first_open(store_path):
    with NumPack(store_path) as npk:
        npk.save({"old": np.arange(3)})
    npk = NumPack(store_path, drop_if_exists=True)
    with npk:
        assert npk.get_member_list() == []
        npk.save({"new": np.arange(2)})
    with npk:  # the second open must not wipe again
        assert npk.get_member_list() == ["new"]


def test_drop_if_exists_on_regular_file(store_path):
    store_path.write_bytes(b"not a store")
    with NumPack(store_path, drop_if_exists=True) as npk:
        npk.save({"x": np.arange(2)})
    assert store_path.is_dir()


def test_open_on_regular_file_is_os_error(store_path):
    store_path.write_bytes(b"not a store")
    npk = NumPack(store_path)
    with pytest.raises(OSError, match=str(store_path.name)):
        npk.open()
    assert store_path.read_bytes() == b"not a store"


def test_open_below_regular_file_is_os_error(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    npk = NumPack(tmp_path / "file" / "store.npk")
    with pytest.raises(OSError, match="file"):
        npk.open()


class _PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return str(self.path)


@pytest.mark.parametrize("kind", [str, pathlib.Path, _PathLike])
def test_path_types(store_path, kind):
    with NumPack(kind(store_path)) as npk:
        npk.save({"x": np.arange(3)})
    with NumPack(str(store_path)) as npk:
        assert_same(npk.load("x"), np.arange(3))


def test_repr(store_path):
    npk = NumPack(store_path)
    assert "closed" in repr(npk)
    with npk:
        npk.save({"a": np.zeros(1), "b": np.zeros(1)})
        assert repr(npk) == f"NumPack({store_path}, arrays=2)"
    assert "closed" in repr(npk)


def test_warn_no_context(store_path):
    with pytest.warns(UserWarning):
        NumPack(store_path, warn_no_context=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NumPack(store_path, warn_no_context=False)
        if sys.platform != "win32":
            NumPack(store_path)


def test_force_gc_on_close(store_path):
    calls = []

    def callback(phase, info):
        calls.append(phase)

    gc.callbacks.append(callback)
    try:
        npk = NumPack(store_path, force_gc_on_close=True)
        npk.open()
        calls.clear()
        npk.close()
        assert "start" in calls
    finally:
        gc.callbacks.remove(callback)


def test_second_instance_sees_closed_changes(store_path):
    with NumPack(store_path) as first:
        first.save({"a": np.arange(3)})
    with NumPack(store_path) as a, NumPack(store_path) as b:
        a.save({"from_a": np.arange(4)})
        b.save({"from_b": np.arange(5)})
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["a", "from_a", "from_b"]
        assert_same(npk.load("from_a"), np.arange(4))
        assert_same(npk.load("from_b"), np.arange(5))


def test_process_killed_without_close_leaves_consistent_store(store_path):
    original = np.arange(12, dtype=np.int64).reshape(6, 2)
    with NumPack(store_path) as npk:
        npk.save({"a": original})
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        from numpack import NumPack
        npk = NumPack({str(store_path)!r})
        npk.open()
        npk.save({{"b": np.arange(7, dtype=np.float32)}})
        npk.append({{"a": np.full((3, 2), -1, dtype=np.int64)}})
        npk.drop("a", [0])
        os._exit(0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with NumPack(store_path) as npk:
        a = npk.load("a")
        allowed = [
            original,
            np.concatenate([original, np.full((3, 2), -1)]),
            np.concatenate([original, np.full((3, 2), -1)])[1:],
        ]
        assert a.dtype == np.int64
        assert any(a.shape == x.shape and np.array_equal(a, x) for x in allowed), a
        if npk.has_array("b"):
            assert_same(npk.load("b"), np.arange(7, dtype=np.float32))


@pytest.mark.timeout(120)
def test_sigkill_during_writes_leaves_consistent_store(store_path):
    """FORMAT.md: every mutating call is all-or-nothing under a crash at any instant."""
    with NumPack(store_path) as npk:
        npk.save({"log": np.zeros((0, 2), dtype=np.int64)})
    code = textwrap.dedent(
        f"""
        import numpy as np, sys
        from numpack import NumPack
        npk = NumPack({str(store_path)!r})
        npk.open()
        i = 0
        while True:
            npk.append({{"log": np.array([[i, i * 7]], dtype=np.int64)}})
            npk.save({{f"s{{i % 5}}": np.full((2000,), i, dtype=np.int64)}})
            if i == 20:
                print("running", flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
    with NumPack(store_path) as npk:
        log = npk.load("log")
        n = len(log)
        assert n >= 21
        assert_same(log, np.stack([np.arange(n), np.arange(n) * 7], axis=1).astype(np.int64))
        for name in npk.get_member_list():
            if name != "log":
                arr = npk.load(name)
                assert arr.shape == (2000,) and arr.dtype == np.int64
                assert (arr == arr[0]).all() and int(arr[0]) % 5 == int(name[1:])
        npk.append({"log": np.array([[-1, -1]], dtype=np.int64)})  # the store is writable again
        assert npk.get_shape("log") == (n + 1, 2)


# --------------------------------------------------------------------------------------------
# hostile names
# --------------------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "../x",
    "../../escape",
    "/../../../escape2",
    "a/b",
    "a_b",
    "a%2Fb",
    "a%2fb",
    "a\\b",
    "a:b",
    "/abs",
    "/tmp/abs2",
    ".",
    "..",
    ".hidden",
    "x" * 1000,
    "x" * 999 + "y",
    "é" * 1000,
    "データ",
    "emoji 🎉",
    "with space",
    "tab\tnewline\n",
    "metadata.npkm",
    "data_x.npkd",
    "A",
    "a",
    "*?<>|\"'",
    "-",
]


def all_files(root):
    return {p for p in pathlib.Path(root).rglob("*")}


def test_hostile_names_round_trip_and_stay_inside(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    path = root / "store.npk"
    before = all_files(tmp_path)
    arrays = {name: np.full((3, 2), i, dtype=np.int32) for i, name in enumerate(HOSTILE_NAMES)}
    with NumPack(path) as npk:
        npk.save(arrays)
        assert npk.get_member_list() == sorted(HOSTILE_NAMES)
        for name, arr in arrays.items():
            assert_same(npk.load(name), arr)
            assert_same(np.asarray(npk.load(name, lazy=True)), arr)
            assert name in npk
        npk.append({"../x": np.full((1, 2), 50, dtype=np.int32)})
        npk.drop("a/b", [0])
        npk.update("a/b")
        npk.drop("/abs", [1])
        npk.clone("x" * 1000, "x" * 1000 + "z")
    arrays["../x"] = np.concatenate([arrays["../x"], np.full((1, 2), 50, dtype=np.int32)])
    arrays["a/b"] = arrays["a/b"][1:]
    arrays["/abs"] = arrays["/abs"][[0, 2]]
    arrays["x" * 1000 + "z"] = arrays["x" * 1000]
    with NumPack(path) as npk:
        assert npk.get_member_list() == sorted(arrays)
        for name, arr in arrays.items():
            assert_same(npk.load(name), arr)
        assert npk.get_shape("/abs") == (2, 2)
    new = all_files(tmp_path) - before
    outside = [p for p in new if path not in p.parents and p != path]
    assert outside == []
    assert [p for p in path.iterdir() if not p.is_file()] == []  # everything directly inside
    with NumPack(path) as npk:
        npk.drop(list(arrays))
        assert npk.get_member_list() == []
    leftover = [p.name for p in path.iterdir() if p.name.endswith((".npkd", ".npkb"))]
    assert leftover == []


def test_simple_names_use_published_file_names(store_path):
    with NumPack(store_path) as npk:
        npk.save({"emb_1.v-2": np.arange(4, dtype=np.int8)})
        npk.drop("emb_1.v-2", [0])
    assert (store_path / "data_emb_1.v-2.npkd").is_file()
    assert (store_path / "deleted_emb_1.v-2.npkb").is_file()
    meta = read_metadata(store_path)
    assert meta["arrays"]["emb_1.v-2"]["data_file"] == "data_emb_1.v-2.npkd"


# --------------------------------------------------------------------------------------------
# on-disk format (FORMAT.md) in both directions
# --------------------------------------------------------------------------------------------
def test_metadata_follows_format(store_path, dtypes):
    arrays = {f"arr{i}": random_array((2, 3), dt, seed=i) for i, dt in enumerate(dtypes)}
    arrays["scalar"] = np.array(3, dtype=np.int16)
    with NumPack(store_path) as npk:
        npk.save(arrays)
    meta = read_metadata(store_path)
    assert meta["magic"] == MAGIC and meta["version"] == 1
    assert set(meta["arrays"]) == set(arrays)
    assert meta["total_size"] == sum(a.nbytes for a in arrays.values())
    codes = {d.name: i for i, d in enumerate(DTYPES)}
    for name, arr in arrays.items():
        rec = meta["arrays"][name]
        assert rec["shape"] == list(arr.shape)
        assert rec["dtype_code"] == codes[arr.dtype.name]
        assert rec["size_bytes"] == arr.nbytes
        assert rec["data_file"] == f"data_{name}.npkd"
        assert rec["compression"] == 0 and rec["block_flag"] == 0
        assert abs(rec["last_modified"] - time.time() * 1e6) < 600e6
        assert (store_path / rec["data_file"]).read_bytes() == le_bytes(arr)


def test_metadata_replaced_atomically_and_no_temp_files_left(store_path):
    with NumPack(store_path) as npk:
        npk.save({"a": np.arange(3)})
    meta = store_path / "metadata.npkm"
    inode = os.stat(meta).st_ino
    with NumPack(store_path) as npk:
        npk.save({"b": np.arange(4)})
        npk.drop("a", [0])
    assert os.stat(meta).st_ino != inode  # written as a temporary file renamed over the old one
    assert set(read_metadata(store_path)["arrays"]) == {"a", "b"}
    for p in store_path.iterdir():
        assert ".tmp" not in p.name, p.name
        known = p.name == "metadata.npkm" or (
            p.name.startswith(("data_", "deleted_")) and p.suffix in (".npkd", ".npkb")
        )
        assert known or p.name.startswith(".numpack"), p.name


def test_reads_store_written_per_format(store_path):
    """A store laid out by hand as the published package writes it (incl. a bitmap, a
    0-d array and a foreign extra file) is read correctly."""
    store_path.mkdir()
    a = np.arange(24, dtype=np.float32).reshape(8, 3)
    b = np.array([True, False, True])
    c = np.array(7.5, dtype=np.float64)
    d = (np.arange(5) + 1j * np.arange(5)).astype(np.complex128)
    (store_path / "data_a.npkd").write_bytes(le_bytes(a))
    (store_path / "data_b.npkd").write_bytes(le_bytes(b))
    (store_path / "data_c.npkd").write_bytes(le_bytes(c))
    (store_path / "data_d.npkd").write_bytes(le_bytes(d))
    active = np.ones(8, dtype=bool)
    active[[1, 6]] = False
    (store_path / "deleted_a.npkb").write_bytes(encode_bitmap(active))
    (store_path / "notes.txt").write_bytes(b"not part of the store")
    records = [
        encode_record("a", a.shape, "data_a.npkd", a.nbytes, 10),
        encode_record("b", b.shape, "data_b.npkd", b.nbytes, 0),
        encode_record("c", c.shape, "data_c.npkd", c.nbytes, 11),
        encode_record("d", d.shape, "data_d.npkd", d.nbytes, 13),
    ]
    write_metadata(store_path, records, a.nbytes + b.nbytes + c.nbytes + d.nbytes)
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["a", "b", "c", "d"]
        assert npk.get_shape("a") == (6, 3)
        assert_same(npk.load("a"), a[active])
        assert_same(npk.getitem("a", [1]), a[active][[1]])
        assert_same(np.asarray(npk.load("a", lazy=True)), a[active])
        assert_same(npk.load("b"), b)
        assert_same(npk.load("c"), c)
        assert_same(npk.load("d"), d)
        npk.append({"a": np.full((2, 3), 9, dtype=np.float32)})
        expected_a = np.concatenate([a[active], np.full((2, 3), 9, dtype=np.float32)])
        assert_same(npk.load("a"), expected_a)
    with NumPack(store_path) as npk:
        assert_same(npk.load("a"), expected_a)
        assert_same(npk.load("d"), d)


def test_uncompressed_record_with_block_section_is_read(store_path):
    """FORMAT.md: a reader parses the optional block section to skip it; here it describes no
    blocks and the data is uncompressed, so the arrays read normally."""
    store_path.mkdir()
    a = np.arange(6, dtype=np.int16)
    b = np.arange(4, dtype=np.float64)
    (store_path / "data_a.npkd").write_bytes(le_bytes(a))
    (store_path / "data_b.npkd").write_bytes(le_bytes(b))
    block = struct.pack("<BQQI", 0, 0, 0, 0)
    records = [
        encode_record("a", a.shape, "data_a.npkd", a.nbytes, 6, block_section=block),
        encode_record("b", b.shape, "data_b.npkd", b.nbytes, 11),
    ]
    write_metadata(store_path, records, a.nbytes + b.nbytes)
    with NumPack(store_path) as npk:
        assert npk.get_member_list() == ["a", "b"]
        assert_same(npk.load("a"), a)
        assert_same(npk.load("b"), b)


def test_bitmap_shorter_than_data_marks_extra_rows_active(store_path):
    """FORMAT.md: rows appended after a deletion are active even before the bitmap is rewritten."""
    store_path.mkdir()
    a = np.arange(10, dtype=np.int64)
    (store_path / "data_a.npkd").write_bytes(le_bytes(a))
    active = np.ones(8, dtype=bool)
    active[2] = False
    (store_path / "deleted_a.npkb").write_bytes(encode_bitmap(active))
    write_metadata(store_path, [encode_record("a", a.shape, "data_a.npkd", a.nbytes, 8)], a.nbytes)
    expected = np.delete(a, 2)
    with NumPack(store_path) as npk:
        assert npk.get_shape("a") == (9,)
        assert_same(npk.load("a"), expected)
        assert_same(np.asarray(npk.load("a", lazy=True)), expected)
        npk.drop("a", [-1])
        assert_same(npk.load("a"), expected[:-1])
    with NumPack(store_path) as npk:
        assert_same(npk.load("a"), expected[:-1])


def test_compressed_record_is_rejected_clearly(store_path):
    store_path.mkdir()
    (store_path / "data_z.npkd").write_bytes(b"\x28\xb5\x2f\xfd garbage")
    (store_path / "data_ok.npkd").write_bytes(le_bytes(np.arange(3, dtype=np.int32)))
    rec = encode_record("z", (4,), "data_z.npkd", 32, 11)
    # compression algorithm byte sits 8+8+1 bytes after the data file name
    fixed = len(rec) - 39
    rec = rec[: fixed + 17] + b"\x01" + rec[fixed + 18 :]
    ok = encode_record("ok", (3,), "data_ok.npkd", 12, 7)
    write_metadata(store_path, [rec, ok], 44)
    npk = NumPack(store_path)
    with pytest.raises(ValueError) as info:
        npk.open()
        npk.load("z")
    assert "z" in str(info.value)
    npk.close()


@pytest.mark.parametrize(
    "data_file", ["../outside.npkd", "/tmp/../{outside}", "sub/../../outside.npkd"]
)
def test_data_file_outside_store_is_refused(tmp_path, data_file):
    store = tmp_path / "store.npk"
    store.mkdir()
    outside = tmp_path / "outside.npkd"
    secret = np.arange(4, dtype=np.int64)
    outside.write_bytes(le_bytes(secret))
    data_file = data_file.format(outside=outside)
    write_metadata(store, [encode_record("x", (4,), data_file, 32, 8)], 32)
    npk = NumPack(store)
    with pytest.raises(ValueError):
        npk.open()
        npk.load("x")
    try:
        if npk.is_opened:
            npk.drop("x")
    except ValueError:
        pass
    npk.close()
    assert outside.read_bytes() == le_bytes(secret)  # never read as an array, never deleted


def test_size_bytes_disagreeing_with_shape_is_corrupt(store_path):
    store_path.mkdir()
    a = np.arange(6, dtype=np.float32)
    (store_path / "data_a.npkd").write_bytes(le_bytes(a) + b"\x00" * 8)
    write_metadata(
        store_path, [encode_record("a", a.shape, "data_a.npkd", a.nbytes + 8, 10)], a.nbytes + 8
    )
    with pytest.raises(CorruptStoreError):
        _open_and_read(store_path)


def test_data_file_longer_than_metadata_is_ignored_then_truncated(store_path):
    arr = np.arange(10, dtype=np.int32)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
    with open(store_path / "data_x.npkd", "ab") as f:
        f.write(b"\xff" * 12)  # an append whose metadata update never happened
    with NumPack(store_path) as npk:
        assert npk.get_shape("x") == (10,)
        assert_same(npk.load("x"), arr)
        assert_same(np.asarray(npk.load("x", lazy=True)), arr)
        npk.append({"x": np.array([-1, -2], dtype=np.int32)})
        expected = np.concatenate([arr, [-1, -2]]).astype(np.int32)
        assert_same(npk.load("x"), expected)
    with NumPack(store_path) as npk:
        assert_same(npk.load("x"), expected)


# --------------------------------------------------------------------------------------------
# corrupt stores
# --------------------------------------------------------------------------------------------
def _open_and_read(path):
    npk = NumPack(path)
    try:
        npk.open()
        names = npk.get_member_list()
        for name in names:
            npk.load(name)
        return names
    finally:
        try:
            npk.close()
        except Exception:
            pass


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"XXXX" + raw[4:],
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:10],
        lambda raw: raw[:-1],
        lambda raw: raw[:4] + struct.pack("<I", 99) + raw[8:],
        lambda raw: raw[:16] + struct.pack("<I", 1000) + raw[20:],
        lambda raw: raw[:20] + struct.pack("<I", 0xFFFFFFF0) + raw[24:],
    ],
    ids=[
        "bad_magic",
        "half",
        "header_cut",
        "last_byte_cut",
        "bad_version",
        "count_too_big",
        "huge_name_len",
    ],
)
def test_corrupt_metadata(store_path, damage):
    with NumPack(store_path) as npk:
        npk.save({"a": np.arange(5), "b": np.ones((2, 2))})
    meta_file = store_path / "metadata.npkm"
    meta_file.write_bytes(damage(meta_file.read_bytes()))
    damaged = meta_file.read_bytes()
    with pytest.raises(CorruptStoreError, match=r"metadata\.npkm"):
        _open_and_read(store_path)
    assert meta_file.read_bytes() == damaged  # never silently replaced by an empty store


def test_empty_metadata_file_is_corrupt(store_path):
    with NumPack(store_path) as npk:
        npk.save({"a": np.arange(5)})
    (store_path / "metadata.npkm").write_bytes(b"")
    with pytest.raises(CorruptStoreError, match=r"metadata\.npkm"):
        _open_and_read(store_path)


def test_truncated_data_file(store_path):
    arr = np.arange(40, dtype=np.float64).reshape(10, 4)
    with NumPack(store_path) as npk:
        npk.save({"x": arr, "ok": np.arange(3)})
    data = store_path / "data_x.npkd"
    data.write_bytes(data.read_bytes()[:100])
    with NumPack(store_path) as npk:
        with pytest.raises(CorruptStoreError, match=r"data_x\.npkd"):
            npk.load("x")
        assert_same(npk.load("ok"), np.arange(3))


def test_truncated_data_file_lazy_and_getitem(store_path):
    arr = np.arange(40, dtype=np.float64).reshape(10, 4)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
    data = store_path / "data_x.npkd"
    data.write_bytes(data.read_bytes()[:100])
    with NumPack(store_path) as npk:
        with pytest.raises(CorruptStoreError):
            npk.getitem("x", [9])
        with pytest.raises(CorruptStoreError):
            np.asarray(npk.load("x", lazy=True))
        with pytest.raises(CorruptStoreError):
            list(npk.stream_load("x", 3))


def test_missing_data_file(store_path):
    with NumPack(store_path) as npk:
        npk.save({"x": np.arange(10.0)})
    (store_path / "data_x.npkd").unlink()
    with NumPack(store_path) as npk:
        with pytest.raises((CorruptStoreError, OSError)):
            npk.load("x")


def test_unknown_dtype_code(store_path):
    store_path.mkdir()
    (store_path / "data_weird.npkd").write_bytes(b"\x00" * 8)
    # Codes 14-16 are numpack's bfloat16 / float8 types; 17 is unknown.
    write_metadata(store_path, [encode_record("weird", (4,), "data_weird.npkd", 8, 17)], 8)
    with pytest.raises(ValueError) as info:
        _open_and_read(store_path)
    assert "17" in str(info.value) and "weird" in str(info.value)


def test_corrupt_bitmap(store_path):
    with NumPack(store_path) as npk:
        npk.save({"x": np.arange(100)})
        npk.drop("x", [5])
    (store_path / "deleted_x.npkb").write_bytes(b"\x01\x02")
    with pytest.raises(CorruptStoreError, match=r"deleted_x\.npkb"):
        _open_and_read(store_path)


@pytest.mark.parametrize("how", ["list", "slice", "twice", "zero-width", "history"])
def test_dropping_the_last_rows_removes_the_array(tmp_path, how):
    """As the published 0.6: a row drop that leaves no row removes the array (record, data
    file, bitmap) in the same commit; an array saved with 0 rows stays."""
    path = tmp_path / "s.npk"
    width = 0 if how == "zero-width" else 3
    with NumPack(path) as npk:
        if how == "history":
            npk.set_history(5)
        npk.save({"a": np.ones((4, width), np.float32), "keep": np.zeros(2), "empty": np.zeros(0)})
        v = npk.version
        if how == "twice":
            npk.drop("a", [0, 1])
            assert npk.has_array("a")
            npk.drop("a", [0, -1])
        elif how == "slice":
            npk.drop("a", slice(None))
        else:
            npk.drop("a", [0, 1, 2, 3])
        assert not npk.has_array("a") and "a" not in npk.get_member_list()
        with pytest.raises(ArrayNotFoundError):
            npk.append({"a": np.ones((1, width), np.float32)})
        npk.drop("empty", [])  # nothing dropped: an empty array stays
        assert npk.has_array("empty") and npk.has_array("keep")
        if how == "history":
            assert npk.snapshot(v).get_shape("a") == (4, width)
    left = [p.name for p in path.iterdir() if not p.name.startswith(".numpack")]
    assert not any(n.endswith(("_a.npkd", "_a.npkb")) for n in left), left
    with NumPack(path) as npk:
        assert sorted(npk.get_member_list()) == ["empty", "keep"]
