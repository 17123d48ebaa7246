"""Zero-copy hand-offs between NumPy, DLPack, Arrow and PyTorch.

Each helper shares memory where the two sides can describe the same bytes and copies
(with a ``UserWarning`` where numpack 0.6 warned) where they cannot. Arrow booleans are
bit-packed while NumPy's take a byte each, so bool arrays are always converted (numpack
0.6 wrapped the bytes as bits and got wrong values).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from .._deps import require

__all__ = [
    "DLPackBuffer",
    "ZeroCopyArray",
    "arrow_to_numpy_zero_copy",
    "from_dlpack",
    "numpy_to_arrow_zero_copy",
    "numpy_to_torch_zero_copy",
    "table_to_numpy_zero_copy",
    "to_dlpack",
    "torch_to_numpy_zero_copy",
    "wrap_for_zero_copy",
]

_NOT_CONTIGUOUS = "Array is not C-contiguous. Creating a contiguous copy."
_ARROW_COPY = (
    "Zero-copy conversion from Arrow failed (nulls or incompatible type). Creating a copy."
)


def _contiguous(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if not array.flags.c_contiguous:
        warnings.warn(_NOT_CONTIGUOUS, UserWarning, stacklevel=3)
        return np.ascontiguousarray(array)
    return array


class DLPackBuffer:
    """A C-contiguous ndarray exposed through the DLPack protocol.

    Parameters
    ----------
    array : numpy.ndarray
        The data (copied, with a warning, if not C-contiguous).
    stream, max_version : optional
        Defaults for :meth:`__dlpack__`.
    """

    kDLCPU = 1
    kDLCUDA = 2
    kDLCUDAHost = 3
    kDLOpenCL = 4
    kDLVulkan = 7
    kDLMetal = 8
    kDLVPI = 9
    kDLROCM = 10
    kDLROCMHost = 11
    kDLExtDev = 12
    kDLCUDAManaged = 13
    kDLOneAPI = 14
    kDLWebGPU = 15
    kDLHexagon = 16

    kDLInt = 0
    kDLUInt = 1
    kDLFloat = 2
    kDLBfloat = 4
    kDLComplex = 5
    kDLBool = 6

    def __init__(self, array: npt.NDArray[Any], stream: Any = None, max_version: Any = None):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Expected numpy.ndarray, got {type(array).__name__}")
        self._array = _contiguous(array)
        self._stream = stream
        self._max_version = max_version

    @property
    def array(self) -> npt.NDArray[Any]:
        """The wrapped ndarray."""
        return self._array

    def __dlpack__(self, *, stream: Any = None, **kwargs: Any) -> Any:
        """A DLPack capsule of the array (NumPy's own export; CPU only)."""
        if "max_version" not in kwargs and self._max_version is not None:
            kwargs["max_version"] = self._max_version
        return self._array.__dlpack__(stream=stream, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(kDLCPU, 0)``."""
        return (self.kDLCPU, 0)

    @classmethod
    def from_dlpack(cls, obj: Any) -> npt.NDArray[Any]:
        """``numpy.from_dlpack(obj)``."""
        return np.from_dlpack(obj)


def to_dlpack(array: npt.NDArray[Any]) -> DLPackBuffer:
    """Wrap ``array`` for DLPack consumers (``torch.from_dlpack(to_dlpack(a))``)."""
    return DLPackBuffer(array)


def from_dlpack(obj: Any) -> npt.NDArray[Any]:
    """An ndarray sharing the memory of any DLPack producer on the CPU."""
    return np.from_dlpack(obj)


def numpy_to_arrow_zero_copy(array: npt.NDArray[Any], name: str = "data") -> Any:
    """A ``pyarrow.Array`` over the buffer of a 1-d C-contiguous native-order numeric array
    (no copy); anything else (bool, n-d, strided, big-endian) is converted by
    ``pyarrow.array``."""
    pa = require("pyarrow")
    a = np.asarray(array)
    if a.ndim == 1 and a.flags.c_contiguous and a.dtype.kind in "iuf" and a.dtype.isnative:
        return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), len(a), [None, pa.py_buffer(a)])
    return pa.array(a.reshape(-1) if a.ndim != 1 else a)


def arrow_to_numpy_zero_copy(arrow_array: Any, writable: bool = False) -> npt.NDArray[Any]:
    """An ndarray over an Arrow array's buffer when possible; a copy (with a warning) when
    it has nulls or a layout NumPy cannot share (bools, several chunks); a writable copy
    when ``writable``."""
    pa = require("pyarrow")
    if isinstance(arrow_array, pa.ChunkedArray):
        if arrow_array.num_chunks == 1:
            arrow_array = arrow_array.chunk(0)
        else:
            if not writable:
                warnings.warn(_ARROW_COPY, UserWarning, stacklevel=2)
            return np.asarray(arrow_array.to_numpy()).copy()
    if writable:
        return np.array(arrow_array.to_numpy(zero_copy_only=False), copy=True)
    try:
        return arrow_array.to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        warnings.warn(_ARROW_COPY, UserWarning, stacklevel=2)
        return arrow_array.to_numpy(zero_copy_only=False)


def table_to_numpy_zero_copy(table: Any, column: str | None = None) -> Any:
    """One column of a ``pyarrow.Table`` as an ndarray, or every column as a dict of them."""
    if column is not None:
        return arrow_to_numpy_zero_copy(table.column(column))
    return {n: arrow_to_numpy_zero_copy(table.column(n)) for n in table.column_names}


def numpy_to_torch_zero_copy(array: npt.NDArray[Any], device: Any = None) -> Any:
    """``torch.from_numpy`` (shared memory) of a C-contiguous copy-free view, moved to
    ``device`` if given and not the CPU (which copies)."""
    torch = require("torch")
    t = torch.from_numpy(_contiguous(array))
    if device is not None and str(device) != "cpu":
        t = t.to(device)
    return t


def torch_to_numpy_zero_copy(tensor: Any) -> npt.NDArray[Any]:
    """``tensor.detach().numpy()`` (shared memory); a tensor on another device is copied
    to the CPU first, with a warning."""
    if tensor.device.type != "cpu":
        warnings.warn(
            f"Tensor is on {tensor.device}; copying it to the CPU.", UserWarning, stacklevel=2
        )
        tensor = tensor.cpu()
    return tensor.detach().numpy()


class ZeroCopyArray:
    """A C-contiguous ndarray with zero-copy exits to DLPack, PyTorch and Arrow."""

    def __init__(self, array: npt.NDArray[Any]) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Expected numpy.ndarray, got {type(array).__name__}")
        self._array = _contiguous(array)

    @property
    def array(self) -> npt.NDArray[Any]:
        """The wrapped ndarray."""
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._array.dtype

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    def __dlpack__(self, *, stream: Any = None, **kwargs: Any) -> Any:
        return self._array.__dlpack__(stream=stream, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (DLPackBuffer.kDLCPU, 0)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        if dtype is not None and np.dtype(dtype) != self._array.dtype:
            return self._array.astype(dtype)
        return self._array.copy() if copy else self._array

    def to_torch(self, device: Any = None) -> Any:
        """A tensor sharing the memory (moved if ``device`` is not the CPU)."""
        return numpy_to_torch_zero_copy(self._array, device)

    def to_arrow(self, name: str = "data") -> Any:
        """A flat ``pyarrow.Array`` of the values (shared where Arrow can)."""
        return numpy_to_arrow_zero_copy(self._array.reshape(-1), name)

    def to_dlpack(self) -> DLPackBuffer:
        return DLPackBuffer(self._array)

    @classmethod
    def from_torch(cls, tensor: Any) -> ZeroCopyArray:
        return cls(torch_to_numpy_zero_copy(tensor))

    @classmethod
    def from_arrow(cls, arrow_array: Any) -> ZeroCopyArray:
        return cls(arrow_to_numpy_zero_copy(arrow_array))

    @classmethod
    def from_dlpack(cls, obj: Any) -> ZeroCopyArray:
        return cls(np.from_dlpack(obj))


def wrap_for_zero_copy(array: npt.NDArray[Any]) -> ZeroCopyArray:
    """``ZeroCopyArray(array)``."""
    return ZeroCopyArray(array)
