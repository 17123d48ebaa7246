"""``NumPack.stream_load`` batches: large ones are private copy-on-write mappings of the rows."""

from __future__ import annotations

import numpy as np
import pytest

from numpack import NumPack


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.complex128, np.bool_])
@pytest.mark.parametrize("batch", [1, 7, 4099, 50_000])
def test_batches_equal_the_rows_at_any_offset(tmp_path, dtype, batch):
    # 13 columns make row starts fall at every offset inside a page.
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((20_011, 13)) * 100).astype(dtype)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a})
        got = list(npk.stream_load("a", batch))
    assert all(b.shape[0] <= batch for b in got)
    np.testing.assert_array_equal(np.concatenate(got), a)


def test_large_batches_are_writable_and_writes_stay_private(tmp_path):
    a = np.arange(200_000 * 4, dtype=np.float64).reshape(200_000, 4)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a})
        batches = list(npk.stream_load("a", 50_000))
        for b in batches:
            assert b.flags.writeable and b.flags.c_contiguous
            b *= -1  # in place, like a user normalising a batch
        np.testing.assert_array_equal(np.concatenate(batches), -a)
        # The store is untouched, and so is a second pass.
        np.testing.assert_array_equal(npk.load("a"), a)
        np.testing.assert_array_equal(np.concatenate(list(npk.stream_load("a", 50_000))), a)


def test_iteration_outlives_close_and_sees_its_own_version(tmp_path):
    a = np.ones((100_000, 8), np.float32)
    npk = NumPack(tmp_path / "s.npk")
    npk.open()
    npk.save({"a": a})
    it = npk.stream_load("a", 30_000)
    first = next(it)
    npk.save({"a": np.zeros((10, 8), np.float32)})  # a new version: a new data file
    npk.close()
    rest = list(it)
    np.testing.assert_array_equal(np.concatenate([first, *rest]), a)


def test_deleted_rows_and_empty_arrays(tmp_path):
    a = np.arange(100_000 * 3, dtype=np.int32).reshape(100_000, 3)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a, "e": np.empty((0, 3), np.int32)})
        npk.drop("a", [0, 5, 99_999])
        got = np.concatenate(list(npk.stream_load("a", 40_000)))
        np.testing.assert_array_equal(got, np.delete(a, [0, 5, 99_999], axis=0))
        assert list(npk.stream_load("e", 10)) == []


@pytest.mark.parametrize("deleted", [False, True])
@pytest.mark.parametrize("commits", ["replace", "drop", "append", "all"])
def test_copied_batches_are_of_the_version_the_stream_began_at(tmp_path, deleted, commits):
    """Batches that are copies come from the version current at the call, whatever other
    handles commit while the stream is read (a snapshot is pinned for the stream's life);
    a replace alone (which changes no file but the rows) counts too."""
    x = np.arange(400, dtype=np.int64).reshape(200, 2)
    with NumPack(tmp_path / "s.npk") as npk, NumPack(tmp_path / "s.npk") as other:
        npk.save({"x": x})
        if deleted:
            npk.drop("x", [0])
            x = x[1:]
        stream = npk.stream_load("x", 16)
        first = next(stream)
        if commits in ("replace", "all"):
            other.replace({"x": np.full((10, 2), -1, dtype=np.int64)}, list(range(20, 30)))
        if commits in ("drop", "all"):
            other.drop("x", [100])
        if commits in ("append", "all"):
            other.append({"x": np.full((3, 2), -2, dtype=np.int64)})
        rest = list(stream)
        np.testing.assert_array_equal(np.concatenate([first, *rest]), x)
        # A stream begun now reads the new state.
        now = np.concatenate(list(npk.stream_load("x", 16)))
        np.testing.assert_array_equal(now, npk.load("x"))
        assert (now == -1).any() == (commits in ("replace", "all"))
