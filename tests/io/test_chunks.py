"""numpack.io._chunks: all-or-nothing imports, atomic outputs, error naming."""

from __future__ import annotations

import os

import numpy as np
import pytest

import numpack
from numpack.io._chunks import Import, atomic_output, chunk_rows, is_storable, naming


def test_import_is_all_or_nothing(store, h):
    before = h.store_state(store)
    with pytest.raises(RuntimeError, match="boom"), Import(store) as imp:
        imp.save("a", np.arange(5))
        imp.array("b", np.float32, (2,)).write(np.zeros((3, 2), np.float32))
        raise RuntimeError("boom")
    assert h.store_state(store) == before


def test_import_chunked_save_and_drop(store, load, h):
    a = np.asfortranarray(h.sample((9, 4), np.float64)).astype(">f8")
    with Import(store, drop_if_exists=True) as imp:
        imp.save("a", a, chunk_size=40)
        imp.save("z", np.array(3, np.int8), chunk_size=40)
        imp.save("e", np.zeros((0, 2)), chunk_size=40)
        imp.save("w", np.zeros((4, 0)), chunk_size=40)
    got = load(store)
    assert sorted(got) == ["a", "e", "w", "z"]
    h.assert_same(got["a"], a.astype("<f8"))
    assert got["z"].shape == () and got["w"].shape == (4, 0) and got["e"].shape == (0, 2)


def test_sink_refuses_lossy_cast_and_bad_rows(store):
    with pytest.raises(TypeError), Import(store) as imp:
        imp.array("i", np.int32, ()).write(np.array([1.5]))
    with pytest.raises(ValueError, match="rows of shape"), Import(store) as imp:
        imp.array("i", np.int32, (2,)).write(np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="Unsupported dtype"), Import(store) as imp:
        imp.array("s", np.dtype("U3"), ())
    with numpack.NumPack(store) as npk:
        assert npk.get_member_list() == ["keep"]


def test_atomic_output_keeps_target_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.bin"]
    d = tmp_path / "dir.zarr"
    d.mkdir()
    (d / "old").write_text("x")
    with atomic_output(d) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert os.listdir(d) == ["new"] and sorted(os.listdir(tmp_path)) == ["dir.zarr", "out.bin"]


def test_naming_and_helpers():
    with pytest.raises(ValueError, match=r"^f\.bin \[k\]: bad$"), naming("f.bin", "k"):
        raise ValueError("bad")
    with pytest.raises(KeyError, match=r"f\.bin: missing"), naming("f.bin"):
        raise KeyError("missing")
    with pytest.raises(FileNotFoundError) as e, naming("f.bin"):
        open("/nonexistent/x")
    assert e.value.filename == "/nonexistent/x"
    assert chunk_rows(100, 1000) == 10 and chunk_rows(5000, 1000) == 1 and chunk_rows(0, 1) > 0
    assert is_storable(">f4") and is_storable(np.bool_) and not is_storable("U2")
    assert not is_storable("datetime64[s]") and not is_storable([("a", "i4")])


def test_prefetched():
    import threading

    from numpack.io._chunks import prefetched

    assert list(prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def boom():
        yield 1
        raise OSError("disk")

    got = []
    with pytest.raises(OSError, match="disk"):
        for x in prefetched(boom()):
            got.append(x)
    assert got == [1]
    before = threading.active_count()
    for x in prefetched(iter(range(1000))):
        if x == 2:
            break
    assert threading.active_count() == before  # the producer stopped
