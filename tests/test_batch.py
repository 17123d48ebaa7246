"""Tests of ``NumPack.batch_mode`` (in-memory cache written on exit) and
``NumPack.writable_batch_mode`` (shared mmap edits)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import random_array

from numpack import NumPack


def disk_state(path, name):
    """What another handle reads from disk right now."""
    with NumPack(path) as other:
        return other.load(name) if other.has_array(name) else None


@pytest.fixture
def filled(store_path):
    a = np.arange(20, dtype=np.float64).reshape(10, 2)
    b = np.arange(5, dtype=np.int32)
    with NumPack(store_path) as npk:
        npk.save({"a": a, "b": b})
    return store_path, a, b


# --------------------------------------------------------------------------------------------
# batch_mode
# --------------------------------------------------------------------------------------------
def test_batch_load_returns_same_object(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            first = npk.load("a")
            second = npk.load("a")
            assert first is second
            assert isinstance(first, np.ndarray)
            np.testing.assert_array_equal(first, a)
            first[0, 0] = 123.0
            assert npk.load("a")[0, 0] == 123.0


def test_batch_save_only_caches_until_exit(filled):
    path, a, b = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            arr = npk.load("a")
            arr *= 2
            npk.save({"a": arr})
            np.testing.assert_array_equal(disk_state(path, "a"), a)  # not written yet
            assert npk.load("a") is arr
        np.testing.assert_array_equal(npk.load("a"), a * 2)
        np.testing.assert_array_equal(disk_state(path, "a"), a * 2)
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), a * 2)
        np.testing.assert_array_equal(npk.load("b"), b)


def test_batch_writes_loaded_arrays_mutated_without_save(filled):
    path, a, b = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            arr = npk.load("a")
            arr[3] = -1
            other = npk.load("b")
            other += 10
            npk.save(
                {"new": np.ones(3, dtype=np.uint8)}
            )  # a save elsewhere must not stop the others
    expected = a.copy()
    expected[3] = -1
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), expected)
        np.testing.assert_array_equal(npk.load("b"), b + 10)
        np.testing.assert_array_equal(npk.load("new"), np.ones(3, dtype=np.uint8))
        assert npk.load("new").dtype == np.uint8


def test_batch_exit_on_exception_writes_and_propagates(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        with pytest.raises(KeyError, match="boom"):
            with npk.batch_mode():
                arr = npk.load("a")
                arr[:] = 7
                npk.save({"a": arr, "c": np.arange(4, dtype=np.int16)})
                raise KeyError("boom")
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), np.full_like(a, 7))
        np.testing.assert_array_equal(npk.load("c"), np.arange(4, dtype=np.int16))


def test_batch_save_may_change_shape_and_dtype(filled):
    path, _, _ = filled
    new = random_array((3, 4, 2), np.complex64, seed=5)
    with NumPack(path) as npk:
        with npk.batch_mode():
            npk.save({"a": new})
            assert npk.load("a") is new or np.array_equal(npk.load("a"), new)
        loaded = npk.load("a")
        assert loaded.dtype == np.complex64 and loaded.shape == (3, 4, 2)
        np.testing.assert_array_equal(loaded, new)


def test_batch_append_acts_on_disk_and_survives_exit(filled):
    path, a, _ = filled
    extra = np.full((2, 2), 99.0)
    with NumPack(path) as npk:
        with npk.batch_mode():
            cached = npk.load("a")
            np.testing.assert_array_equal(cached, a)
            npk.append({"a": extra})
            np.testing.assert_array_equal(disk_state(path, "a"), np.concatenate([a, extra]))
            np.testing.assert_array_equal(npk.load("a"), np.concatenate([a, extra]))
        np.testing.assert_array_equal(npk.load("a"), np.concatenate([a, extra]))
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), np.concatenate([a, extra]))
        assert npk.get_shape("a") == (12, 2)


def test_batch_drop_rows_acts_on_disk_and_survives_exit(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            npk.load("a")
            npk.drop("a", [0, 1])
            np.testing.assert_array_equal(disk_state(path, "a"), a[2:])
            np.testing.assert_array_equal(npk.load("a"), a[2:])
        np.testing.assert_array_equal(npk.load("a"), a[2:])
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), a[2:])


def test_batch_drop_array_survives_exit(filled):
    path, _, b = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            npk.load("a")
            npk.drop("a")
        assert npk.get_member_list() == ["b"]
    with NumPack(path) as npk:
        assert npk.get_member_list() == ["b"]
        np.testing.assert_array_equal(npk.load("b"), b)


def test_batch_replace_is_not_overwritten_by_cache(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            npk.load("a")
            npk.replace({"a": np.array([[-5.0, -6.0]])}, 4)
            np.testing.assert_array_equal(disk_state(path, "a")[4], [-5.0, -6.0])
    expected = a.copy()
    expected[4] = [-5.0, -6.0]
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), expected)


def test_batch_missing_array(filled):
    path, _, _ = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            with pytest.raises(KeyError):
                npk.load("missing")


def test_batch_memory_limit_flushes_early(filled):
    path, a, _ = filled
    big = np.arange(20000, dtype=np.float64)
    with NumPack(path) as npk:
        with npk.batch_mode(memory_limit=1 / 1024):  # MB, as in 0.6: 1 KiB
            npk.save({"big": big})
            arr = npk.load("a")
            arr += 1
            npk.save({"a": arr})
            npk.save({"big2": big * 2})
            # "big" alone is 160 kB, far over the 1 KiB limit: it was flushed before the block ends
            np.testing.assert_array_equal(disk_state(path, "big"), big)
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("big"), big)
        np.testing.assert_array_equal(npk.load("big2"), big * 2)
        np.testing.assert_array_equal(npk.load("a"), a + 1)


def test_batch_close_inside_block_flushes(filled):
    path, a, _ = filled
    npk = NumPack(path)
    npk.open()
    with npk.batch_mode():
        arr = npk.load("a")
        arr[:] = 3
        npk.save({"a": arr})
        npk.close()
        np.testing.assert_array_equal(disk_state(path, "a"), np.full_like(a, 3))


# --------------------------------------------------------------------------------------------
# writable_batch_mode
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6,), (5, 3), (4, 2, 3)], ids=lambda s: f"{len(s)}d")
def test_writable_batch_edits_reach_file(store_path, dtype, shape):
    arr = random_array(shape, dtype, seed=7)
    new_row = random_array(shape[1:], dtype, seed=8)
    with NumPack(store_path) as npk:
        npk.save({"x": arr})
        with npk.writable_batch_mode() as wb:
            view = wb.load("x")
            assert isinstance(view, np.ndarray)
            assert view.flags.writeable
            assert view.shape == shape and view.dtype == dtype
            np.testing.assert_array_equal(view, arr)
            view[1] = new_row
            view[-1] = view[0]
        expected = arr.copy()
        expected[1] = new_row
        expected[-1] = expected[0]
        np.testing.assert_array_equal(npk.load("x"), expected)
    with NumPack(store_path) as npk:
        loaded = npk.load("x")
        assert loaded.dtype == dtype and loaded.shape == shape
        np.testing.assert_array_equal(loaded, expected)


def test_writable_batch_edits_are_shared_with_the_file_during_the_block(filled):
    path, _a, _ = filled
    with NumPack(path) as npk:
        with npk.writable_batch_mode() as wb:
            view = wb.load("a")
            view[2] = [41.0, 42.0]
            # a shared mapping: the file's pages already hold the edit, no save needed
            assert disk_state(path, "a")[2].tolist() == [41.0, 42.0]


def test_writable_batch_several_arrays(filled):
    path, a, b = filled
    with NumPack(path) as npk:
        with npk.writable_batch_mode() as wb:
            va = wb.load("a")
            vb = wb.load("b")
            va[:, 0] = 0
            vb *= 3
            assert wb.load("a") is va  # the same name gives the same object
            wb.save({"a": va})  # kept for compatibility: a no-op
    expected = a.copy()
    expected[:, 0] = 0
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), expected)
        np.testing.assert_array_equal(npk.load("b"), b * 3)


def test_writable_batch_compacts_deleted_rows(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        npk.drop("a", [0, 4, 9])
        logical = np.delete(a, [0, 4, 9], axis=0)
        with npk.writable_batch_mode() as wb:
            view = wb.load("a")
            assert view.shape == logical.shape
            np.testing.assert_array_equal(view, logical)
            view[0] = [-1.0, -2.0]
        logical[0] = [-1.0, -2.0]
        np.testing.assert_array_equal(npk.load("a"), logical)
        assert npk.get_shape("a") == logical.shape
    assert not (path / "deleted_a.npkb").exists()
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), logical)


def test_writable_batch_missing_array(filled):
    path, _, _ = filled
    with NumPack(path) as npk:
        with npk.writable_batch_mode() as wb:
            with pytest.raises(KeyError):
                wb.load("missing")


def test_writable_batch_arrays_readable_after_block(store_path):
    code = textwrap.dedent(
        f"""
        import gc, numpy as np
        from numpack import NumPack
        arr = np.arange(3000, dtype=np.float32).reshape(1000, 3)
        with NumPack({str(store_path)!r}) as npk:
            npk.save({{"x": arr}})
            with npk.writable_batch_mode() as wb:
                view = wb.load("x")
                view[0] = 5
            gc.collect()
            total = float(view.sum())
            first = view[0].copy()
        gc.collect()
        after_close = float(view[-1].sum())
        expected = arr.copy(); expected[0] = 5
        assert total == float(expected.sum()), total
        assert np.array_equal(first, [5, 5, 5])
        assert after_close == float(expected[-1].sum())
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"
    with NumPack(store_path) as npk:
        assert npk.load("x")[0].tolist() == [5.0, 5.0, 5.0]


def test_memory_limit_is_megabytes_int_or_float(filled):
    path, _, _ = filled
    big = np.arange(100_000, dtype=np.float64)  # 0.76 MiB
    with NumPack(path) as npk:
        with npk.batch_mode(memory_limit=1) as b:  # 1 MiB: the array stays cached
            assert b.memory_limit == 1
            npk.save({"big": big})
            assert disk_state(path, "big") is None
        with npk.batch_mode(memory_limit=0.5):  # 512 KiB: written at once
            npk.save({"big2": big})
            np.testing.assert_array_equal(disk_state(path, "big2"), big)
        for bad, err in [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError),
                         (True, TypeError)]:  # fmt: skip
            with pytest.raises(err):
                npk.batch_mode(memory_limit=bad)
        with npk.batch_mode(memory_limit=float("inf")):
            npk.save({"c": big})


def test_a_nested_batch_mode_joins_the_outer_block(filled):
    path, a, _ = filled
    with NumPack(path) as npk:
        with npk.batch_mode():
            arr = npk.load("a")
            with npk.batch_mode():
                assert npk.load("a") is arr  # the outer cache
                arr += 5
                npk.save({"new": np.ones(3)})
            # The inner exit wrote nothing: the outermost block does.
            np.testing.assert_array_equal(disk_state(path, "a"), a)
            assert disk_state(path, "new") is None
        np.testing.assert_array_equal(disk_state(path, "a"), a + 5)
        np.testing.assert_array_equal(disk_state(path, "new"), np.ones(3))
        ctx = npk.batch_mode()
        with ctx:
            with ctx:  # the same context inside itself
                npk.save({"again": np.zeros(2)})
            assert disk_state(path, "again") is None
        np.testing.assert_array_equal(disk_state(path, "again"), np.zeros(2))
