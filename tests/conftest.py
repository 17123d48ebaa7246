"""Shared fixtures of the numpack test suite.

Tests are written against the contract in ``API.md`` / ``FORMAT.md``; they use the public
``numpack`` package only (no mocks).
"""

from __future__ import annotations

import numpy as np
import pytest

import numpack

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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: spawns processes (Dask process scheduler, concurrent writers)"
    )


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


@pytest.fixture
def dtypes():
    """All 14 supported dtypes."""
    return list(DTYPES)


@pytest.fixture(params=DTYPES, ids=[d.name for d in DTYPES])
def dtype(request):
    """Parametrises a test over the 14 supported dtypes."""
    return request.param


@pytest.fixture
def make_array():
    """Factory ``make_array(shape, dtype, seed=None)``: a fresh random array; successive calls
    without a seed give different values."""
    counter = iter(range(1, 1_000_000))

    def make(shape, dtype=np.float64, seed=None):
        return random_array(shape, dtype, next(counter) if seed is None else seed)

    return make


@pytest.fixture
def store_path(tmp_path):
    """Path of a store directory that does not exist yet."""
    return tmp_path / "store.npk"


@pytest.fixture
def npk(store_path):
    """An open ``NumPack`` on a fresh store, closed after the test."""
    with numpack.NumPack(store_path) as store:
        yield store
