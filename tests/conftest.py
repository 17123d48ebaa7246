"""Shared fixtures of the numpack test suite.

Tests are written against the contract in ``API.md`` / ``FORMAT.md``; they use the public
``numpack`` package only (no mocks).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, random_array

import numpack


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: spawns processes (Dask process scheduler, concurrent writers)"
    )


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
