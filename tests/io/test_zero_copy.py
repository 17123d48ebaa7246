"""numpack.io zero-copy helpers: DLPack, Arrow (bool fix), torch; memory sharing checked."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import numpack.io as nio


def test_dlpack(h):
    a = h.sample((4, 3), np.float32)
    buf = nio.to_dlpack(a)
    assert buf.array is a and buf.__dlpack_device__() == (1, 0)
    t = torch.from_dlpack(buf)
    t[0, 0] = 42.0
    assert a[0, 0] == 42.0  # shared memory
    back = nio.from_dlpack(t)
    assert np.shares_memory(back, a)
    assert np.shares_memory(nio.DLPackBuffer.from_dlpack(buf), a)
    with pytest.warns(UserWarning, match="Array is not C-contiguous"):
        strided = nio.DLPackBuffer(a[:, ::2])
    assert strided.array.flags.c_contiguous
    with pytest.raises(TypeError):
        nio.DLPackBuffer([1, 2])
    assert nio.DLPackBuffer.kDLCUDA == 2 and nio.DLPackBuffer.kDLBool == 6


@pytest.mark.parametrize("dtype", ["int8", "uint32", "int64", "float16", "float32", "float64"])
def test_numpy_to_arrow_shares_numeric_buffers(h, dtype):
    a = h.sample((10,), dtype)
    arr = nio.numpy_to_arrow_zero_copy(a)
    assert arr.buffers()[1].address == a.ctypes.data
    h.assert_same(arr.to_numpy(zero_copy_only=False), a)
    h.assert_same(nio.arrow_to_numpy_zero_copy(arr), a)


def test_bool_arrays_keep_their_values():
    a = np.array([True, False, False, True, True, False, True, False, True])
    arr = nio.numpy_to_arrow_zero_copy(a)
    assert arr.type == pa.bool_() and arr.to_pylist() == a.tolist()
    with pytest.warns(UserWarning, match="Zero-copy conversion from Arrow failed"):
        back = nio.arrow_to_numpy_zero_copy(arr)
    assert back.tolist() == a.tolist()
    assert nio.ZeroCopyArray(a.reshape(3, 3)).to_arrow().to_pylist() == a.tolist()


def test_arrow_to_numpy_cases():
    arr = pa.array([1.0, 2.0, 3.0])
    view = nio.arrow_to_numpy_zero_copy(arr)
    assert view.ctypes.data == arr.buffers()[1].address and not view.flags.writeable
    copy = nio.arrow_to_numpy_zero_copy(arr, writable=True)
    copy[0] = 9.0
    assert arr[0].as_py() == 1.0
    with pytest.warns(UserWarning, match="nulls or incompatible"):
        got = nio.arrow_to_numpy_zero_copy(pa.array([1.0, None]))
    assert np.isnan(got[1])
    table = pa.table({"x": [1, 2], "y": [0.5, 1.5]})
    assert nio.table_to_numpy_zero_copy(table, "y").tolist() == [0.5, 1.5]
    both = nio.table_to_numpy_zero_copy(table)
    assert sorted(both) == ["x", "y"] and both["x"].tolist() == [1, 2]
    assert nio.ZeroCopyArray.from_arrow(arr).shape == (3,)


def test_torch_helpers(h):
    a = h.sample((5, 2), np.float64)
    t = nio.numpy_to_torch_zero_copy(a)
    assert t.data_ptr() == a.ctypes.data
    back = nio.torch_to_numpy_zero_copy(t)
    assert np.shares_memory(back, a)
    with pytest.warns(UserWarning, match="Array is not C-contiguous"):
        nio.numpy_to_torch_zero_copy(a.T)
    z = nio.wrap_for_zero_copy(a)
    assert z.shape == (5, 2) and z.dtype == np.float64 and z.nbytes == a.nbytes
    assert z.to_torch().data_ptr() == a.ctypes.data
    assert np.asarray(z) is a and np.asarray(z, dtype=np.float32).dtype == np.float32
    assert np.shares_memory(nio.ZeroCopyArray.from_torch(t).array, a)
    assert np.shares_memory(nio.ZeroCopyArray.from_dlpack(z.to_dlpack()).array, a)
    assert torch.from_dlpack(z).data_ptr() == a.ctypes.data
    with pytest.raises(TypeError, match=r"Expected numpy\.ndarray, got list"):
        nio.ZeroCopyArray([1])
