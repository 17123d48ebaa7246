"""Data helpers shared by the test modules (imported as ``helpers``; a module, not the
conftest, so that ``tests/io/conftest.py`` cannot shadow them)."""

from __future__ import annotations

import numpy as np

#: The 14 dtypes the store supports, in the order of their format codes (FORMAT.md).
DTYPES = [
    np.dtype(name)
    for name in (
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
]


def random_array(shape, dtype, seed=0):
    """A C-contiguous array of ``shape`` and ``dtype`` with varied values (full integer
    range, signed floats, complex with both parts, booleans), never NaN."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    if dtype.kind == "b":
        values = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    elif dtype.kind == "f":
        values = rng.standard_normal(shape) * 100
    elif dtype.kind == "c":
        values = rng.standard_normal(shape) * 100 + 1j * rng.standard_normal(shape) * 100
    else:  # pragma: no cover - only the 14 supported dtypes are used
        raise ValueError(dtype)
    out = np.ascontiguousarray(np.asarray(values).astype(dtype)).reshape(shape)
    assert out.dtype == dtype and out.shape == shape
    return out
